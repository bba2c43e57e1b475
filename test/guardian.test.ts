// The guardian on the real broker and database: adoption without touching
// RabbitMQ users, warning and recovery, deletion past the threshold unless
// unbounded, and queues that vanish. Each test sets thresholds on its own
// queue's row, so no other queue of the broker crosses them.
import { connect, type Channel } from "amqplib";

import { Guardian, type GuardianEventRecord } from "../src/guardian";
import { reconcileBindings } from "../src/guardian/reconcile";
import type { Gateway } from "../src/server";
import {
  amqpUrlAs,
  brokerAdmin,
  Cleanup,
  declareTestExchange,
  eventually,
  gql,
  guardianFor,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let guardian: Guardian;
let channel: Channel;
let ownerToken: string;
let accountPassword: string;
const account = uniqueName("guarded");
const events: GuardianEventRecord[] = [];

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  const created = await gql(
    gateway,
    `mutation ($u: String!) { createAccount(input: { username: $u }) { password } }`,
    { u: account },
    (ownerToken = await tokenFor(uniqueEmail("owner"))),
  );
  expect(created.errors).toBeUndefined();
  accountPassword = created.data!.createAccount.password;
  cleanup.add(() => brokerAdmin().deleteUser(account).catch(() => undefined));
  guardian = guardianFor(gateway);
  gateway.guardianEvents.on("event", (event) => events.push(event));
  channel = await gateway.amqp.createChannel();
  cleanup.add(() => channel.close());
});

afterAll(() => cleanup.run());

/** Declares a queue over AMQP, as a Pulse consumer would. */
async function declare(name: string): Promise<string> {
  await channel.assertQueue(name, { durable: false });
  cleanup.add(() => brokerAdmin().deleteQueue(name).catch(() => undefined));
  return name;
}

async function publish(queue: string, count: number): Promise<void> {
  for (let i = 0; i < count; i += 1) {
    channel.sendToQueue(queue, Buffer.from(JSON.stringify({ i })));
  }
}

/** Runs guardian passes until the broker reports the size and an event. */
async function passUntil(
  queue: string,
  kind: GuardianEventRecord["kind"],
): Promise<GuardianEventRecord> {
  return eventually(async () => {
    await guardian.check(await gateway.stats.refresh());
    return events.find((e) => e.queue === queue && e.kind === kind);
  }, 30_000, 500);
}

async function setThresholds(
  queue: string,
  data: { warnSize?: number; deleteSize?: number; unbounded?: boolean },
): Promise<void> {
  await gateway.db.queue.update({ where: { name: queue }, data });
}

test("adopts an AMQP-declared queue", async () => {
  const queue = await declare(`queue/${account}/declared-elsewhere`);
  const before = await brokerAdmin().getPermissions(account);
  const adopted = await passUntil(queue, "ADOPTED");
  expect(adopted.account).toBe(account);
  const row = await gateway.db.queue.findUnique({ where: { name: queue } });
  expect(row?.accountName).toBe(account);
  expect(await brokerAdmin().getPermissions(account)).toEqual(before);
});

test("adoption creates no RabbitMQ user", async () => {
  const stranger = uniqueName("unknown-account");
  const queue = await declare(`queue/${stranger}/orphan`);
  await passUntil(queue, "ADOPTED");
  expect(await brokerAdmin().userExists(stranger)).toBe(false);
});

test("ignores queues outside the convention", async () => {
  const queue = await declare(uniqueName("not-pulse"));
  await guardian.check(await gateway.stats.refresh());
  const row = await gateway.db.queue.findUnique({ where: { name: queue } });
  expect(row).toBeNull();
});

test("warns then records recovery", async () => {
  const queue = await declare(`queue/${account}/growing`);
  await passUntil(queue, "ADOPTED");
  await setThresholds(queue, { warnSize: 2, deleteSize: 100 });
  await publish(queue, 3);
  const warned = await passUntil(queue, "WARNED");
  expect(warned).toMatchObject({ size: 3, threshold: 2 });
  const row = await gateway.db.queue.findUnique({ where: { name: queue } });
  expect(row?.warned).toBe(true);

  await channel.purgeQueue(queue);
  const recovered = await passUntil(queue, "RECOVERED");
  expect(recovered).toMatchObject({ size: 0, threshold: 2 });
});

test("deletes past the delete size", async () => {
  const queue = await declare(`queue/${account}/overflowing`);
  await passUntil(queue, "ADOPTED");
  await setThresholds(queue, { warnSize: 1, deleteSize: 2 });
  await publish(queue, 3);
  const deleted = await passUntil(queue, "DELETED");
  expect(deleted).toMatchObject({ size: 3, threshold: 2 });
  const names = (await brokerAdmin().listQueues()).map((q) => q.name);
  expect(names).not.toContain(queue);
});

test("unbounded queue is not deleted", async () => {
  const queue = await declare(`queue/${account}/unbounded`);
  await passUntil(queue, "ADOPTED");
  await setThresholds(queue, { warnSize: 1, deleteSize: 2, unbounded: true });
  await publish(queue, 3);
  await passUntil(queue, "WARNED");
  await guardian.check(await gateway.stats.refresh());
  expect(events.filter((e) => e.queue === queue && e.kind === "DELETED")).toEqual([]);
  await expect(brokerAdmin().getQueue(queue)).resolves.toBeDefined();
});

test("records a vanished queue", async () => {
  const queue = await declare(`queue/${account}/fleeting`);
  await passUntil(queue, "ADOPTED");
  await channel.deleteQueue(queue);
  await passUntil(queue, "VANISHED");
  const row = await gateway.db.queue.findUnique({ where: { name: queue } });
  expect(row).toBeNull();
});

test("guardianEvents query returns history", async () => {
  const queue = events.find((e) => e.kind === "WARNED")!.queue;
  const response = await gql(
    gateway,
    `query ($q: String!) { guardianEvents(queue: $q, limit: 10) { kind size } }`,
    { q: queue },
    ownerToken,
  );
  const history = response.data?.guardianEvents as { kind: string }[];
  expect(history.map((event) => event.kind)).toEqual([
    "RECOVERED",
    "WARNED",
    "ADOPTED",
  ]);
  expect(history[1]).toEqual({ kind: "WARNED", size: 3 });
});

test("guardianEvents query hides strangers' queues", async () => {
  const response = await gql(
    gateway,
    "{ guardianEvents(limit: 500) { queue } }",
    {},
    await tokenFor(uniqueEmail("stranger")),
  );
  expect(response.data?.guardianEvents).toEqual([]);
});

test("events reach every gateway on the database", async () => {
  const other = await startGateway();
  cleanup.add(() => other.stop());
  const seenHere: GuardianEventRecord[] = [];
  const seenThere: GuardianEventRecord[] = [];
  const queue = `queue/${account}/announced`;
  gateway.guardianEvents.on("event", (e) => e.queue === queue && seenHere.push(e));
  other.guardianEvents.on("event", (e) => e.queue === queue && seenThere.push(e));

  await gateway.guardianEvents.record({
    queue,
    account,
    kind: "WARNED",
    size: 3,
    threshold: 2,
    detail: null,
  });

  await eventually(async () =>
    seenHere.length === 1 && seenThere.length === 1 ? true : undefined,
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(seenHere).toHaveLength(1);
  expect(seenThere[0]).toMatchObject({ queue, kind: "WARNED", size: 3 });
  expect(seenThere[0].at).toBeInstanceOf(Date);
});

test("a queue deleted during a pass leaves its bindings alone", async () => {
  const row = await gateway.db.queue.create({
    data: { name: `queue/${account}/deleted-mid-pass`, accountName: account },
  });
  // A client deletes the queue after the pass read its row.
  await gateway.db.queue.delete({ where: { id: row.id } });
  const changes = await reconcileBindings(
    gateway.db,
    row.id,
    [],
    [
      {
        source: "exchange/elsewhere/v1",
        destination: row.name,
        destination_type: "queue",
        routing_key: "#",
        vhost: gateway.config.vhost,
        properties_key: "%23",
        arguments: {},
      },
    ],
    new Date(Date.now() - 1000),
  );
  expect(changes).toEqual({ added: [], removed: [], current: [] });
  expect(await gateway.db.binding.count({ where: { queueId: row.id } })).toBe(0);
});

test("a binding deleted after the snapshot is not stored again", async () => {
  const exchange = `exchange/${uniqueName("guarded")}/v1`;
  await declareTestExchange(gateway, cleanup, exchange);
  const created = await gql(
    gateway,
    `mutation ($a: String!) { createQueue(input: { account: $a, name: "rebound" }) { name } }`,
    { a: account },
    ownerToken,
  );
  expect(created.errors).toBeUndefined();
  const queue = `queue/${account}/rebound`;
  cleanup.add(() => brokerAdmin().deleteQueue(queue).catch(() => undefined));
  const binding = { queue, exchange, routingKeyPattern: "a.#" };
  const bound = await gql(
    gateway,
    `mutation ($input: BindingInput!) { createBinding(input: $input) { queue } }`,
    { input: binding },
    ownerToken,
  );
  expect(bound.errors).toBeUndefined();
  const snapshot = await gateway.stats.refresh();
  expect(snapshot.bindings.get(queue)).toHaveLength(1);

  // The owner removes the binding while the snapshot is still being acted on.
  const removed = await gql(
    gateway,
    `mutation ($input: BindingInput!) { deleteBinding(input: $input) }`,
    { input: binding },
    ownerToken,
  );
  expect(removed.errors).toBeUndefined();
  await guardian.check(snapshot);

  expect(await gateway.db.binding.count({ where: { queue: { name: queue } } })).toBe(0);
  expect(events.filter((e) => e.queue === queue && e.kind.startsWith("BINDING"))).toEqual([]);
});

// The account's permission regex ^(queue/<account>/.*|...) lets it declare
// every name with its prefix, including the prefix alone.
test.each([
  ["empty rest", ""],
  ["rest of a space", " "],
  ["rest of a slash", "/"],
])("enforces sizes on queue with %s", async (_case, rest) => {
  const queue = `queue/${account}/${rest}`;
  const connection = await connect(amqpUrlAs(account, accountPassword));
  cleanup.add(() => connection.close());
  const own = await connection.createChannel();
  await own.assertQueue(queue, { durable: false });
  cleanup.add(() => brokerAdmin().deleteQueue(queue).catch(() => undefined));

  const adopted = await passUntil(queue, "ADOPTED");
  expect(adopted.account).toBe(account);
  await setThresholds(queue, { warnSize: 1, deleteSize: 2 });
  await publish(queue, 3);
  const deleted = await passUntil(queue, "DELETED");
  expect(deleted).toMatchObject({ size: 3, threshold: 2 });
  const names = (await brokerAdmin().listQueues()).map((q) => q.name);
  expect(names).not.toContain(queue);
  expect(events.filter((e) => e.queue === queue && e.kind === "MISNAMED_QUEUE")).toEqual([]);
});
