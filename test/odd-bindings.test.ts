// Bindings made over AMQP with patterns that createBinding rejects ("a.*b",
// ".", "..") or that are unusual (""): recorded by the guardian and
// removable through the API.
import { connect, type Channel, type ChannelModel } from "amqplib";

import type { Gateway } from "../src/server";
import {
  amqpUrlAs,
  brokerAdmin,
  Cleanup,
  createTestAccount,
  declareTestExchange,
  errorCodes,
  gql,
  guardianFor,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const ODD_PATTERNS = ["a.*b", ".", "..", ""];

const cleanup = new Cleanup();
let gateway: Gateway;
let owner: string;
let connection: ChannelModel;
let channel: Channel;
const account = uniqueName("odd.bind");
const exchange = `exchange/${uniqueName("odd-bind")}/v1`;

const DELETE_BINDING = `mutation ($input: BindingInput!) { deleteBinding(input: $input) }`;
const REPLACE_BINDINGS = `mutation ($q: String!, $b: [BindingTargetInput!]!) {
  replaceBindings(queue: $q, bindings: $b) { exchange routingKeyPattern }
}`;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  owner = await tokenFor(uniqueEmail("owner"));
  const password = await createTestAccount(gateway, cleanup, account, owner);
  await declareTestExchange(gateway, cleanup, exchange);
  // Bound as the account itself, as a Pulse consumer would.
  connection = await connect(amqpUrlAs(account, password));
  cleanup.add(() => connection.close());
  channel = await connection.createChannel();
});

afterAll(() => cleanup.run());

async function createQueue(name: string): Promise<string> {
  const queue = `queue/${account}/${name}`;
  cleanup.add(() => brokerAdmin().deleteQueue(queue).catch(() => undefined));
  const response = await gql(
    gateway,
    `mutation ($a: String!, $n: String!) {
      createQueue(input: { account: $a, name: $n, durable: false }) { name }
    }`,
    { a: account, n: name },
    owner,
  );
  expect(response.errors).toBeUndefined();
  return queue;
}

async function brokerPatterns(queue: string): Promise<string[]> {
  const bindings = await brokerAdmin().listQueueBindings(queue);
  return bindings
    .filter((binding) => binding.source === exchange)
    .map((binding) => binding.routing_key)
    .sort();
}

test.each(ODD_PATTERNS)("deleteBinding removes AMQP pattern %j", async (pattern) => {
  const queue = await createQueue(uniqueName("delete"));
  await channel.bindQueue(queue, exchange, pattern);
  expect(await brokerPatterns(queue)).toEqual([pattern]);

  const response = await gql(
    gateway,
    DELETE_BINDING,
    { input: { queue, exchange, routingKeyPattern: pattern } },
    owner,
  );

  expect(response.errors).toBeUndefined();
  expect(response.data?.deleteBinding).toBe(true);
  expect(await brokerPatterns(queue)).toEqual([]);
});

test("deleteBinding of missing odd pattern", async () => {
  const queue = await createQueue(uniqueName("missing"));

  const response = await gql(
    gateway,
    DELETE_BINDING,
    { input: { queue, exchange, routingKeyPattern: "." } },
    owner,
  );

  expect(errorCodes(response)).toEqual(["NOT_FOUND"]);
});

test("deleteBinding rejects overlong pattern", async () => {
  const queue = await createQueue(uniqueName("long"));

  const response = await gql(
    gateway,
    DELETE_BINDING,
    { input: { queue, exchange, routingKeyPattern: "a".repeat(256) } },
    owner,
  );

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain("maximum is 255 bytes");
});

test("replaceBindings removes odd AMQP bindings", async () => {
  const queue = await createQueue(uniqueName("replace"));
  for (const pattern of ODD_PATTERNS) {
    await channel.bindQueue(queue, exchange, pattern);
  }

  const response = await gql(
    gateway,
    REPLACE_BINDINGS,
    { q: queue, b: [{ exchange, routingKeyPattern: "kept.#" }] },
    owner,
  );

  expect(response.errors).toBeUndefined();
  expect(response.data?.replaceBindings).toEqual([
    { exchange, routingKeyPattern: "kept.#" },
  ]);
  expect(await brokerPatterns(queue)).toEqual(["kept.#"]);
  const rows = await gateway.db.binding.findMany({
    where: { queue: { name: queue } },
  });
  expect(rows.map((row) => row.routingKeyPattern)).toEqual(["kept.#"]);
});

test("createBinding still rejects odd patterns", async () => {
  const queue = await createQueue(uniqueName("create"));
  for (const pattern of ["a.*b", ".", ".."]) {
    const response = await gql(
      gateway,
      `mutation ($input: BindingInput!) { createBinding(input: $input) { queue } }`,
      { input: { queue, exchange, routingKeyPattern: pattern } },
      owner,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  }
  expect(await brokerPatterns(queue)).toEqual([]);
});

test.each([".", ".."])("updateBinding rejects new pattern %j", async (pattern) => {
  const queue = await createQueue(uniqueName("update"));
  await channel.bindQueue(queue, exchange, "old.#");

  const response = await gql(
    gateway,
    `mutation ($input: BindingInput!, $to: BindingTargetInput!) {
      updateBinding(input: $input, to: $to) { routingKeyPattern }
    }`,
    {
      input: { queue, exchange, routingKeyPattern: "old.#" },
      to: { exchange, routingKeyPattern: pattern },
    },
    owner,
  );

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain(`"${pattern}#"`);
  expect(await brokerPatterns(queue)).toEqual(["old.#"]);
});

test.each([".", ".."])("replaceBindings rejects new pattern %j", async (pattern) => {
  const queue = await createQueue(uniqueName("replace-new"));

  const response = await gql(
    gateway,
    REPLACE_BINDINGS,
    { q: queue, b: [{ exchange, routingKeyPattern: pattern }] },
    owner,
  );

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(await brokerPatterns(queue)).toEqual([]);
});

test("guardian records odd AMQP patterns", async () => {
  const queue = await createQueue(uniqueName("guardian"));
  for (const pattern of ODD_PATTERNS) {
    await channel.bindQueue(queue, exchange, pattern);
  }
  const guardian = guardianFor(gateway);

  await guardian.check(await gateway.stats.refresh());

  const rows = await gateway.db.binding.findMany({
    where: { queue: { name: queue } },
  });
  expect(rows.map((row) => row.routingKeyPattern).sort()).toEqual(
    [...ODD_PATTERNS].sort(),
  );

  for (const pattern of ODD_PATTERNS) {
    const response = await gql(
      gateway,
      DELETE_BINDING,
      { input: { queue, exchange, routingKeyPattern: pattern } },
      owner,
    );
    expect(response.errors).toBeUndefined();
  }
  const left = await gateway.db.binding.count({
    where: { queue: { name: queue } },
  });
  expect(left).toBe(0);
});
