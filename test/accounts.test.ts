// Accounts: Pulse permissions on the broker, owners in the database, and
// bad input rejected with nothing created.
import type { Gateway } from "../src/server";
import {
  ADMIN_EMAIL,
  amqpUrlAs,
  brokerAdmin,
  Cleanup,
  errorCodes,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let ownerEmail: string;
let owner: string;

const CREATE = `mutation ($input: CreateAccountInput!) {
  createAccount(input: $input) { account { username owners } password }
}`;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  ownerEmail = uniqueEmail("owner");
  owner = await tokenFor(ownerEmail);
});

afterAll(() => cleanup.run());

async function createAccount(username: string, owners?: string[]) {
  const response = await gql(
    gateway,
    CREATE,
    { input: { username, owners } },
    owner,
  );
  // Only accounts this test created are removed: a rejected name may be a
  // user that exists for other reasons, such as the gateway's own.
  if (response.data?.createAccount) {
    cleanup.add(() => brokerAdmin().deleteUser(username).catch(() => undefined));
  }
  return response;
}

test("create sets Pulse permissions", async () => {
  const username = uniqueName("perm.user");
  const response = await createAccount(username);
  expect(response.errors).toBeUndefined();
  const permissions = await brokerAdmin().getPermissions(username);
  const escaped = username.replace(/\./g, "\\.");
  expect(permissions.configure).toBe(
    `^(queue/${escaped}/.*|exchange/${escaped}/.*)`,
  );
  expect(permissions.write).toBe(`^(queue/${escaped}/.*|exchange/${escaped}/.*)`);
  expect(permissions.read).toBe(`^(queue/${escaped}/.*|exchange/.*)`);
});

test("create adds the caller as owner", async () => {
  const other = uniqueEmail("co-owner");
  const response = await createAccount(uniqueName("owned"), [other]);
  expect(response.data?.createAccount.account.owners).toEqual([
    ownerEmail,
    other,
  ]);
});

test("generated password opens AMQP", async () => {
  const username = uniqueName("login");
  const response = await createAccount(username);
  const password = response.data!.createAccount.password;
  const amqplib = await import("amqplib");
  const connection = await amqplib.connect(amqpUrlAs(username, password));
  await connection.close();
});

test.each([
  ["leading digit", "1abc"],
  ["slash", "a/b"],
  ["space", "a b"],
  ["empty", ""],
  ["unicode", "abcé"],
])("malformed name rejected: %s", async (_case, username) => {
  const response = await createAccount(username);
  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors?.[0].message).toContain(`"${username}"`);
  if (username) {
    expect(await brokerAdmin().userExists(username)).toBe(false);
  }
});

test("reserved name rejected", async () => {
  const response = await createAccount("admin");
  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors?.[0].message).toMatch(/reserved/);
});

test("reserved name ignores case", async () => {
  const response = await createAccount("Guest");
  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors?.[0].message).toMatch(/reserved/);
});

test("long name cut in message", async () => {
  const response = await createAccount(`a${"b".repeat(299)}`);
  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors?.[0].message.length).toBeLessThan(300);
  expect(response.errors?.[0].message).toContain("(300 characters)");
});

test("too many owners rejected", async () => {
  const username = uniqueName("crowded");
  const owners = Array.from({ length: 25 }, (_, i) => `o${i}@example.com`);
  const response = await createAccount(username, owners);
  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(await brokerAdmin().userExists(username)).toBe(false);
});

test("gateway's own account reserved", async () => {
  const response = await createAccount(gateway.config.gatewayAccount);
  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
});

test("duplicate name conflicts", async () => {
  const username = uniqueName("twice");
  await createAccount(username);
  const response = await createAccount(username);
  expect(errorCodes(response)).toEqual(["CONFLICT"]);
});

test("invalid owner e-mail rejected", async () => {
  const username = uniqueName("bad-owner");
  const response = await createAccount(username, ["not-an-address"]);
  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(await brokerAdmin().userExists(username)).toBe(false);
});

test("stranger cannot see or delete", async () => {
  const username = uniqueName("private");
  await createAccount(username);
  const stranger = await tokenFor(uniqueEmail("stranger"));
  const read = await gql(
    gateway,
    `query ($u: String!) { account(username: $u) { username } }`,
    { u: username },
    stranger,
  );
  expect(errorCodes(read)).toEqual(["FORBIDDEN"]);
  const removal = await gql(
    gateway,
    `mutation ($u: String!) { deleteAccount(username: $u) }`,
    { u: username },
    stranger,
  );
  expect(errorCodes(removal)).toEqual(["FORBIDDEN"]);
  expect(await brokerAdmin().userExists(username)).toBe(true);
});

test("accounts lists only own accounts", async () => {
  const username = uniqueName("listed");
  await createAccount(username);
  const stranger = await tokenFor(uniqueEmail("stranger"));
  const mine = await gql(gateway, "{ accounts { username } }", {}, owner);
  const theirs = await gql(gateway, "{ accounts { username } }", {}, stranger);
  const admin = await gql(
    gateway,
    "{ accounts { username } }",
    {},
    await tokenFor(ADMIN_EMAIL),
  );
  expect(mine.data?.accounts).toContainEqual({ username });
  expect(theirs.data?.accounts).toEqual([]);
  expect(admin.data?.accounts).toContainEqual({ username });
});

test("delete removes user and row", async () => {
  const username = uniqueName("doomed");
  await createAccount(username);
  const response = await gql(
    gateway,
    `mutation ($u: String!) { deleteAccount(username: $u) }`,
    { u: username },
    owner,
  );
  expect(response.data?.deleteAccount).toBe(true);
  expect(await brokerAdmin().userExists(username)).toBe(false);
  const row = await gateway.db.account.findUnique({ where: { username } });
  expect(row).toBeNull();
});

test("concurrent creates yield one account", async () => {
  const username = uniqueName("race");
  const responses = await Promise.all(
    Array.from({ length: 8 }, () => createAccount(username)),
  );
  const winners = responses.filter((r) => r.data?.createAccount);
  const codes = responses.flatMap(errorCodes);
  expect(winners).toHaveLength(1);
  expect(codes).toEqual(Array(7).fill("CONFLICT"));
  const password = winners[0].data!.createAccount.password;
  const amqplib = await import("amqplib");
  const connection = await amqplib.connect(amqpUrlAs(username, password));
  await connection.close();
});

test("delete removes the account's queues", async () => {
  const username = uniqueName("with-queues");
  await createAccount(username);
  const queue = `queue/${username}/doomed`;
  await gql(
    gateway,
    `mutation ($a: String!) { createQueue(input: { account: $a, name: "doomed" }) { name } }`,
    { a: username },
    owner,
  );
  cleanup.add(() => brokerAdmin().deleteQueue(queue).catch(() => undefined));
  const response = await gql(
    gateway,
    `mutation ($u: String!) { deleteAccount(username: $u) }`,
    { u: username },
    owner,
  );
  expect(response.data?.deleteAccount).toBe(true);
  const names = (await brokerAdmin().listQueues()).map((q) => q.name);
  expect(names).not.toContain(queue);
  expect(await gateway.db.queue.findUnique({ where: { name: queue } })).toBeNull();
});

test("delete racing queue creation leaves nothing", async () => {
  // Three rounds, with the deletion sent a little later each time, so
  // that it lands among the creations on a busy or an idle machine.
  for (const delayMs of [0, 15, 40]) {
    const username = uniqueName("raced");
    await createAccount(username);
    const prefix = `queue/${username}/`;
    cleanup.add(async () => {
      for (const queue of await brokerAdmin().listQueues()) {
        if (queue.name.startsWith(prefix)) {
          await brokerAdmin().deleteQueue(queue.name).catch(() => undefined);
        }
      }
    });
    const creates = Array.from({ length: 10 }, (_, n) =>
      gql(
        gateway,
        `mutation ($a: String!, $n: String!) { createQueue(input: { account: $a, name: $n }) { name } }`,
        { a: username, n: `q${n}` },
        owner,
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    const deleted = await gql(
      gateway,
      `mutation ($u: String!) { deleteAccount(username: $u) }`,
      { u: username },
      owner,
    );
    const responses = await Promise.all(creates);

    expect(deleted.data?.deleteAccount).toBe(true);
    expect(responses.flatMap(errorCodes)).not.toContain("INTERNAL_SERVER_ERROR");
    const left = (await brokerAdmin().listQueues())
      .map((queue) => queue.name)
      .filter((name) => name.startsWith(prefix));
    expect(left).toEqual([]);
    const rows = await gateway.db.queue.count({
      where: { accountName: username },
    });
    expect(rows).toBe(0);
  }
});
