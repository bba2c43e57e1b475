// Hostile names through the GraphQL API, end to end on the real broker and
// database. Each input is either rejected with a client error, leaving the
// broker as it was, or handled so that exactly the object meant exists.
// Runs are few, because each one makes several broker calls.
import fc from "fast-check";

import { accountPermissions } from "../../src/services";
import type { Gateway } from "../../src/server";
import {
  Cleanup,
  declareTestExchange,
  errorCodes,
  gql,
  startGateway,
  testConfig,
  tokenFor,
  uniqueEmail,
  uniqueName,
  type GraphQLResponse,
  Collected,
  wsClient,
} from "../harness";
import { hostileName, plausibleWord, topicPattern } from "./arbitraries";

const cleanup = new Cleanup();
let gateway: Gateway;
let token: string;
let account: string;
let queue: string;
let exchange: string;

beforeAll(async () => {
  gateway = await startGateway({
    limits: { ...testConfig().limits, rateLimitPerSecond: 0 },
  });
  cleanup.add(() => gateway.stop());
  token = await tokenFor(uniqueEmail("names"));
  account = uniqueName("names");
  const created = await gql(
    gateway,
    `mutation { createAccount(input: { username: "${account}" }) { password } }`,
    {},
    token,
  );
  expect(created.errors).toBeUndefined();
  cleanup.add(() =>
    gql(gateway, `mutation { deleteAccount(username: "${account}") }`, {}, token),
  );
  const made = await gql(
    gateway,
    `mutation { createQueue(input: { account: "${account}", name: "bound" }) { name } }`,
    {},
    token,
  );
  queue = made.data!.createQueue.name;
  exchange = `exchange/${account}/names`;
  await declareTestExchange(gateway, cleanup, exchange);
});

afterAll(() => cleanup.run());

/** Error codes a hostile input may get; anything else is a bug. */
const CLIENT_ERRORS = ["BAD_USER_INPUT", "NOT_FOUND", "FORBIDDEN", "CONFLICT"];

function expectClientErrorOnly(response: GraphQLResponse): void {
  for (const code of errorCodes(response)) {
    expect(CLIENT_ERRORS).toContain(code);
  }
}

async function accountQueues(): Promise<string[]> {
  const queues = await gateway.management.listQueues();
  return queues
    .map((q) => q.name)
    .filter((name) => name.startsWith(`queue/${account}/`))
    .sort();
}

const queueSuffix = fc.oneof(
  hostileName,
  fc.array(plausibleWord, { minLength: 1, maxLength: 4 }).map((w) => w.join("/")),
);

test("createQueue makes the queue named or nothing", async () => {
  await fc.assert(
    fc.asyncProperty(queueSuffix, async (name) => {
      const before = await accountQueues();
      const response = await gql(
        gateway,
        `mutation ($input: CreateQueueInput!) { createQueue(input: $input) { name } }`,
        { input: { account, name, durable: false } },
        token,
      );
      if (response.errors) {
        expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
        expect(await accountQueues()).toEqual(before);
        return;
      }
      const full = response.data!.createQueue.name as string;
      expect(full).toBe(`queue/${account}/${name}`);
      expect(await accountQueues()).toEqual([...before, full].sort());
      const row = await gateway.db.queue.findUnique({ where: { name: full } });
      expect(row?.accountName).toBe(account);

      const deleted = await gql(
        gateway,
        `mutation ($name: String!) { deleteQueue(name: $name) }`,
        { name: full },
        token,
      );
      expect(deleted.data?.deleteQueue).toBe(true);
      expect(await accountQueues()).toEqual(before);
    }),
    { numRuns: 20 },
  );
});

async function brokerPatterns(): Promise<string[]> {
  const bindings = await gateway.management.listQueueBindings(queue);
  return bindings
    .filter((binding) => binding.source === exchange)
    .map((binding) => binding.routing_key)
    .sort();
}

test("createBinding binds the pattern given or nothing", async () => {
  const input = (routingKeyPattern: string) => ({
    input: { queue, exchange, routingKeyPattern },
  });
  await fc.assert(
    fc.asyncProperty(topicPattern, async (pattern) => {
      const before = await brokerPatterns();
      const response = await gql(
        gateway,
        `mutation ($input: BindingInput!) { createBinding(input: $input) { routingKeyPattern } }`,
        input(pattern),
        token,
      );
      if (response.errors) {
        expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
        expect(await brokerPatterns()).toEqual(before);
        return;
      }
      expect(response.data!.createBinding.routingKeyPattern).toBe(pattern);
      expect(await brokerPatterns()).toEqual([...new Set([...before, pattern])].sort());

      const deleted = await gql(
        gateway,
        `mutation ($input: BindingInput!) { deleteBinding(input: $input) }`,
        input(pattern),
        token,
      );
      expect(deleted.errors).toBeUndefined();
      expect(await brokerPatterns()).toEqual(before.filter((p) => p !== pattern));
    }),
    { numRuns: 20 },
  );
});

test("binding to hostile exchanges rejected", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(hostileName, hostileName.map((name) => `exchange/${name}`)),
      async (name) => {
        const before = await brokerPatterns();
        const response = await gql(
          gateway,
          `mutation ($input: BindingInput!) { createBinding(input: $input) { queue } }`,
          { input: { queue, exchange: name, routingKeyPattern: "#" } },
          token,
        );
        expect(response.errors).toBeDefined();
        expectClientErrorOnly(response);
        expect(await brokerPatterns()).toEqual(before);
      },
    ),
    { numRuns: 20 },
  );
});

const accountName = fc.oneof(
  hostileName,
  fc.tuple(fc.constantFrom("p", "P", "z"), plausibleWord).map(
    ([first, rest]) => `${first}${uniqueName("")}${rest}`,
  ),
);

test("createAccount makes the user named or nothing", async () => {
  await fc.assert(
    fc.asyncProperty(accountName, async (username) => {
      const response = await gql(
        gateway,
        `mutation ($username: String!) {
          createAccount(input: { username: $username }) { account { username } }
        }`,
        { username },
        token,
      );
      if (response.errors) {
        expectClientErrorOnly(response);
        // PostgreSQL cannot even look up a name with U+0000, which the
        // gateway rejects before any lookup.
        if (!username.includes("\u0000")) {
          const row = await gateway.db.account.findUnique({ where: { username } });
          expect(row).toBeNull();
        }
        return;
      }
      expect(response.data!.createAccount.account.username).toBe(username);
      expect(await gateway.management.userExists(username)).toBe(true);
      expect(await gateway.management.getPermissions(username)).toMatchObject(
        accountPermissions(username),
      );
      const deleted = await gql(
        gateway,
        `mutation ($username: String!) { deleteAccount(username: $username) }`,
        { username },
        token,
      );
      expect(deleted.data?.deleteAccount).toBe(true);
      expect(await gateway.management.userExists(username)).toBe(false);
    }),
    { numRuns: 20 },
  );
});

test("owner addresses stored as given or rejected", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(hostileName, fc.emailAddress(), fc.emailAddress().map((e) => ` ${e.toUpperCase()} `)),
      async (owner) => {
        const username = uniqueName("owner");
        const response = await gql(
          gateway,
          `mutation ($username: String!, $owners: [String!]) {
            createAccount(input: { username: $username, owners: $owners }) {
              account { owners }
            }
          }`,
          { username, owners: [owner] },
          token,
        );
        if (response.errors) {
          expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
          expect(await gateway.management.userExists(username)).toBe(false);
          return;
        }
        const owners = response.data!.createAccount.account.owners as string[];
        expect(owners).toContain(owner.trim().toLowerCase());
        await gql(gateway, `mutation { deleteAccount(username: "${username}") }`, {}, token);
      },
    ),
    { numRuns: 15 },
  );
});

test("lookups by hostile name are client errors", async () => {
  const queries = [
    `query ($value: String!) { queue(name: $value) { name } }`,
    `query ($value: String!) { account(username: $value) { username } }`,
    `query ($value: String!) { guardianEvents(queue: $value) { kind } }`,
    `query ($value: String!) { queues(account: $value) { name } }`,
    `mutation ($value: String!) { deleteQueue(name: $value) }`,
    `mutation ($value: String!) { deleteAccount(username: $value) }`,
  ];
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(hostileName, hostileName.map((name) => `queue/${account}/${name}`)),
      fc.constantFrom(...queries),
      async (value, query) => {
        const before = await accountQueues();
        const response = await gql(gateway, query, { value }, token);
        expectClientErrorOnly(response);
        expect(await accountQueues()).toEqual(before);
      },
    ),
    { numRuns: 40 },
  );
});

test("guardianEvents limit outside 1 to 500 rejected", async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), async (limit) => {
      const response = await gql(
        gateway,
        `query ($limit: Int!) { guardianEvents(limit: $limit) { kind } }`,
        { limit },
        token,
      );
      if (limit >= 1 && limit <= 500) {
        expect(response.errors).toBeUndefined();
      } else {
        expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
      }
    }),
    { numRuns: 20 },
  );
});

describe("NUL character", () => {
  const LOOKUP = `query ($name: String!) { guardianEvents(queue: $name) { kind } }`;

  test("in a variable rejected over HTTP", async () => {
    const response = await gql(gateway, LOOKUP, { name: `queue/${account}/a\u0000b` }, token);
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors?.[0].message).toContain("$name");
  });

  test("in a literal rejected over HTTP", async () => {
    const response = await gql(
      gateway,
      `{ guardianEvents(queue: "queue/${account}/a\\u0000b") { kind } }`,
      {},
      token,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors?.[0].message).toContain("U+0000");
  });

  test("in an owner address rejected", async () => {
    const username = uniqueName("nul");
    const response = await gql(
      gateway,
      `mutation ($u: String!, $o: [String!]) {
        createAccount(input: { username: $u, owners: $o }) { password }
      }`,
      { u: username, o: ["a\u0000b@example.com"] },
      token,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors?.[0].message).toContain("$o[0]");
    expect(await gateway.management.userExists(username)).toBe(false);
  });

  test("rejected over graphql-ws", async () => {
    const client = wsClient(gateway, token);
    cleanup.add(() => client.dispose());
    const byVariable = new Collected(
      client,
      `subscription ($q: String!) { guardianEvents(queue: $q) { kind } }`,
      { q: `queue/${account}/a\u0000b` },
    );
    const byLiteral = new Collected(
      client,
      `subscription { guardianEvents(queue: "queue/${account}/a\\u0000b") { kind } }`,
    );
    await byVariable.until(() => byVariable.errors.length > 0);
    await byLiteral.until(() => byLiteral.errors.length > 0);
    for (const collected of [byVariable, byLiteral]) {
      const error = collected.errors[0] as { extensions?: { code?: string } };
      expect(error.extensions?.code).toBe("BAD_USER_INPUT");
    }
  });
});
