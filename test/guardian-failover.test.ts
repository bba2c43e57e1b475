// The guardian when things fail: a management API that is away or
// replies with errors, a database that is away, queues without
// statistics, and two guardians on one database where one takes over
// when the other stops. The real RabbitMQ and PostgreSQL keep running;
// failures come from closed local ports and a local HTTP server.
import http from "node:http";
import net, { type AddressInfo } from "node:net";

import { createDatabase } from "../src/db";
import {
  Guardian,
  GuardianLock,
  guardianSettings,
  Notifier,
  type GuardianEventRecord,
} from "../src/guardian";
import { ManagementClient } from "../src/rabbitmq";
import type { Gateway } from "../src/server";
import { StatsPoller } from "../src/stats";
import {
  brokerAdmin,
  Cleanup,
  eventually,
  startGateway,
  TEST_DATABASE_URL,
  uniqueName,
} from "./harness";
import { startWebhookReceiver, type WebhookReceiver } from "./notice-receivers";

const cleanup = new Cleanup();
let gateway: Gateway;
let adminHooks: WebhookReceiver;
const events: GuardianEventRecord[] = [];

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  adminHooks = await startWebhookReceiver();
  cleanup.add(() => adminHooks.close());
  gateway.guardianEvents.on("event", (event) => events.push(event));
});

afterAll(() => cleanup.run());

/** Returns a local port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function guardianOn(
  stats: StatsPoller,
  overrides: Partial<ConstructorParameters<typeof Guardian>[0]> = {},
): Guardian {
  const notifier = new Notifier(
    {
      smtpFrom: "guardian@example.com",
      webhookSecret: "failover-secret",
      webhookAttempts: 1,
      webhookBackoffMs: 0,
      adminWebhookUrls: [],
    },
    gateway.logger,
  );
  const guardian = new Guardian({
    ...guardianSettings(gateway.config),
    db: gateway.db,
    management: gateway.management,
    stats,
    events: gateway.guardianEvents,
    logger: gateway.logger,
    notifier,
    adminRecipients: { emails: [], webhookUrls: [adminHooks.url] },
    ...overrides,
  });
  cleanup.add(() => guardian.stop());
  return guardian;
}

function pollFailures(since: Date): GuardianEventRecord[] {
  return events.filter((e) => e.kind === "POLL_FAILED" && e.at >= since);
}

/**
 * Starts a stand-in management API on a fixed port. It replies 503 while
 * `failing`, and otherwise relays the real broker's queues, bindings and
 * users with one extra queue that has no statistics fields.
 */
function startStandIn(port: number, extraQueue: string) {
  const state = { failing: true, requests: 0 };
  const admin = brokerAdmin();
  const server = http.createServer((req, res) => {
    state.requests += 1;
    if (state.failing) {
      res.writeHead(503).end("management API unavailable");
      return;
    }
    void relay(req.url ?? "").then((body) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    });
  });
  async function relay(url: string): Promise<unknown> {
    if (url.startsWith("/api/queues/")) {
      const queues = await admin.listQueues();
      const bare = { name: extraQueue, vhost: admin.vhost, durable: true };
      return [...queues, { ...bare, auto_delete: false, exclusive: false }];
    }
    if (url.startsWith("/api/bindings/")) return admin.listBindings();
    if (url.startsWith("/api/policies/")) return admin.listPolicies();
    if (url.startsWith("/api/users")) {
      return (await admin.listUserNames()).map((name) => ({ name }));
    }
    return {};
  }
  return new Promise<{ state: typeof state; close: () => Promise<void> }>(
    (resolve) => {
      server.listen(port, "127.0.0.1", () =>
        resolve({
          state,
          close: () =>
            new Promise<void>((done) => {
              server.closeAllConnections();
              server.close(() => done());
            }),
        }),
      );
    },
  );
}

test("poll failures back off, one notice per kind", async () => {
  const port = await closedPort();
  const management = new ManagementClient(
    `http://guest:guest@127.0.0.1:${port}`,
    gateway.config.vhost,
  );
  const stats = new StatsPoller({
    management,
    intervalMs: 100,
    maxBackoffMs: 800,
    logger: gateway.logger,
  });
  cleanup.add(() => stats.stop());
  let pollErrors = 0;
  stats.on("error", () => (pollErrors += 1));
  const since = new Date();
  const guardian = guardianOn(stats, { management });
  guardian.start();
  stats.start();

  await new Promise((resolve) => setTimeout(resolve, 2500));
  // Without backoff, 100 ms polls would fail about 25 times here.
  expect(pollErrors).toBeGreaterThanOrEqual(3);
  expect(pollErrors).toBeLessThanOrEqual(8);
  expect(pollFailures(since).map((e) => e.detail?.split(":")[0])).toEqual([
    "MANAGEMENT_API_UNREACHABLE",
  ]);

  const extraQueue = `queue/${uniqueName("no-stats")}/bare`;
  const standIn = await startStandIn(port, extraQueue);
  cleanup.add(() => standIn.close());
  await eventually(async () =>
    pollFailures(since).length === 2 ? true : undefined,
  );
  await new Promise((resolve) => setTimeout(resolve, 1500));
  expect(standIn.state.requests).toBeGreaterThanOrEqual(2);
  expect(pollFailures(since).map((e) => e.detail?.split(":")[0])).toEqual([
    "MANAGEMENT_API_UNREACHABLE",
    "MANAGEMENT_API_ERROR",
  ]);
  const notices = await eventually(async () =>
    adminHooks.calls.length >= 2 ? adminHooks.calls : undefined,
  );
  expect(notices.map((call) => JSON.parse(call.body).kind)).toEqual([
    "POLL_FAILED",
    "POLL_FAILED",
  ]);

  // A queue without statistics fields is adopted but not read as empty.
  standIn.state.failing = false;
  cleanup.add(() =>
    gateway.db.queue.deleteMany({ where: { name: extraQueue } }),
  );
  const adopted = () =>
    gateway.db.queue.findUnique({ where: { name: extraQueue } });
  await eventually(() => adopted().then((found) => found ?? undefined));
  // Let at least one more pass read the queue after its adoption.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const row = await adopted();
  expect(row?.lastSize).toBeNull();
  const samples = await gateway.db.queueSample.count({
    where: { queueName: extraQueue },
  });
  expect(samples).toBe(0);
  await stats.stop();
  await guardian.stop();
});

test("database failure raises one notice", async () => {
  const port = await closedPort();
  const brokenDb = createDatabase(
    `postgresql://postgres@127.0.0.1:${port}/none`,
  );
  cleanup.add(() => brokenDb.$disconnect());
  const since = new Date();
  const guardian = guardianOn(gateway.stats, {
    db: brokenDb,
    maxBackoffMs: 200,
  });
  guardian.start();
  for (let i = 0; i < 5; i += 1) {
    await gateway.stats.refresh();
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  await guardian.stop();
  const failures = pollFailures(since);
  expect(failures).toHaveLength(1);
  expect(failures[0].detail).toMatch(/^DATABASE:/);
});

describe("two guardians on one database", () => {
  const INTERVAL_MS = 500;

  function pollerAndGuardian() {
    const stats = new StatsPoller({
      management: gateway.management,
      intervalMs: INTERVAL_MS,
      logger: gateway.logger,
    });
    cleanup.add(() => stats.stop());
    const guardian = guardianOn(stats, {
      stats,
      lock: new GuardianLock(TEST_DATABASE_URL, gateway.logger),
    });
    guardian.start();
    stats.start();
    return { stats, guardian };
  }

  test("one acts, the other takes over", async () => {
    const first = pollerAndGuardian();
    await eventually(async () => (first.guardian.acting ? true : undefined));
    const second = pollerAndGuardian();

    let bothActing = 0;
    const deadline = Date.now() + 3 * INTERVAL_MS;
    while (Date.now() < deadline) {
      if (first.guardian.acting && second.guardian.acting) bothActing += 1;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(bothActing).toBe(0);
    expect(second.guardian.acting).toBe(false);

    await first.stats.stop();
    await first.guardian.stop();
    const stoppedAt = Date.now();
    await eventually(
      async () => (second.guardian.acting ? true : undefined),
      5000,
      20,
    );
    expect(Date.now() - stoppedAt).toBeLessThanOrEqual(2 * INTERVAL_MS);
    expect(first.guardian.acting).toBe(false);

    // Later tests need the lock free.
    await second.stats.stop();
    await second.guardian.stop();
  });
});

test("two gateways: one guardian acts, then the other", async () => {
  const intervalMs = 300;
  const settings = { ...gateway.config.guardian, enabled: true, intervalMs };
  const first = await startGateway({ guardian: settings });
  cleanup.add(() => first.stop());
  const second = await startGateway({ guardian: settings });
  cleanup.add(() => second.stop());

  const metricOf = async (target: typeof gateway) => {
    const text = await (
      await fetch(target.url.replace(/\/graphql$/, "/metrics"))
    ).text();
    return /^pulse_gateway_guardian_acting (\d)$/m.exec(text)?.[1];
  };
  await eventually(async () =>
    first.guardian?.acting || second.guardian?.acting ? true : undefined,
  );
  let bothActing = 0;
  const watchUntil = Date.now() + 4 * intervalMs;
  while (Date.now() < watchUntil) {
    if (first.guardian?.acting && second.guardian?.acting) bothActing += 1;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(bothActing).toBe(0);
  const [acting, standby] = first.guardian?.acting
    ? [first, second]
    : [second, first];
  expect(await metricOf(acting)).toBe("1");
  expect(await metricOf(standby)).toBe("0");

  await acting.stop();
  const stoppedAt = Date.now();
  await eventually(
    async () => (standby.guardian?.acting ? true : undefined),
    5000,
    20,
  );
  expect(Date.now() - stoppedAt).toBeLessThanOrEqual(2 * intervalMs);
  expect(await metricOf(standby)).toBe("1");
  await standby.stop();
});

test("gateway metrics show acting guardian", async () => {
  const config = gateway.config;
  const acting = await startGateway({
    guardian: { ...config.guardian, enabled: true, intervalMs: 200 },
  });
  cleanup.add(() => acting.stop());
  const metricsUrl = acting.url.replace(/\/graphql$/, "/metrics");
  const line = await eventually(async () => {
    const text = await (await fetch(metricsUrl)).text();
    // Anchored, because the metric's HELP line starts with "1 while".
    return /^pulse_gateway_guardian_acting 1$/m.test(text) ? true : undefined;
  });
  expect(line).toBe(true);
  const passive = await (
    await fetch(gateway.url.replace(/\/graphql$/, "/metrics"))
  ).text();
  expect(passive).toMatch(/^pulse_gateway_guardian_acting 0$/m);
  // Its guardian holds the lock until it stops.
  await acting.stop();
});
