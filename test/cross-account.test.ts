// Every mutation of the schema, sent by a signed-in user who does not own
// the object, is rejected and leaves the owner's account, queue and binding
// as they were. The mutations come from the schema itself, so a new one
// fails here until it has a case.
import "reflect-metadata";

import { buildGatewaySchema } from "../src/schema";
import type { Gateway } from "../src/server";
import {
  Cleanup,
  Collected,
  declareTestExchange,
  errorCodes,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
  wsClient,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let ownerToken: string;
let intruderToken: string;
let account: string;
let queue: string;
let exchange: string;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  ownerToken = await tokenFor(uniqueEmail("owner"));
  intruderToken = await tokenFor(uniqueEmail("intruder"));

  account = uniqueName("owned");
  await expectOk(
    gql(
      gateway,
      `mutation ($u: String!) { createAccount(input: { username: $u }) { password } }`,
      { u: account },
      ownerToken,
    ),
  );
  cleanup.add(() =>
    gql(gateway, `mutation { deleteAccount(username: "${account}") }`, {}, ownerToken),
  );
  // The intruder owns an account too, so it is a user with rights of its own.
  const own = uniqueName("intruder");
  await expectOk(
    gql(
      gateway,
      `mutation ($u: String!) { createAccount(input: { username: $u }) { password } }`,
      { u: own },
      intruderToken,
    ),
  );
  cleanup.add(() =>
    gql(gateway, `mutation { deleteAccount(username: "${own}") }`, {}, intruderToken),
  );

  queue = `queue/${account}/kept`;
  await expectOk(
    gql(
      gateway,
      `mutation ($a: String!) { createQueue(input: { account: $a, name: "kept" }) { name } }`,
      { a: account },
      ownerToken,
    ),
  );
  exchange = `exchange/${account}/events`;
  await declareTestExchange(gateway, cleanup, exchange);
  await expectOk(
    gql(
      gateway,
      `mutation ($q: String!, $e: String!) {
        createBinding(input: { queue: $q, exchange: $e, routingKeyPattern: "#" }) { queue }
      }`,
      { q: queue, e: exchange },
      ownerToken,
    ),
  );
});

afterAll(() => cleanup.run());

async function expectOk(pending: ReturnType<typeof gql>): Promise<void> {
  const response = await pending;
  expect(response.errors).toBeUndefined();
}

interface Attempt {
  query: string;
  variables: () => Record<string, unknown>;
  /** The code the intruder gets. */
  code: string;
}

/** One attempt per mutation of the schema, each aimed at the owner's objects. */
const MUTATION_ATTEMPTS: Record<string, Attempt> = {
  createAccount: {
    query: `mutation ($u: String!) { createAccount(input: { username: $u }) { password } }`,
    variables: () => ({ u: account }),
    code: "CONFLICT",
  },
  deleteAccount: {
    query: `mutation ($u: String!) { deleteAccount(username: $u) }`,
    variables: () => ({ u: account }),
    code: "FORBIDDEN",
  },
  createQueue: {
    query: `mutation ($a: String!) {
      createQueue(input: { account: $a, name: "intruder" }) { name }
    }`,
    variables: () => ({ a: account }),
    code: "FORBIDDEN",
  },
  deleteQueue: {
    query: `mutation ($q: String!) { deleteQueue(name: $q) }`,
    variables: () => ({ q: queue }),
    code: "FORBIDDEN",
  },
  createBinding: {
    query: `mutation ($q: String!, $e: String!) {
      createBinding(input: { queue: $q, exchange: $e, routingKeyPattern: "intruder.#" }) { queue }
    }`,
    variables: () => ({ q: queue, e: exchange }),
    code: "FORBIDDEN",
  },
  deleteBinding: {
    query: `mutation ($q: String!, $e: String!) {
      deleteBinding(input: { queue: $q, exchange: $e, routingKeyPattern: "#" })
    }`,
    variables: () => ({ q: queue, e: exchange }),
    code: "FORBIDDEN",
  },
  setQueueUnbounded: {
    query: `mutation ($q: String!) { setQueueUnbounded(name: $q, unbounded: true) { name } }`,
    variables: () => ({ q: queue }),
    code: "FORBIDDEN",
  },
};

/** Everything about the owner's objects that a mutation could change. */
async function ownerState() {
  const { db, management } = gateway;
  const row = await db.account.findUnique({
    where: { username: account },
    select: { owners: { select: { user: { select: { email: true } } } } },
  });
  const brokerQueues = await management.listQueues();
  const bindings = await management.listQueueBindings(queue);
  return {
    owners: row?.owners.map((owner) => owner.user.email).sort(),
    userExists: await management.userExists(account),
    permissions: await management.getPermissions(account),
    queues: brokerQueues
      .map((q) => q.name)
      .filter((name) => name.startsWith(`queue/${account}/`))
      .sort(),
    queueRows: await db.queue.findMany({
      where: { accountName: account },
      select: { name: true, unbounded: true },
      orderBy: { name: "asc" },
    }),
    bindings: bindings
      .filter((binding) => binding.source !== "")
      .map((binding) => `${binding.source} ${binding.routing_key}`)
      .sort(),
    bindingRows: await db.binding.findMany({
      where: { queue: { name: queue } },
      select: { exchange: true, routingKeyPattern: true },
      orderBy: { routingKeyPattern: "asc" },
    }),
  };
}

test("every mutation has an attempt", async () => {
  const schema = await buildGatewaySchema();
  const mutations = Object.keys(schema.getMutationType()!.getFields()).sort();
  expect(Object.keys(MUTATION_ATTEMPTS).sort()).toEqual(mutations);
});

test("intruder mutations rejected, state unchanged", async () => {
  const schema = await buildGatewaySchema();
  const mutations = Object.keys(schema.getMutationType()!.getFields());
  const before = await ownerState();
  expect(before.queues).toEqual([queue]);
  expect(before.bindings).toEqual([`${exchange} #`]);

  for (const mutation of mutations) {
    const attempt = MUTATION_ATTEMPTS[mutation];
    if (!attempt) continue;
    const response = await gql(gateway, attempt.query, attempt.variables(), intruderToken);
    // The mutation's name is part of each compared value, so a failure
    // names the mutation.
    expect({ mutation, codes: errorCodes(response) }).toEqual({
      mutation,
      codes: [attempt.code],
    });
    expect({ mutation, state: await ownerState() }).toEqual({ mutation, state: before });
  }
});

test("owner may still do the same", async () => {
  const response = await gql(
    gateway,
    `mutation ($a: String!) { createQueue(input: { account: $a, name: "second" }) { name } }`,
    { a: account },
    ownerToken,
  );
  expect(response.data?.createQueue.name).toBe(`queue/${account}/second`);
});

describe("intruder reads", () => {
  const READS: [name: string, query: string][] = [
    ["account", `query ($v: String!) { account(username: $v) { owners } }`],
    ["queues", `query ($v: String!) { queues(account: $v) { name } }`],
  ];
  const QUEUE_READS: [name: string, query: string][] = [
    ["queue", `query ($v: String!) { queue(name: $v) { name } }`],
    ["guardianEvents", `query ($v: String!) { guardianEvents(queue: $v) { kind } }`],
  ];

  test.each(READS)("%s of another account forbidden", async (_name, query) => {
    const response = await gql(gateway, query, { v: account }, intruderToken);
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  });

  test.each(QUEUE_READS)("%s of another queue forbidden", async (_name, query) => {
    const response = await gql(gateway, query, { v: queue }, intruderToken);
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  });
});

describe("intruder subscriptions", () => {
  const SUBSCRIPTIONS: [name: string, query: string, target: () => string][] = [
    [
      "queueStats by account",
      `subscription ($v: String!) { queueStats(account: $v) { name } }`,
      () => account,
    ],
    [
      "queueStats by name",
      `subscription ($v: String!) { queueStats(names: [$v]) { name } }`,
      () => queue,
    ],
    [
      "guardianEvents",
      `subscription ($v: String!) { guardianEvents(queue: $v) { kind } }`,
      () => queue,
    ],
  ];

  test.each(SUBSCRIPTIONS)("%s of another account forbidden", async (_name, query, target) => {
    const client = wsClient(gateway, intruderToken);
    cleanup.add(() => client.dispose());
    const collected = new Collected(client, query, { v: target() });
    await collected.until(() => collected.errors.length > 0 || collected.completed);
    const error = collected.errors[0] as { extensions?: { code?: string } };
    expect(collected.events).toEqual([]);
    expect(error.extensions?.code).toBe("FORBIDDEN");
  });
});
