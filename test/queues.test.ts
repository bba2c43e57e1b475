// Queues and bindings: created on the broker and recorded, and rejected
// with no change on the broker for a stranger's account, an unknown
// exchange or a malformed pattern.
import type { Gateway } from "../src/server";
import {
  ADMIN_EMAIL,
  brokerAdmin,
  Cleanup,
  createTestAccount,
  declareTestExchange,
  errorCodes,
  eventually,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let owner: string;
let stranger: string;
const account = uniqueName("queues");
const exchange = `exchange/${uniqueName("test-queues")}/v1`;

const CREATE_QUEUE = `mutation ($input: CreateQueueInput!) {
  createQueue(input: $input) { name account durable messages bindings { exchange } }
}`;
const CREATE_BINDING = `mutation ($input: BindingInput!) {
  createBinding(input: $input) { queue exchange routingKeyPattern }
}`;
const DELETE_BINDING = `mutation ($input: BindingInput!) { deleteBinding(input: $input) }`;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  owner = await tokenFor(uniqueEmail("owner"));
  stranger = await tokenFor(uniqueEmail("stranger"));
  await createTestAccount(gateway, cleanup, account, owner);
  await declareTestExchange(gateway, cleanup, exchange);
});

afterAll(() => cleanup.run());

async function createQueue(name: string, token = owner, durable?: boolean) {
  cleanup.add(() =>
    brokerAdmin().deleteQueue(`queue/${account}/${name}`).catch(() => undefined),
  );
  return gql(gateway, CREATE_QUEUE, { input: { account, name, durable } }, token);
}

test("create queue names it by account", async () => {
  const response = await createQueue("plain");
  expect(response.data?.createQueue).toMatchObject({
    name: `queue/${account}/plain`,
    account,
    durable: true,
  });
  const info = await brokerAdmin().getQueue(`queue/${account}/plain`);
  expect(info.durable).toBe(true);
});

test("create queue honours durable false", async () => {
  await createQueue("transient", owner, false);
  const info = await brokerAdmin().getQueue(`queue/${account}/transient`);
  expect(info.durable).toBe(false);
});

test("existing queue conflicts", async () => {
  await createQueue("again");
  const response = await createQueue("again");
  expect(errorCodes(response)).toEqual(["CONFLICT"]);
  expect(response.errors?.[0].message).toContain("pick another name");
});

test.each([
  ["double slash", "a//b"],
  ["percent", "a%2Fb"],
  ["hash", "a#b"],
  ["question mark", "a?b"],
  ["space", "a b"],
  ["too long", "x".repeat(256)],
  ["dot word", "."],
  ["dot-dot path", "x/../../other"],
])("malformed queue name rejected: %s", async (_case, name) => {
  const response = await createQueue(name);
  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
});

test("stranger's queue is forbidden", async () => {
  const response = await createQueue("intruder", stranger);
  expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  const queues = await brokerAdmin().listQueues();
  expect(queues.map((q) => q.name)).not.toContain(`queue/${account}/intruder`);
});

test("unknown account is not found", async () => {
  const response = await gql(
    gateway,
    CREATE_QUEUE,
    { input: { account: uniqueName("ghost"), name: "q" } },
    owner,
  );
  expect(errorCodes(response)).toEqual(["NOT_FOUND"]);
});

test("binding created and listed", async () => {
  await createQueue("bound");
  const queue = `queue/${account}/bound`;
  const response = await gql(
    gateway,
    CREATE_BINDING,
    { input: { queue, exchange, routingKeyPattern: "primary.*.#" } },
    owner,
  );
  expect(response.data?.createBinding).toEqual({
    queue,
    exchange,
    routingKeyPattern: "primary.*.#",
  });
  const bindings = await brokerAdmin().listQueueBindings(queue);
  expect(bindings.map((b) => [b.source, b.routing_key])).toContainEqual([
    exchange,
    "primary.*.#",
  ]);
  const row = await gateway.db.binding.findFirst({
    where: { queue: { name: queue }, exchange },
  });
  expect(row?.routingKeyPattern).toBe("primary.*.#");
});

test("concurrent identical bindings all succeed", async () => {
  await createQueue("raced");
  const queue = `queue/${account}/raced`;
  const input = { queue, exchange, routingKeyPattern: "race.#" };
  // NOTE: whether two inserts collide depends on timing, so a run may pass
  // without reaching the retry of the losing insert.
  const responses = await Promise.all(
    Array.from({ length: 15 }, () =>
      gql(gateway, CREATE_BINDING, { input }, owner),
    ),
  );

  expect(responses.flatMap(errorCodes)).toEqual([]);
  const rows = await gateway.db.binding.count({
    where: { queue: { name: queue }, exchange, routingKeyPattern: "race.#" },
  });
  expect(rows).toBe(1);
  const bindings = await brokerAdmin().listQueueBindings(queue);
  expect(bindings.map((b) => [b.source, b.routing_key])).toContainEqual([
    exchange,
    "race.#",
  ]);
});

test("binding deleted from broker and database", async () => {
  await createQueue("unbound");
  const queue = `queue/${account}/unbound`;
  const input = { queue, exchange, routingKeyPattern: "a.b" };
  await gql(gateway, CREATE_BINDING, { input }, owner);
  const response = await gql(gateway, DELETE_BINDING, { input }, owner);
  expect(response.data?.deleteBinding).toBe(true);
  const bindings = await brokerAdmin().listQueueBindings(queue);
  expect(bindings.filter((b) => b.source === exchange)).toEqual([]);
  const again = await gql(gateway, DELETE_BINDING, { input }, owner);
  expect(errorCodes(again)).toEqual(["NOT_FOUND"]);
});

test("stranger's binding is forbidden", async () => {
  await createQueue("guarded");
  const queue = `queue/${account}/guarded`;
  const response = await gql(
    gateway,
    CREATE_BINDING,
    { input: { queue, exchange, routingKeyPattern: "#" } },
    stranger,
  );
  expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  const bindings = await brokerAdmin().listQueueBindings(queue);
  expect(bindings.filter((b) => b.source === exchange)).toEqual([]);
});

test("unknown exchange is not found", async () => {
  await createQueue("lonely");
  const queue = `queue/${account}/lonely`;
  const missing = `exchange/${uniqueName("missing")}/v1`;
  const response = await gql(
    gateway,
    CREATE_BINDING,
    { input: { queue, exchange: missing, routingKeyPattern: "#" } },
    owner,
  );
  expect(errorCodes(response)).toEqual(["NOT_FOUND"]);
  expect(response.errors?.[0].message).toContain(missing);
  expect(await brokerAdmin().listQueueBindings(queue)).toHaveLength(1);
});

test.each([
  ["star inside word", "a.b*"],
  ["hash inside word", "#x.y"],
])("malformed pattern rejected: %s", async (_case, routingKeyPattern) => {
  await createQueue("patterns");
  const queue = `queue/${account}/patterns`;
  const response = await gql(
    gateway,
    CREATE_BINDING,
    { input: { queue, exchange, routingKeyPattern } },
    owner,
  );
  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors?.[0].message).toContain(routingKeyPattern);
  const bindings = await brokerAdmin().listQueueBindings(queue);
  expect(bindings.filter((b) => b.source === exchange)).toEqual([]);
});

test("non-Pulse exchange name rejected", async () => {
  await createQueue("amq");
  const response = await gql(
    gateway,
    CREATE_BINDING,
    {
      input: {
        queue: `queue/${account}/amq`,
        exchange: "amq.topic",
        routingKeyPattern: "#",
      },
    },
    owner,
  );
  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
});

test("queues lists account queues", async () => {
  await createQueue("listed");
  await gateway.stats.refresh();
  const response = await gql(
    gateway,
    `query ($a: String!) { queues(account: $a) { name } }`,
    { a: account },
    owner,
  );
  expect(response.data?.queues).toContainEqual({
    name: `queue/${account}/listed`,
  });
});

test("delete queue removes it", async () => {
  await createQueue("short-lived");
  const name = `queue/${account}/short-lived`;
  const response = await gql(
    gateway,
    `mutation ($n: String!) { deleteQueue(name: $n) }`,
    { n: name },
    owner,
  );
  expect(response.data?.deleteQueue).toBe(true);
  const queues = await brokerAdmin().listQueues();
  expect(queues.map((q) => q.name)).not.toContain(name);
});

test("stranger cannot delete queue", async () => {
  await createQueue("kept");
  const name = `queue/${account}/kept`;
  const response = await gql(
    gateway,
    `mutation ($n: String!) { deleteQueue(name: $n) }`,
    { n: name },
    stranger,
  );
  expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  await expect(brokerAdmin().getQueue(name)).resolves.toBeDefined();
});

test("unbounded settable by admins only", async () => {
  await createQueue("big");
  const name = `queue/${account}/big`;
  const SET = `mutation ($n: String!) { setQueueUnbounded(name: $n, unbounded: true) { unbounded } }`;
  const denied = await gql(gateway, SET, { n: name }, owner);
  expect(errorCodes(denied)).toEqual(["FORBIDDEN"]);
  expect(denied.errors![0].message).toContain("ask an admin");
  const admin = await tokenFor(ADMIN_EMAIL);
  const allowed = await gql(gateway, SET, { n: name }, admin);
  expect(allowed.data?.setQueueUnbounded.unbounded).toBe(true);
  const row = await eventually(async () =>
    (await gateway.db.queue.findUnique({ where: { name } })) ?? undefined,
  );
  expect(row.unbounded).toBe(true);
});

test("concurrent deletes: one succeeds, rest not found", async () => {
  await createQueue("contested");
  const name = `queue/${account}/contested`;
  const responses = await Promise.all(
    Array.from({ length: 6 }, () =>
      gql(gateway, `mutation ($n: String!) { deleteQueue(name: $n) }`, { n: name }, owner),
    ),
  );
  const successes = responses.filter((r) => r.data?.deleteQueue === true);
  expect(successes).toHaveLength(1);
  expect(responses.flatMap(errorCodes)).toEqual(Array(5).fill("NOT_FOUND"));
});

test("queues lists a queue created since the last poll", async () => {
  const QUEUES = `query ($a: String!) { queues(account: $a) { name } }`;
  // The first query takes a snapshot; the next poll is seconds away.
  expect((await gql(gateway, QUEUES, { a: account }, owner)).errors).toBeUndefined();
  expect((await createQueue("just-made")).errors).toBeUndefined();

  const response = await gql(gateway, QUEUES, { a: account }, owner);

  const names = (response.data?.queues as { name: string }[]).map((q) => q.name);
  expect(names).toContain(`queue/${account}/just-made`);
});
