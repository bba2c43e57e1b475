// Queue and exchange names over RabbitMQ's 255-byte limit: every argument
// naming one is refused with BAD_USER_INPUT before the broker is asked,
// and a 414 from the management API never reaches the caller as an
// internal error with the API's path.
import { GraphQLError } from "graphql";

import { ManagementApiError } from "../src/rabbitmq";
import { createErrorFormatter } from "../src/schema/errors";
import type { Gateway } from "../src/server";
import {
  ADMIN_EMAIL,
  Cleanup,
  createTestAccount,
  errorCodes,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let owner: string;
const account = uniqueName("longnames");
const longQueue = `queue/${account}/${"a".repeat(20_000)}`;
const longExchange = `exchange/${account}/${"e".repeat(20_000)}`;
const queue = `queue/${account}/short`;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  owner = await tokenFor(uniqueEmail("owner"));
  await createTestAccount(gateway, cleanup, account, owner);
});

afterAll(() => cleanup.run());

const QUEUE_CALLS: [string, string][] = [
  ["deleteQueue", "mutation ($q: String!) { deleteQueue(name: $q) }"],
  ["purgeQueue", "mutation ($q: String!) { purgeQueue(name: $q) { messagesPurged } }"],
  ["queue", "query ($q: String!) { queue(name: $q) { name } }"],
  ["peekMessages", "query ($q: String!) { peekMessages(queue: $q) { routingKey } }"],
  ["setQueuePolicy", "mutation ($q: String!) { setQueuePolicy(name: $q, warnSize: 5) { warnSize } }"],
  ["replaceBindings", "mutation ($q: String!) { replaceBindings(queue: $q, bindings: []) { exchange } }"],
  ["guardianEvents", "query ($q: String!) { guardianEvents(queue: $q) { kind } }"],
  ["createBinding", "mutation ($q: String!) { createBinding(input: {queue: $q, exchange: \"exchange/x/y\"}) { queue } }"],
  ["deleteBinding", "mutation ($q: String!) { deleteBinding(input: {queue: $q, exchange: \"exchange/x/y\"}) }"],
];

const longAccount = "a".repeat(400_000);

const ACCOUNT_CALLS: [string, string][] = [
  ["account", "query ($a: String!) { account(username: $a) { username } }"],
  ["queues", "query ($a: String!) { queues(account: $a) { name } }"],
  ["deleteAccount", "mutation ($a: String!) { deleteAccount(username: $a) }"],
  ["rotateAccountPassword", "mutation ($a: String!) { rotateAccountPassword(username: $a) { password } }"],
];

test.each(ACCOUNT_CALLS)("%s refuses a long account name", async (_name, query) => {
  const response = await gql(gateway, query, { a: longAccount }, owner);

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain("400000 bytes");
  expect(JSON.stringify(response).length).toBeLessThan(2000);
});

test.each(QUEUE_CALLS)("%s refuses a long queue name", async (_name, query) => {
  const response = await gql(gateway, query, { q: longQueue }, owner);

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  const message = response.errors![0].message;
  expect(message).toContain("RabbitMQ's limit of 255 bytes");
  expect(message).not.toContain("/api/");
  expect(JSON.stringify(response).length).toBeLessThan(2000);
});

test("setQueueUnbounded refuses a long name", async () => {
  const admin = await tokenFor(ADMIN_EMAIL);

  const response = await gql(
    gateway,
    "mutation ($q: String!) { setQueueUnbounded(name: $q, unbounded: true) { name } }",
    { q: longQueue },
    admin,
  );

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain("255 bytes");
});

test("300-byte queue name is a length error", async () => {
  const name = `queue/${account}/${"b".repeat(300)}`;

  const response = await gql(gateway, QUEUE_CALLS[2][1], { q: name }, owner);

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain("255 bytes");
});

test.each([
  ["createBinding", "mutation ($q: String!, $e: String!) { createBinding(input: {queue: $q, exchange: $e}) { queue } }"],
  ["deleteBinding", "mutation ($q: String!, $e: String!) { deleteBinding(input: {queue: $q, exchange: $e}) }"],
  ["replaceBindings", "mutation ($q: String!, $e: String!) { replaceBindings(queue: $q, bindings: [{exchange: $e}]) { exchange } }"],
])("%s refuses a long exchange name", async (_name, query) => {
  const response = await gql(gateway, query, { q: queue, e: longExchange }, owner);

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain("255 bytes");
  expect(JSON.stringify(response).length).toBeLessThan(2000);
});

test("management 414 becomes BAD_USER_INPUT", async () => {
  const reply = await gateway.management
    .getQueue(longQueue)
    .catch((error: unknown) => error);
  expect(reply).toBeInstanceOf(ManagementApiError);
  expect((reply as ManagementApiError).status).toBe(414);
  const format = createErrorFormatter(gateway.logger, false);
  const error = new GraphQLError("resolver failed", {
    originalError: reply as Error,
  });

  const formatted = format(error.toJSON(), error);

  expect(formatted.extensions?.code).toBe("BAD_USER_INPUT");
  expect(formatted.message).toContain("255 bytes");
  expect(formatted.message).not.toContain("/api/");
});
