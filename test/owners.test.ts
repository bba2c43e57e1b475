// Account self-service: owners added and removed (never the last one),
// passwords rotated, and a stranger's attempts rejected with the account
// unchanged.
import type { ChannelModel } from "amqplib";

import type { Gateway } from "../src/server";
import {
  ADMIN_EMAIL,
  amqpUrlAs,
  brokerAdmin,
  Cleanup,
  errorCodes,
  gql,
  type GraphQLResponse,
  startGateway,
  testConfig,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let ownerEmail: string;
let owner: string;
let stranger: string;
let admin: string;

const CREATE = `mutation ($u: String!) {
  createAccount(input: { username: $u }) { password }
}`;
const ADD_OWNER = `mutation ($u: String!, $e: String!) {
  addAccountOwner(username: $u, email: $e) { username owners }
}`;
const REMOVE_OWNER = `mutation ($u: String!, $e: String!) {
  removeAccountOwner(username: $u, email: $e) { username owners }
}`;
const ROTATE = `mutation ($u: String!) {
  rotateAccountPassword(username: $u) { account { username } password notice }
}`;
const ACCOUNT = `query ($u: String!) { account(username: $u) { owners } }`;

beforeAll(async () => {
  // One owner creates more accounts here than MAX_ACCOUNTS_PER_USER allows;
  // test/quotas.test.ts covers the quota.
  gateway = await startGateway({
    limits: { ...testConfig().limits, maxAccountsPerUser: 0 },
  });
  cleanup.add(() => gateway.stop());
  ownerEmail = uniqueEmail("owner");
  owner = await tokenFor(ownerEmail);
  stranger = await tokenFor(uniqueEmail("stranger"));
  admin = await tokenFor(ADMIN_EMAIL);
});

afterAll(() => cleanup.run());

/** Creates an account owned by `owner` and returns its password. */
async function createAccount(username: string): Promise<string> {
  const response = await gql(gateway, CREATE, { u: username }, owner);
  expect(response.errors).toBeUndefined();
  cleanup.add(() => brokerAdmin().deleteUser(username).catch(() => undefined));
  return response.data!.createAccount.password;
}

async function ownersOf(username: string): Promise<string[]> {
  const response = await gql(gateway, ACCOUNT, { u: username }, admin);
  return response.data!.account.owners;
}

async function connectAs(username: string, password: string) {
  const amqplib = await import("amqplib");
  return amqplib.connect(amqpUrlAs(username, password));
}

test("owner adds an owner", async () => {
  const username = uniqueName("add");
  await createAccount(username);
  const other = uniqueEmail("second");
  const response = await gql(gateway, ADD_OWNER, { u: username, e: other }, owner);
  expect(response.data?.addAccountOwner.owners).toEqual([ownerEmail, other]);
});

test("added owner reads the account", async () => {
  const username = uniqueName("delegate");
  await createAccount(username);
  const otherEmail = uniqueEmail("second");
  await gql(gateway, ADD_OWNER, { u: username, e: otherEmail }, owner);
  const other = await tokenFor(otherEmail);
  const response = await gql(gateway, ACCOUNT, { u: username }, other);
  expect(response.data?.account.owners).toContain(otherEmail);
});

test("duplicate owner conflicts", async () => {
  const username = uniqueName("dup");
  await createAccount(username);
  const response = await gql(
    gateway,
    ADD_OWNER,
    { u: username, e: ownerEmail.toUpperCase() },
    owner,
  );
  expect(errorCodes(response)).toEqual(["CONFLICT"]);
});

test("invalid owner address rejected", async () => {
  const username = uniqueName("bad-mail");
  await createAccount(username);
  const response = await gql(
    gateway,
    ADD_OWNER,
    { u: username, e: "not-an-address" },
    owner,
  );
  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain('"not-an-address"');
  expect(await ownersOf(username)).toEqual([ownerEmail]);
});

test("stranger cannot add an owner", async () => {
  const username = uniqueName("guarded");
  await createAccount(username);
  const response = await gql(
    gateway,
    ADD_OWNER,
    { u: username, e: uniqueEmail("intruder") },
    stranger,
  );
  expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  expect(await ownersOf(username)).toEqual([ownerEmail]);
});

test("stranger cannot remove an owner", async () => {
  const username = uniqueName("guarded");
  await createAccount(username);
  const other = uniqueEmail("second");
  await gql(gateway, ADD_OWNER, { u: username, e: other }, owner);
  const response = await gql(
    gateway,
    REMOVE_OWNER,
    { u: username, e: other },
    stranger,
  );
  expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  expect(await ownersOf(username)).toEqual([ownerEmail, other]);
});

test("owner removes another owner", async () => {
  const username = uniqueName("remove");
  await createAccount(username);
  const other = uniqueEmail("second");
  await gql(gateway, ADD_OWNER, { u: username, e: other }, owner);
  const response = await gql(
    gateway,
    REMOVE_OWNER,
    { u: username, e: other },
    owner,
  );
  expect(response.data?.removeAccountOwner.owners).toEqual([ownerEmail]);
});

test("owner removes themself", async () => {
  const username = uniqueName("leave");
  await createAccount(username);
  const other = uniqueEmail("second");
  await gql(gateway, ADD_OWNER, { u: username, e: other }, owner);
  const response = await gql(
    gateway,
    REMOVE_OWNER,
    { u: username, e: ownerEmail },
    owner,
  );
  expect(response.data?.removeAccountOwner.owners).toEqual([other]);
  const after = await gql(gateway, ACCOUNT, { u: username }, owner);
  expect(errorCodes(after)).toEqual(["FORBIDDEN"]);
});

test("last owner cannot be removed", async () => {
  const username = uniqueName("last");
  await createAccount(username);
  const response = await gql(
    gateway,
    REMOVE_OWNER,
    { u: username, e: ownerEmail },
    owner,
  );
  expect(errorCodes(response)).toEqual(["CONFLICT"]);
  expect(response.errors![0].message).toContain("last owner");
  expect(await ownersOf(username)).toEqual([ownerEmail]);
});

test("admin cannot remove the last owner", async () => {
  const username = uniqueName("last-admin");
  await createAccount(username);
  const response = await gql(
    gateway,
    REMOVE_OWNER,
    { u: username, e: ownerEmail },
    admin,
  );
  expect(errorCodes(response)).toEqual(["CONFLICT"]);
  expect(await ownersOf(username)).toEqual([ownerEmail]);
});

test("concurrent removals keep one owner", async () => {
  const username = uniqueName("race");
  await createAccount(username);
  const otherEmail = uniqueEmail("second");
  await gql(gateway, ADD_OWNER, { u: username, e: otherEmail }, owner);
  const other = await tokenFor(otherEmail);
  const responses = await Promise.all([
    gql(gateway, REMOVE_OWNER, { u: username, e: otherEmail }, owner),
    gql(gateway, REMOVE_OWNER, { u: username, e: ownerEmail }, other),
  ]);
  const succeeded = responses.filter((r) => r.data?.removeAccountOwner);
  expect(succeeded).toHaveLength(1);
  expect(await ownersOf(username)).toHaveLength(1);
});

test("removals queued on a lock keep one owner", async () => {
  const username = uniqueName("queued");
  await createAccount(username);
  const otherEmail = uniqueEmail("second");
  await gql(gateway, ADD_OWNER, { u: username, e: otherEmail }, owner);
  const other = await tokenFor(otherEmail);

  // Holding the account row's lock makes both removals wait for it, so
  // the one that gets the lock second starts waiting before the first
  // commits, every time.
  let pending: Promise<GraphQLResponse[]> | undefined;
  await gateway.db.$transaction(
    async (tx) => {
      await tx.$queryRaw`
        SELECT "id" FROM "Account" WHERE "username" = ${username} FOR UPDATE`;
      pending = Promise.all([
        gql(gateway, REMOVE_OWNER, { u: username, e: otherEmail }, owner),
        gql(gateway, REMOVE_OWNER, { u: username, e: ownerEmail }, other),
      ]);
      await waitForLockWaiters(2);
    },
    { timeout: 20_000 },
  );
  const responses = await pending!;

  const succeeded = responses.filter((r) => r.data?.removeAccountOwner);
  const failed = responses.filter((r) => r.errors);
  expect(succeeded).toHaveLength(1);
  expect(failed.flatMap(errorCodes)).toEqual(["CONFLICT"]);
  expect(await ownersOf(username)).toHaveLength(1);
});

/** Waits until `count` sessions of the test database wait for a lock. */
async function waitForLockWaiters(count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const [row] = await gateway.db.$queryRaw<{ waiting: number }[]>`
      SELECT count(*)::int AS waiting FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock'`;
    if (row.waiting >= count) return;
    if (Date.now() > deadline) {
      throw new Error(
        `Timed out after 10000 ms: ${row.waiting} of ${count} sessions ` +
          `wait for a lock.`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("removing a non-owner is not found", async () => {
  const username = uniqueName("absent");
  await createAccount(username);
  const response = await gql(
    gateway,
    REMOVE_OWNER,
    { u: username, e: uniqueEmail("nobody") },
    owner,
  );
  expect(errorCodes(response)).toEqual(["NOT_FOUND"]);
});

test("owners hidden from strangers", async () => {
  const username = uniqueName("private");
  await createAccount(username);
  const response = await gql(gateway, ACCOUNT, { u: username }, stranger);
  expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  expect(response.data).toBeNull();
  expect(JSON.stringify(response)).not.toContain(ownerEmail);
});

describe("password rotation", () => {
  const connections: ChannelModel[] = [];

  afterAll(async () => {
    for (const connection of connections) {
      await connection.close().catch(() => undefined);
    }
  });

  test("new password opens AMQP, old fails", async () => {
    const username = uniqueName("rotate");
    const oldPassword = await createAccount(username);
    const response = await gql(gateway, ROTATE, { u: username }, owner);
    const rotated = response.data!.rotateAccountPassword;
    expect(rotated.password).not.toBe(oldPassword);
    const connection = await connectAs(username, rotated.password);
    connections.push(connection);
    await expect(connectAs(username, oldPassword)).rejects.toThrow(
      /ACCESS_REFUSED|403/,
    );
  });

  test("open connection survives rotation", async () => {
    const username = uniqueName("rotate-open");
    const oldPassword = await createAccount(username);
    const connection = await connectAs(username, oldPassword);
    connections.push(connection);
    const closed = new Promise((resolve) => connection.once("close", resolve));
    const response = await gql(gateway, ROTATE, { u: username }, owner);
    expect(response.errors).toBeUndefined();
    expect(response.data!.rotateAccountPassword.notice).toContain(
      "keep running until they disconnect",
    );
    // The connection still works: a channel opens and a declare succeeds.
    const channel = await connection.createChannel();
    const queue = `queue/${username}/still-open`;
    await channel.assertQueue(queue, { autoDelete: true });
    await channel.close();
    const outcome = await Promise.race([
      closed.then(() => "closed"),
      new Promise((resolve) => setTimeout(() => resolve("open"), 500)),
    ]);
    expect(outcome).toBe("open");
  });

  test("stranger cannot rotate", async () => {
    const username = uniqueName("rotate-guard");
    const password = await createAccount(username);
    const response = await gql(gateway, ROTATE, { u: username }, stranger);
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
    const connection = await connectAs(username, password);
    connections.push(connection);
  });

  test("unknown account is not found", async () => {
    const response = await gql(gateway, ROTATE, { u: uniqueName("ghost") }, admin);
    expect(errorCodes(response)).toEqual(["NOT_FOUND"]);
  });
});
