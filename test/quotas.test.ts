// Quotas: accounts per user and queues per account, enforced under
// concurrent requests, with admins exempt.
import type { Gateway } from "../src/server";
import {
  ADMIN_EMAIL,
  brokerAdmin,
  Cleanup,
  createTestAccount,
  errorCodes,
  gql,
  startGateway,
  testConfig,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const MAX_ACCOUNTS = 3;
const MAX_QUEUES = 3;

const cleanup = new Cleanup();
let gateway: Gateway;
let admin: string;

const CREATE_ACCOUNT = `mutation ($u: String!) {
  createAccount(input: { username: $u }) { account { username } }
}`;

const CREATE_QUEUE = `mutation ($a: String!, $n: String!) {
  createQueue(input: { account: $a, name: $n, durable: false }) { name }
}`;

beforeAll(async () => {
  gateway = await startGateway({
    limits: {
      ...testConfig().limits,
      maxAccountsPerUser: MAX_ACCOUNTS,
      maxQueuesPerAccount: MAX_QUEUES,
    },
  });
  cleanup.add(() => gateway.stop());
  admin = await tokenFor(ADMIN_EMAIL);
});

afterAll(() => cleanup.run());

function removeUserLater(username: string): void {
  cleanup.add(() => brokerAdmin().deleteUser(username).catch(() => undefined));
}

function removeQueueLater(name: string): void {
  cleanup.add(() => brokerAdmin().deleteQueue(name).catch(() => undefined));
}

async function ownedAccounts(email: string): Promise<number> {
  return gateway.db.accountOwner.count({ where: { user: { email } } });
}

test("aliased account creations stop at quota", async () => {
  const email = uniqueEmail("aliases");
  const token = await tokenFor(email);
  const names = Array.from({ length: 5 }, () => uniqueName("alias.acct"));
  names.forEach(removeUserLater);
  const fields = names
    .map((name, i) => `a${i}: createAccount(input: { username: "${name}" }) { password }`)
    .join("\n");

  const response = await gql(gateway, `mutation { ${fields} }`, {}, token);

  // createAccount is non-null, so the first error ends the operation and
  // the later aliases never run.
  expect(errorCodes(response)).toEqual(["QUOTA_EXCEEDED"]);
  expect(await ownedAccounts(email)).toBe(MAX_ACCOUNTS);
  for (const name of names.slice(MAX_ACCOUNTS)) {
    expect(await brokerAdmin().userExists(name)).toBe(false);
  }
});

test("account quota message names limit and fix", async () => {
  const email = uniqueEmail("message");
  const token = await tokenFor(email);
  for (let i = 0; i < MAX_ACCOUNTS; i += 1) {
    await createTestAccount(gateway, cleanup, uniqueName("msg.acct"), token);
  }
  const extra = uniqueName("msg.extra");
  removeUserLater(extra);

  const response = await gql(gateway, CREATE_ACCOUNT, { u: extra }, token);

  const error = response.errors![0];
  expect(error.extensions?.code).toBe("QUOTA_EXCEEDED");
  expect(error.message).toContain(`${email} already owns 3 accounts`);
  expect(error.message).toContain("MAX_ACCOUNTS_PER_USER");
  expect(error.message).toContain("deleteAccount");
  expect(error.extensions?.maxAccountsPerUser).toBe(MAX_ACCOUNTS);
});

test("concurrent account creations cannot overshoot", async () => {
  const email = uniqueEmail("race");
  const token = await tokenFor(email);
  const names = Array.from({ length: 8 }, () => uniqueName("race.acct"));
  names.forEach(removeUserLater);

  const responses = await Promise.all(
    names.map((u) => gql(gateway, CREATE_ACCOUNT, { u }, token)),
  );

  const created = responses.filter((r) => r.data?.createAccount);
  const rejected = responses.flatMap(errorCodes);
  expect(created).toHaveLength(MAX_ACCOUNTS);
  expect(rejected).toEqual(Array(names.length - MAX_ACCOUNTS).fill("QUOTA_EXCEEDED"));
  expect(await ownedAccounts(email)).toBe(MAX_ACCOUNTS);
});

test("extra owner at quota rejects creation", async () => {
  const full = uniqueEmail("full");
  const fullToken = await tokenFor(full);
  for (let i = 0; i < MAX_ACCOUNTS; i += 1) {
    await createTestAccount(gateway, cleanup, uniqueName("full.acct"), fullToken);
  }
  const creator = await tokenFor(uniqueEmail("creator"));
  const username = uniqueName("handed.acct");
  removeUserLater(username);

  const response = await gql(
    gateway,
    `mutation ($u: String!, $o: [String!]) {
      createAccount(input: { username: $u, owners: $o }) { password }
    }`,
    { u: username, o: [full] },
    creator,
  );

  expect(errorCodes(response)).toEqual(["QUOTA_EXCEEDED"]);
  expect(await brokerAdmin().userExists(username)).toBe(false);
});

test("addAccountOwner rejects owner at quota", async () => {
  const full = uniqueEmail("full");
  const fullToken = await tokenFor(full);
  for (let i = 0; i < MAX_ACCOUNTS; i += 1) {
    await createTestAccount(gateway, cleanup, uniqueName("full.acct"), fullToken);
  }
  const creator = await tokenFor(uniqueEmail("creator"));
  const username = uniqueName("give.acct");
  await createTestAccount(gateway, cleanup, username, creator);

  const response = await gql(
    gateway,
    `mutation ($u: String!, $e: String!) {
      addAccountOwner(username: $u, email: $e) { owners }
    }`,
    { u: username, e: full },
    creator,
  );

  expect(errorCodes(response)).toEqual(["QUOTA_EXCEEDED"]);
  expect(await ownedAccounts(full)).toBe(MAX_ACCOUNTS);
});

test("admins are exempt from account quota", async () => {
  const names = Array.from({ length: MAX_ACCOUNTS + 1 }, () =>
    uniqueName("admin.acct"),
  );
  for (const name of names) {
    await createTestAccount(gateway, cleanup, name, admin);
  }
  for (const name of names) {
    expect(await brokerAdmin().userExists(name)).toBe(true);
  }
});

test("admin may give an owner more", async () => {
  const email = uniqueEmail("given");
  const names = Array.from({ length: MAX_ACCOUNTS + 1 }, () =>
    uniqueName("given.acct"),
  );
  for (const name of names) {
    await createTestAccount(gateway, cleanup, name, admin);
    const added = await gql(
      gateway,
      `mutation ($u: String!, $e: String!) {
        addAccountOwner(username: $u, email: $e) { owners }
      }`,
      { u: name, e: email },
      admin,
    );
    expect(added.errors).toBeUndefined();
  }
  expect(await ownedAccounts(email)).toBe(MAX_ACCOUNTS + 1);
});

test("concurrent queue creations cannot overshoot", async () => {
  const token = await tokenFor(uniqueEmail("queues"));
  const account = uniqueName("queue.quota");
  await createTestAccount(gateway, cleanup, account, token);
  const names = Array.from({ length: 7 }, (_, i) => `q${i}`);
  names.forEach((n) => removeQueueLater(`queue/${account}/${n}`));

  const responses = await Promise.all(
    names.map((n) => gql(gateway, CREATE_QUEUE, { a: account, n }, token)),
  );

  const created = responses.filter((r) => r.data?.createQueue);
  expect(created).toHaveLength(MAX_QUEUES);
  expect(responses.flatMap(errorCodes)).toEqual(
    Array(names.length - MAX_QUEUES).fill("QUOTA_EXCEEDED"),
  );
  const onBroker = (await brokerAdmin().listQueues()).filter((q) =>
    q.name.startsWith(`queue/${account}/`),
  );
  expect(onBroker).toHaveLength(MAX_QUEUES);
});

test("queue quota message names limit and fix", async () => {
  const token = await tokenFor(uniqueEmail("queues"));
  const account = uniqueName("queue.msg");
  await createTestAccount(gateway, cleanup, account, token);
  for (let i = 0; i < MAX_QUEUES; i += 1) {
    removeQueueLater(`queue/${account}/q${i}`);
    const response = await gql(gateway, CREATE_QUEUE, { a: account, n: `q${i}` }, token);
    expect(response.errors).toBeUndefined();
  }
  removeQueueLater(`queue/${account}/extra`);

  const response = await gql(gateway, CREATE_QUEUE, { a: account, n: "extra" }, token);

  const error = response.errors![0];
  expect(error.extensions?.code).toBe("QUOTA_EXCEEDED");
  expect(error.message).toContain(`already has ${MAX_QUEUES} queues`);
  expect(error.message).toContain("MAX_QUEUES_PER_ACCOUNT");
  expect(error.message).toContain("deleteQueue");
  await expect(brokerAdmin().getQueue(`queue/${account}/extra`)).rejects.toThrow();
});

test("admins are exempt from queue quota", async () => {
  const token = await tokenFor(uniqueEmail("queues"));
  const account = uniqueName("queue.admin");
  await createTestAccount(gateway, cleanup, account, token);
  for (let i = 0; i <= MAX_QUEUES; i += 1) {
    removeQueueLater(`queue/${account}/q${i}`);
    const response = await gql(gateway, CREATE_QUEUE, { a: account, n: `q${i}` }, admin);
    expect(response.errors).toBeUndefined();
  }
});
