// Real broker restarts (rabbitmqctl stop_app, then start_app). Under an
// open graphql-ws socket, the gateway reconnects, declares and binds its
// live queue again, sends the subscriber a gap notice, and delivers new
// messages on the same socket. With the broker stopped and the guardian
// running, requests fail fast with BROKER_UNAVAILABLE, nothing is left
// half made, and afterwards mutations and the guardian work again without
// a restart of the gateway. Needs rabbitmqctl on this machine, as CI and
// the README's set-up have it.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

import type { Gateway } from "../src/server";
import type { GuardianEventRecord } from "../src/guardian";
import {
  brokerAdmin,
  Cleanup,
  Collected,
  errorCodes,
  eventually,
  gql,
  startGateway,
  testConfig,
  tokenFor,
  trackProcessFailures,
  uniqueEmail,
  uniqueName,
  wsClient,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
// Durable, so that it survives the restart as Pulse's exchanges do.
const exchange = `exchange/${uniqueName("test-restart")}/v1`;

/**
 * Runs rabbitmqctl without blocking the event loop, so the gateway in this
 * process goes on serving while the broker stops and starts.
 */
async function rabbitmqctl(...args: string[]): Promise<void> {
  await promisify(execFile)("rabbitmqctl", args, { timeout: 120_000 });
}

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  const channel = await gateway.amqp.createChannel();
  await channel.assertExchange(exchange, "topic", { durable: true });
  await channel.close();
  cleanup.add(async () => {
    await gateway.amqp.waitForConnection(60_000);
    const channel = await gateway.amqp.createChannel();
    await channel.deleteExchange(exchange);
    await channel.close();
  });
});

afterAll(() => cleanup.run());

// Anything the gateway leaves unhandled while the broker is away lands here.
const failures = trackProcessFailures(cleanup);

test("delivery resumes after a broker restart", async () => {
  const client = wsClient(gateway, await tokenFor(uniqueEmail()));
  cleanup.add(() => client.dispose());
  const feed = new Collected<{ messages: Record<string, any> }>(
    client,
    `subscription ($e: String!) {
       messages(exchange: $e, routingKeyPattern: "#") {
         routingKey payload notice { kind }
       }
     }`,
    { e: exchange },
  );
  await eventually(async () =>
    gateway.live.stats().subscribers === 1 ? true : undefined,
  );
  // The subscriber is counted before its queue exists, and a restart while
  // the queue is still opening ends the subscription instead of a GAP.
  const livePrefix = `queue/${gateway.config.gatewayAccount}/live/`;
  await eventually(async () => {
    const bindings = await brokerAdmin().listBindings();
    const bound = bindings.some(
      (b) => b.source === exchange && b.destination.startsWith(livePrefix),
    );
    return bound ? true : undefined;
  });

  await rabbitmqctl("stop_app");
  await rabbitmqctl("start_app");
  await rabbitmqctl("await_startup");

  await feed.until(
    () => feed.events.some((e) => e.messages.notice?.kind === "GAP"),
    60_000,
  );
  await gateway.amqp.publish(exchange, "after.restart", Buffer.from('{"n":1}'));
  await feed.until(
    () => feed.events.some((e) => e.messages.routingKey === "after.restart"),
  );
  expect(feed.errors).toEqual([]);
  expect(feed.completed).toBe(false);
  feed.stop();
}, 120_000);

const CREATE_ACCOUNT = `mutation ($u: String!) {
  createAccount(input: { username: $u }) { account { username } }
}`;

test("requests fail fast while the broker is stopped, and work after", async () => {
  const guarded = await startGateway({
    guardian: { ...testConfig().guardian, enabled: true, intervalMs: 500 },
  });
  cleanup.add(() => guarded.stop());
  const events: GuardianEventRecord[] = [];
  guarded.guardianEvents.on("event", (event) => events.push(event));
  const token = await tokenFor(uniqueEmail("outage"));
  const account = uniqueName("outage");
  expect((await gql(guarded, CREATE_ACCOUNT, { u: account }, token)).errors).toBeUndefined();
  cleanup.add(() => brokerAdmin().deleteUser(account).catch(() => undefined));
  const queue = `queue/${account}/kept`;
  const created = await gql(
    guarded,
    `mutation ($a: String!) { createQueue(input: { account: $a, name: "kept" }) { name } }`,
    { a: account },
    token,
  );
  expect(created.errors).toBeUndefined();
  cleanup.add(() => brokerAdmin().deleteQueue(queue).catch(() => undefined));

  await rabbitmqctl("stop_app");
  let stopped = true;
  cleanup.add(async () => {
    if (stopped) await rabbitmqctl("start_app");
  });
  const during = uniqueName("during");
  try {
    const started = Date.now();
    const refused = await gql(guarded, CREATE_ACCOUNT, { u: during }, token);
    const elapsedMs = Date.now() - started;
    expect(errorCodes(refused)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(refused.errors?.[0].message).toMatch(/RabbitMQ|broker/i);
    // Fast, not after a long hang: well under the HTTP client's patience.
    expect(elapsedMs).toBeLessThan(15_000);
    expect(await guarded.db.account.findUnique({ where: { username: during } })).toBeNull();

    // Queries that need only the database still work. Statistics read now
    // fail.
    const accounts = await gql(guarded, `query { accounts { username } }`, {}, token);
    expect(accounts.data?.accounts).toEqual([{ username: account }]);
    const stats = await gql(
      guarded,
      `query ($q: String!) { queue(name: $q) { name messages } }`,
      { q: queue },
      token,
    );
    expect(errorCodes(stats)).toEqual(["BROKER_UNAVAILABLE"]);

    const ready = await fetch(new URL("/readyz", guarded.url));
    expect(ready.status).toBe(503);
    expect((await fetch(new URL("/healthz", guarded.url))).status).toBe(200);

    // Several guardian intervals pass with the broker away.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
  } finally {
    await rabbitmqctl("start_app");
    stopped = false;
    await rabbitmqctl("await_startup");
  }

  const after = uniqueName("after");
  await eventually(async () => {
    const response = await gql(guarded, CREATE_ACCOUNT, { u: after }, token);
    return response.errors ? undefined : response;
  }, 60_000, 1_000);
  cleanup.add(() => brokerAdmin().deleteUser(after).catch(() => undefined));
  expect(await brokerAdmin().userExists(during)).toBe(false);
  await eventually(async () => {
    const ready = await fetch(new URL("/readyz", guarded.url));
    return ready.status === 200 ? true : undefined;
  }, 60_000);

  // The durable queue outlived the outage, and the guardian acts again: the
  // queue past its warning size is warned.
  await guarded.amqp.waitForConnection(60_000);
  await guarded.db.queue.update({ where: { name: queue }, data: { warnSize: 2 } });
  const channel = await guarded.amqp.createChannel();
  for (let i = 0; i < 5; i += 1) channel.sendToQueue(queue, Buffer.from(`{"i":${i}}`));
  await channel.close();
  await eventually(
    async () => events.find((e) => e.queue === queue && e.kind === "WARNED"),
    30_000,
  );
  expect(failures.unhandledRejections).toEqual([]);
  expect(failures.uncaughtExceptions).toEqual([]);
}, 240_000);
