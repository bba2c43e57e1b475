// Real outages of the gateway's dependencies while it runs with its own
// guardian and a live `messages` subscription: the RabbitMQ management
// plugin is disabled and enabled again, and the PostgreSQL cluster is
// stopped and started. Requests fail fast with a code that names what is
// down, nothing is left half-done, live messages keep flowing, and all
// works again without a gateway restart. Needs rabbitmq-plugins,
// pg_ctlcluster and pg_isready and the rights to run them. The outages
// also affect everything else that uses the same broker and database.
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

import type { Client as WsClient } from "graphql-ws";
import { Client as PgClient } from "pg";

import {
  CONNECT_TIMEOUT_MS,
  createDatabase,
  isDatabaseUnavailable,
} from "../src/db";
import {
  GUARDIAN_EVENTS_CHANNEL,
  type GuardianEventRecord,
} from "../src/guardian";
import { createLogger } from "../src/logger";
import { isNotFound } from "../src/rabbitmq/management";
import type { Gateway } from "../src/server";
import {
  brokerAdmin,
  Cleanup,
  Collected,
  createTestAccount,
  declareTestExchange,
  errorCodes,
  eventually,
  gql,
  startGateway,
  TEST_DATABASE_URL,
  testConfig,
  tokenFor,
  trackProcessFailures,
  type ProcessFailures,
  uniqueEmail,
  uniqueName,
  wsClient,
  type GraphQLResponse,
} from "./harness";

const run = promisify(execFile);

// Several tests wait up to 10 seconds for a poll, an event or a delivery.
jest.setTimeout(20_000);

/** Maximum time a request may take to fail while a dependency is down. */
const FAIL_FAST_MS = 5000;
const POSTGRES_VERSION = readdirSync("/etc/postgresql")[0];

let failures: ProcessFailures;

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** pino's level number for "error". */
const ERROR_LEVEL = 50;
const logLines: LogLine[] = [];
const logSink = new Writable({
  write(chunk, _encoding, done) {
    for (const line of String(chunk).split("\n")) {
      if (line) logLines.push(JSON.parse(line) as LogLine);
    }
    done();
  },
});

const cleanup = new Cleanup();
let gateway: Gateway;
/** A second gateway without a guardian or any live subscription. */
let bare: Gateway;
let owner: string;
let feed: Collected<{ messages: Record<string, any> }>;
let queueStats: Collected<{ queueStats: { name: string }[] }>;
const account = uniqueName("outage");
const keptQueue = `queue/${account}/kept`;
const exchange = `exchange/${uniqueName("outages")}/v1`;
const guardianEvents: GuardianEventRecord[] = [];

// --- the dependencies, stopped and started for real -----------------------

async function managementResponds(): Promise<boolean> {
  try {
    await brokerAdmin().overview();
    return true;
  } catch {
    return false;
  }
}

async function disableManagement(): Promise<void> {
  await run("rabbitmq-plugins", ["disable", "rabbitmq_management"], {
    timeout: 60_000,
  });
}

/**
 * Enables the plugin until its API responds. The command is repeated
 * because it fails while the broker itself restarts.
 */
async function enableManagement(): Promise<void> {
  await eventually(
    async () => {
      if (await managementResponds()) return true;
      await run("rabbitmq-plugins", ["enable", "rabbitmq_management"], {
        timeout: 60_000,
      }).catch(() => undefined);
      return undefined;
    },
    90_000,
    1000,
  );
}

async function postgresReady(): Promise<boolean> {
  try {
    await run("pg_isready", ["-q", "-h", "127.0.0.1"], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

function pgCtlCluster(action: "start" | "stop") {
  const extra = action === "stop" ? ["-m", "fast"] : [];
  return run(
    "pg_ctlcluster",
    ["--skip-systemctl-redirect", POSTGRES_VERSION, "main", action, ...extra],
    { timeout: 60_000 },
  );
}

/** Starts the cluster unless it is ready, then waits until it is. */
async function startPostgres(): Promise<void> {
  if (await postgresReady()) return;
  await pgCtlCluster("start");
  await eventually(
    async () => ((await postgresReady()) ? true : undefined),
    60_000,
    250,
  );
}

async function restoreDependencies(): Promise<void> {
  await startPostgres();
  await enableManagement();
}

// --- set-up ---------------------------------------------------------------

beforeAll(async () => {
  failures = trackProcessFailures(cleanup);
  await restoreDependencies();

  const config = testConfig();
  gateway = await startGateway(
    {
      guardian: {
        ...config.guardian,
        enabled: true,
        intervalMs: 500,
        maxBackoffMs: 2000,
      },
    },
    createLogger({ level: "info", destination: logSink }),
  );
  cleanup.add(() => gateway.stop());
  bare = await startGateway();
  cleanup.add(() => bare.stop());
  gateway.guardianEvents.on("event", (event) => guardianEvents.push(event));
  owner = await tokenFor(uniqueEmail("owner"));
  await createTestAccount(gateway, cleanup, account, owner);
  expect((await createQueue("kept")).errors).toBeUndefined();
  cleanup.add(() => brokerAdmin().deleteQueue(keptQueue).catch(() => {}));
  await declareTestExchange(gateway, cleanup, exchange);

  const client = wsClient(gateway, owner);
  cleanup.add(() => client.dispose());
  feed = await subscribe(client, "#");
  queueStats = new Collected(
    client,
    `subscription ($a: String!) { queueStats(account: $a) { name } }`,
    { a: account },
  );
  cleanup.add(() => queueStats.stop());
  await queueStats.until(() => queueStats.events.length > 0);
}, 90_000);

afterAll(async () => {
  await restoreDependencies();
  await cleanup.run();
}, 120_000);

/**
 * Subscribes to the test exchange with a pattern ending in "#", and waits
 * until a message reaches the subscriber.
 */
async function subscribe(
  client: WsClient,
  pattern: string,
): Promise<Collected<{ messages: Record<string, any> }>> {
  const subscription = new Collected<{ messages: Record<string, any> }>(
    client,
    `subscription ($e: String!, $p: String!) {
       messages(exchange: $e, routingKeyPattern: $p) { routingKey payload }
     }`,
    { e: exchange, p: pattern },
  );
  cleanup.add(() => subscription.stop());
  // A publish before the live queue is bound would be lost, so deliveries
  // are retried until the first arrives.
  const probe = pattern.replace("#", `probe.${uniqueName("p")}`);
  await eventually(
    async () => {
      await gateway.amqp.publish(exchange, probe, Buffer.from("{}"));
      await sleep(200);
      return subscription.events.some((e) => e.messages.routingKey === probe)
        ? true
        : undefined;
    },
    20_000,
    100,
  );
  return subscription;
}

// --- requests -------------------------------------------------------------

function createAccount(
  username: string,
  via: Gateway = gateway,
): Promise<GraphQLResponse> {
  return gql(
    via,
    `mutation ($u: String!) {
       createAccount(input: { username: $u }) { password }
     }`,
    { u: username },
    owner,
  );
}

function createQueue(name: string): Promise<GraphQLResponse> {
  return gql(
    gateway,
    `mutation ($a: String!, $n: String!) {
       createQueue(input: { account: $a, name: $n }) { name }
     }`,
    { a: account, n: name },
    owner,
  );
}

function readQueue(name: string): Promise<GraphQLResponse> {
  return gql(
    gateway,
    `query ($n: String!) { queue(name: $n) { name messages } }`,
    { n: name },
    owner,
  );
}

function listAccounts(): Promise<GraphQLResponse> {
  return gql(gateway, `{ accounts { username } }`, {}, owner);
}

/** Runs a request and returns its response with the time it took. */
async function timed(
  request: () => Promise<GraphQLResponse>,
): Promise<{ response: GraphQLResponse; ms: number }> {
  const started = Date.now();
  const response = await request();
  return { response, ms: Date.now() - started };
}

async function probe(path: "/healthz" | "/readyz") {
  const started = Date.now();
  const response = await fetch(gateway.url.replace(/\/graphql$/, path));
  const body = (await response.json()) as Record<string, any>;
  return { status: response.status, body, ms: Date.now() - started };
}

/** Publishes one message and waits until the subscription delivers it. */
async function expectDelivery(
  subscription: Collected<{ messages: Record<string, any> }>,
  routingKey: string,
): Promise<void> {
  await gateway.amqp.publish(exchange, routingKey, Buffer.from('{"n":1}'));
  await subscription.until(
    () => subscription.events.some((e) => e.messages.routingKey === routingKey),
    10_000,
  );
}

/** Declares a queue of the test account over AMQP, as a client would. */
async function declareOverAmqp(suffix: string): Promise<string> {
  const name = `queue/${account}/${suffix}`;
  // A new channel each time, because a broker restart since the last
  // call would have closed an older one.
  const channel = await gateway.amqp.createChannel();
  await channel.assertQueue(name, { durable: false });
  await channel.close();
  cleanup.add(() => brokerAdmin().deleteQueue(name).catch(() => {}));
  return name;
}

/**
 * Creates an account through the gateway that had no subscription during
 * the outage, then opens its first subscription there.
 */
async function expectBareRecovers(): Promise<void> {
  const username = uniqueName("bare-back");
  const response = await createAccount(username, bare);
  cleanup.add(() => brokerAdmin().deleteUser(username).catch(() => {}));
  expect(response.errors).toBeUndefined();
  const client = wsClient(bare, owner);
  cleanup.add(() => client.dispose());
  const first = await subscribe(client, "bare.#");
  expect(first.errors).toEqual([]);
}

/** Waits for two more queueStats events, so at least one is new. */
async function expectQueueStatsResume(): Promise<void> {
  const seen = queueStats.events.length;
  await queueStats.until(() => queueStats.events.length >= seen + 2, 15_000);
  const latest = queueStats.events.at(-1)!.queueStats.map((q) => q.name);
  expect(latest).toContain(keptQueue);
  expect(queueStats.errors).toEqual([]);
  expect(queueStats.completed).toBe(false);
}

function guardianEvent(queue: string, kind: string, since = 0) {
  return guardianEvents.find(
    (e) => e.queue === queue && e.kind === kind && e.at.getTime() >= since,
  );
}

async function brokerHasQueue(name: string): Promise<boolean> {
  try {
    await brokerAdmin().getQueue(name);
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

// --- the management API ---------------------------------------------------

describe("management API disabled", () => {
  const failedAccount = uniqueName("mgmt-down");
  let since = 0;

  beforeAll(async () => {
    since = Date.now();
    await disableManagement();
    expect(await managementResponds()).toBe(false);
  }, 90_000);

  afterAll(() => enableManagement(), 90_000);

  test("createAccount fails fast", async () => {
    const { response, ms } = await timed(() => createAccount(failedAccount));
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(ms).toBeLessThan(FAIL_FAST_MS);
    const message = response.errors![0].message;
    expect(message).toMatch(/management API .* is not reachable/);
    expect(message).toMatch(/retry/);
  });

  test("createAccount leaves no row", async () => {
    const row = await gateway.db.account.findUnique({
      where: { username: failedAccount },
    });
    expect(row).toBeNull();
  });

  test("createQueue fails fast, no row", async () => {
    const { response, ms } = await timed(() => createQueue("mgmt-down"));
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(ms).toBeLessThan(FAIL_FAST_MS);
    const row = await gateway.db.queue.findUnique({
      where: { name: `queue/${account}/mgmt-down` },
    });
    expect(row).toBeNull();
  });

  test("queue query fails fast", async () => {
    const { response, ms } = await timed(() => readQueue(keptQueue));
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(ms).toBeLessThan(FAIL_FAST_MS);
  });

  test("gateway without subscriptions fails fast", async () => {
    const { response, ms } = await timed(() =>
      createAccount(failedAccount, bare),
    );
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(ms).toBeLessThan(FAIL_FAST_MS);
  });

  test("accounts query still works", async () => {
    const response = await listAccounts();
    expect(response.errors).toBeUndefined();
    expect(response.data?.accounts).toContainEqual({ username: account });
  });

  test("queues query serves the last poll", async () => {
    const response = await gql(
      gateway,
      `query ($a: String!) { queues(account: $a) { name } }`,
      { a: account },
      owner,
    );
    expect(response.errors).toBeUndefined();
    expect(response.data?.queues).toContainEqual({ name: keptQueue });
  });

  test("live subscription keeps delivering", async () => {
    await expectDelivery(feed, "during.management.outage");
    expect(feed.errors).toEqual([]);
    expect(feed.completed).toBe(false);
  });

  test("readyz names the management API", async () => {
    const { status, body, ms } = await probe("/readyz");
    expect(status).toBe(503);
    expect(ms).toBeLessThan(FAIL_FAST_MS);
    expect(body.checks.management.ok).toBe(false);
    expect(body.checks.management.error).toMatch(/management API/);
    expect(body.checks.database.ok).toBe(true);
    expect(body.checks.amqp.ok).toBe(true);
  });

  test("healthz stays ok", async () => {
    const { status, body } = await probe("/healthz");
    expect(status).toBe(200);
    expect(body.status).toBe("ok");
  });

  test("guardian records the failed poll", async () => {
    const event = await eventually(
      async () => guardianEvent("", "POLL_FAILED", since),
      10_000,
    );
    // A poll during the plugin's shutdown may get a 5xx reply instead.
    expect(event.detail).toMatch(/^MANAGEMENT_API_(UNREACHABLE|ERROR): /);
    expect(gateway.guardian!.acting).toBe(true);
  });
});

describe("management API enabled again", () => {
  let since = 0;

  beforeAll(async () => {
    await enableManagement();
    since = Date.now();
  }, 90_000);

  test("createAccount succeeds", async () => {
    const username = uniqueName("mgmt-back");
    const response = await createAccount(username);
    cleanup.add(() => brokerAdmin().deleteUser(username).catch(() => {}));
    expect(response.errors).toBeUndefined();
    expect(await brokerAdmin().userExists(username)).toBe(true);
  });

  test("queue query succeeds", async () => {
    const response = await readQueue(keptQueue);
    expect(response.errors).toBeUndefined();
    expect(response.data?.queue.name).toBe(keptQueue);
  });

  test("readyz is ready", async () => {
    const { status, body } = await probe("/readyz");
    expect(body.checks).toEqual({
      database: { ok: true },
      management: { ok: true },
      amqp: { ok: true },
    });
    expect(status).toBe(200);
  });

  test("guardian adopts a new queue", async () => {
    const queue = await declareOverAmqp("after-management");
    await eventually(
      async () => guardianEvent(queue, "ADOPTED", since),
      20_000,
    );
  }, 30_000);

  test("queueStats subscription resumes", expectQueueStatsResume, 20_000);

  test("gateway without subscriptions recovers", expectBareRecovers, 30_000);

  test("guardian deleted nothing", async () => {
    expect(await brokerHasQueue(keptQueue)).toBe(true);
    const row = await gateway.db.queue.findUnique({
      where: { name: keptQueue },
    });
    expect(row?.name).toBe(keptQueue);
    const deletions = guardianEvents.filter(
      (e) => e.queue === keptQueue && ["DELETED", "VANISHED"].includes(e.kind),
    );
    expect(deletions).toEqual([]);
  });
});

// --- PostgreSQL -----------------------------------------------------------

describe("PostgreSQL stopped", () => {
  const failedAccount = uniqueName("pg-down");
  const failedQueue = `queue/${account}/pg-down`;
  let laterClient: WsClient;
  let snapshots = 0;
  const countSnapshot = () => {
    snapshots += 1;
  };

  beforeAll(async () => {
    await pgCtlCluster("stop");
    expect(await postgresReady()).toBe(false);
    gateway.stats.on("snapshot", countSnapshot);
  }, 90_000);

  afterAll(async () => {
    gateway.stats.off("snapshot", countSnapshot);
    await startPostgres();
  }, 90_000);

  test("createAccount fails fast", async () => {
    const { response, ms } = await timed(() => createAccount(failedAccount));
    expect(errorCodes(response)).toEqual(["DATABASE_UNAVAILABLE"]);
    expect(ms).toBeLessThan(FAIL_FAST_MS);
    const message = response.errors![0].message;
    expect(message).toMatch(/database \(PostgreSQL\) cannot be reached/);
    expect(message).toMatch(/retry/);
  });

  test("createAccount creates no RabbitMQ user", async () => {
    expect(await brokerAdmin().userExists(failedAccount)).toBe(false);
  });

  test("createQueue fails fast, no queue", async () => {
    const { response, ms } = await timed(() => createQueue("pg-down"));
    expect(errorCodes(response)).toEqual(["DATABASE_UNAVAILABLE"]);
    expect(ms).toBeLessThan(FAIL_FAST_MS);
    expect(await brokerHasQueue(failedQueue)).toBe(false);
  });

  test("gateway without subscriptions fails fast", async () => {
    const { response, ms } = await timed(() =>
      createAccount(failedAccount, bare),
    );
    expect(errorCodes(response)).toEqual(["DATABASE_UNAVAILABLE"]);
    expect(ms).toBeLessThan(FAIL_FAST_MS);
  });

  test("accounts query fails fast", async () => {
    const { response, ms } = await timed(listAccounts);
    expect(errorCodes(response)).toEqual(["DATABASE_UNAVAILABLE"]);
    expect(ms).toBeLessThan(FAIL_FAST_MS);
  });

  test("repeated failures log one error", async () => {
    for (let i = 0; i < 5; i += 1) {
      const response = await listAccounts();
      expect(errorCodes(response)).toEqual(["DATABASE_UNAVAILABLE"]);
    }
    const lines = logLines.filter((line) =>
      line.msg.startsWith("the database is unavailable"),
    );
    expect(lines.map((line) => line.level)).toEqual([ERROR_LEVEL]);
  });

  test("live subscription keeps delivering", async () => {
    await expectDelivery(feed, "during.database.outage");
    expect(feed.errors).toEqual([]);
    expect(feed.completed).toBe(false);
  });

  test("new subscription connects and delivers", async () => {
    laterClient = wsClient(gateway, owner);
    cleanup.add(() => laterClient.dispose());
    const later = await subscribe(laterClient, "later.#");
    await expectDelivery(later, "later.during.database.outage");
    expect(later.errors).toEqual([]);
  }, 30_000);

  test("queueStats subscribe fails fast", async () => {
    const client = wsClient(gateway, owner);
    cleanup.add(() => client.dispose());
    const started = Date.now();
    const stats = new Collected(
      client,
      `subscription ($a: String!) { queueStats(account: $a) { name } }`,
      { a: account },
    );
    cleanup.add(() => stats.stop());
    await stats.until(() => stats.errors.length > 0, FAIL_FAST_MS);
    expect(Date.now() - started).toBeLessThan(FAIL_FAST_MS);
    const codes = stats.errors.map(
      (error) => (error as { extensions?: { code?: string } }).extensions?.code,
    );
    expect(codes).toEqual(["DATABASE_UNAVAILABLE"]);
  });

  test("readyz names the database", async () => {
    const { status, body, ms } = await probe("/readyz");
    expect(status).toBe(503);
    expect(ms).toBeLessThan(FAIL_FAST_MS);
    expect(body.checks.database.ok).toBe(false);
    expect(body.checks.management.ok).toBe(true);
    expect(body.checks.amqp.ok).toBe(true);
  });

  test("healthz stays ok", async () => {
    const { status } = await probe("/healthz");
    expect(status).toBe(200);
  });

  // The guardian and queueStats subscribers then fail on several polls.
  test("stats polls go on", async () => {
    await eventually(async () => (snapshots >= 5 ? true : undefined), 10_000);
  });

  test("guardian logs the failed pass", async () => {
    const line = await eventually(
      async () =>
        logLines.find(
          (l) => l.msg === "guardian pass failed" && l.kind === "DATABASE",
        ),
      10_000,
    );
    expect(line.level).toBe(ERROR_LEVEL);
  });

  describe("then started again", () => {
    let since = 0;

    beforeAll(async () => {
      await startPostgres();
      since = Date.now();
    }, 90_000);

    test("createAccount succeeds", async () => {
      const username = uniqueName("pg-back");
      const response = await createAccount(username);
      cleanup.add(() => brokerAdmin().deleteUser(username).catch(() => {}));
      expect(response.errors).toBeUndefined();
      const row = await gateway.db.account.findUnique({ where: { username } });
      expect(row?.username).toBe(username);
    });

    test("failed mutations left no rows", async () => {
      const accountRow = await gateway.db.account.findUnique({
        where: { username: failedAccount },
      });
      expect(accountRow).toBeNull();
      const queueRow = await gateway.db.queue.findUnique({
        where: { name: failedQueue },
      });
      expect(queueRow).toBeNull();
    });

    test("accounts query succeeds", async () => {
      const response = await listAccounts();
      expect(response.errors).toBeUndefined();
      expect(response.data?.accounts).toContainEqual({ username: account });
    });

    test("readyz is ready", async () => {
      const { status } = await probe("/readyz");
      expect(status).toBe(200);
    });

    test("queueStats subscription resumes", expectQueueStatsResume, 20_000);

    test(
      "gateway without subscriptions recovers",
      expectBareRecovers,
      30_000,
    );

    test("guardian adopts a new queue", async () => {
      const queue = await declareOverAmqp("after-database");
      await eventually(
        async () => guardianEvent(queue, "ADOPTED", since),
        20_000,
      );
      expect(gateway.guardian!.acting).toBe(true);
    }, 30_000);

    test("announced events arrive again", async () => {
      const queue = `queue/${account}/announced`;
      const announcer = new PgClient({ connectionString: TEST_DATABASE_URL });
      await announcer.connect();
      cleanup.add(() => announcer.end());
      const event = {
        queue,
        account,
        kind: "WARNED",
        size: 1,
        threshold: 0,
        detail: "announced by another gateway",
        at: new Date().toISOString(),
      };
      await eventually(
        async () => {
          await announcer.query("SELECT pg_notify($1, $2)", [
            GUARDIAN_EVENTS_CHANNEL,
            JSON.stringify(event),
          ]);
          await sleep(250);
          return guardianEvent(queue, "WARNED") ? true : undefined;
        },
        15_000,
        0,
      );
    }, 30_000);
  });
});

// --- a database that accepts connections and never replies ---------------

test("silent database fails within timeout", async () => {
  const sockets: Socket[] = [];
  const silent = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) =>
    silent.listen(0, "127.0.0.1", resolve),
  );
  cleanup.add(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const { port } = silent.address() as AddressInfo;
  const db = createDatabase(`postgresql://postgres@127.0.0.1:${port}/silent`);
  cleanup.add(() => db.$disconnect());

  const started = Date.now();
  const error = await db.account.findMany().catch((caught: unknown) => caught);
  expect(Date.now() - started).toBeLessThan(CONNECT_TIMEOUT_MS + 2000);
  expect(sockets.length).toBeGreaterThan(0);
  expect(isDatabaseUnavailable(error)).toBe(true);
}, 15_000);

// --- the whole file -------------------------------------------------------

test("no unhandled rejection or exception", () => {
  expect(failures.unhandledRejections).toEqual([]);
  expect(failures.uncaughtExceptions).toEqual([]);
});

test("each error is logged at most twice", () => {
  const errors = logLines.filter((line) => line.level >= ERROR_LEVEL);
  const perMessage = new Map<string, number>();
  for (const line of errors) {
    perMessage.set(line.msg, (perMessage.get(line.msg) ?? 0) + 1);
  }
  // Once per outage is expected; once per request or retry is not.
  const repeated = [...perMessage].filter(([, count]) => count > 2);
  expect(repeated).toEqual([]);
  expect(errors.length).toBeLessThanOrEqual(12);
});
