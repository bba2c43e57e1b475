// Mutations that change both RabbitMQ and PostgreSQL, with the second step
// failing for real: a proxy in front of the management API responds 503 to
// one chosen request, and triggers in the test database raise on chosen
// rows. After each failure, the broker and the database must agree again.
import amqp from "amqplib";

import type { Gateway } from "../src/server";
import { isNotFound } from "../src/rabbitmq/management";
import { accountPolicyName } from "../src/services/queue-limits";
import {
  amqpUrlAs,
  brokerAdmin,
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
} from "./harness";
import { ManagementProxy } from "./management-proxy";

const cleanup = new Cleanup();
const management = brokerAdmin();
let proxy: ManagementProxy;
let gateway: Gateway;
let owner: string;

// Names that the triggers below make fail. Only this file uses them, so
// other tests on the same database are not affected.
const COMMIT_FAILS_ACCOUNT = "undo-commit-";
const DELETE_FAILS_ACCOUNT = "undo-keep-";
const INSERT_FAILS_QUEUE = "undo-row-";
const INSERT_FAILS_PATTERN = "undo-row.";
const DELETE_FAILS_PATTERN = "undo-keep.";

const TRIGGERS_SQL = [
  `CREATE OR REPLACE FUNCTION undo_test_fail() RETURNS trigger
     LANGUAGE plpgsql AS $$
   BEGIN
     RAISE EXCEPTION 'failure injected by the test on % of %',
       TG_OP, TG_TABLE_NAME;
   END $$`,
  // Deferred, so the failure comes at COMMIT, after every broker call.
  `CREATE CONSTRAINT TRIGGER undo_test_account_insert
     AFTER INSERT ON "Account" DEFERRABLE INITIALLY DEFERRED
     FOR EACH ROW WHEN (NEW."username" LIKE '${COMMIT_FAILS_ACCOUNT}%')
     EXECUTE FUNCTION undo_test_fail()`,
  `CREATE CONSTRAINT TRIGGER undo_test_account_delete
     AFTER DELETE ON "Account" DEFERRABLE INITIALLY DEFERRED
     FOR EACH ROW WHEN (OLD."username" LIKE '${DELETE_FAILS_ACCOUNT}%')
     EXECUTE FUNCTION undo_test_fail()`,
  `CREATE TRIGGER undo_test_queue_insert
     BEFORE INSERT ON "Queue"
     FOR EACH ROW WHEN (NEW."name" LIKE 'queue/%/${INSERT_FAILS_QUEUE}%')
     EXECUTE FUNCTION undo_test_fail()`,
  `CREATE TRIGGER undo_test_binding_insert
     BEFORE INSERT ON "Binding"
     FOR EACH ROW
     WHEN (NEW."routingKeyPattern" LIKE '${INSERT_FAILS_PATTERN}%')
     EXECUTE FUNCTION undo_test_fail()`,
  `CREATE CONSTRAINT TRIGGER undo_test_binding_delete
     AFTER DELETE ON "Binding" DEFERRABLE INITIALLY DEFERRED
     FOR EACH ROW
     WHEN (OLD."routingKeyPattern" LIKE '${DELETE_FAILS_PATTERN}%')
     EXECUTE FUNCTION undo_test_fail()`,
];

const DROP_TRIGGERS_SQL = [
  `DROP TRIGGER IF EXISTS undo_test_account_insert ON "Account"`,
  `DROP TRIGGER IF EXISTS undo_test_account_delete ON "Account"`,
  `DROP TRIGGER IF EXISTS undo_test_queue_insert ON "Queue"`,
  `DROP TRIGGER IF EXISTS undo_test_binding_insert ON "Binding"`,
  `DROP TRIGGER IF EXISTS undo_test_binding_delete ON "Binding"`,
  `DROP FUNCTION IF EXISTS undo_test_fail()`,
];

beforeAll(async () => {
  proxy = await ManagementProxy.start(testConfig().managementUrl);
  cleanup.add(() => proxy.close());
  gateway = await startGateway({ managementUrl: proxy.url });
  cleanup.add(() => gateway.stop());
  cleanup.add(deleteCreatedAccounts);
  // Runs first, so that the triggers cannot block the deletions.
  cleanup.add(async () => {
    for (const sql of DROP_TRIGGERS_SQL) {
      await gateway.db.$executeRawUnsafe(sql);
    }
  });
  for (const sql of TRIGGERS_SQL) await gateway.db.$executeRawUnsafe(sql);
  owner = await tokenFor(uniqueEmail("owner"));
});

afterEach(() => proxy.clear());

afterAll(() => cleanup.run());

/** Escapes a name for a regular expression of management paths. */
function escaped(name: string): string {
  return encodeURIComponent(name).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const VHOST = escaped(testConfig().vhost);

function pathOf(...segments: string[]): RegExp {
  return new RegExp(`^/api/${segments.join("/")}$`);
}

const CREATE_ACCOUNT = `mutation ($input: CreateAccountInput!) {
  createAccount(input: $input) { account { username } password }
}`;

const DELETE_ACCOUNT = `mutation ($username: String!) {
  deleteAccount(username: $username)
}`;

const ROTATE_PASSWORD = `mutation ($username: String!) {
  rotateAccountPassword(username: $username) { password }
}`;

const createdAccounts: string[] = [];

async function createAccount(username: string): Promise<GraphQLResponse> {
  // Recorded first, so the account goes whatever the test leaves behind.
  createdAccounts.push(username);
  return gql(gateway, CREATE_ACCOUNT, { input: { username } }, owner);
}

async function deleteCreatedAccounts(): Promise<void> {
  proxy.clear();
  for (const username of createdAccounts) {
    await gql(gateway, DELETE_ACCOUNT, { username }, owner);
    await management.deleteUser(username).catch(() => undefined);
  }
}

/** Puts a queue-limits policy for the account name on the broker. */
async function putLimitsPolicy(username: string): Promise<void> {
  const name = accountPolicyName(username);
  await management.putPolicy({
    name,
    pattern: `^queue/${username}/`,
    "apply-to": "queues",
    priority: 0,
    definition: { "max-length": 3 },
  });
  cleanup.add(() => management.deletePolicy(name).catch(() => undefined));
}

async function limitsPolicyExists(username: string): Promise<boolean> {
  const policies = await management.listPolicies();
  return policies.some((policy) => policy.name === accountPolicyName(username));
}

async function accountRowExists(username: string): Promise<boolean> {
  const row = await gateway.db.account.findUnique({ where: { username } });
  return row !== null;
}

async function brokerUserExists(username: string): Promise<boolean> {
  return management.userExists(username);
}

describe("createAccount", () => {
  test("permission failure leaves no user", async () => {
    const username = uniqueName("undo-permissions");
    const failing = proxy.add({
      method: "PUT",
      path: pathOf("permissions", VHOST, escaped(username)),
      status: 503,
    });

    const response = await createAccount(username);

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await brokerUserExists(username)).toBe(false);
    expect(await accountRowExists(username)).toBe(false);
  });

  test("user creation failure leaves no row", async () => {
    const username = uniqueName("undo-user");
    const failing = proxy.add({
      method: "PUT",
      path: pathOf("users", escaped(username)),
      status: 503,
    });

    const response = await createAccount(username);

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await brokerUserExists(username)).toBe(false);
    expect(await accountRowExists(username)).toBe(false);
  });

  test("lost user response leaves no user", async () => {
    const username = uniqueName("undo-lost-user");
    const failing = proxy.add({
      method: "PUT",
      path: pathOf("users", escaped(username)),
      status: 503,
      forwardFirst: true,
    });

    const response = await createAccount(username);

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await brokerUserExists(username)).toBe(false);
    expect(await accountRowExists(username)).toBe(false);
  });

  test("commit failure deletes the user", async () => {
    const username = uniqueName(`${COMMIT_FAILS_ACCOUNT}account`);

    const response = await createAccount(username);

    expect(response.errors?.[0].message).toMatch(/failure injected/);
    expect(await accountRowExists(username)).toBe(false);
    expect(await brokerUserExists(username)).toBe(false);
  });

  test("commit failure keeps a left-over policy", async () => {
    const username = uniqueName(`${COMMIT_FAILS_ACCOUNT}policy`);
    await putLimitsPolicy(username);

    const response = await createAccount(username);

    expect(response.errors?.[0].message).toMatch(/failure injected/);
    expect(await limitsPolicyExists(username)).toBe(true);
  });
});

describe("deleteAccount", () => {
  test("user deletion failure keeps the policy", async () => {
    const username = uniqueName("undo-delete-policy");
    expect((await createAccount(username)).errors).toBeUndefined();
    await putLimitsPolicy(username);
    const failing = proxy.add({
      method: "DELETE",
      path: pathOf("users", escaped(username)),
      status: 503,
    });

    const response = await gql(gateway, DELETE_ACCOUNT, { username }, owner);

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await limitsPolicyExists(username)).toBe(true);
  });

  test("commit failure keeps the policy", async () => {
    const username = uniqueName(`${DELETE_FAILS_ACCOUNT}policy`);
    expect((await createAccount(username)).errors).toBeUndefined();
    await putLimitsPolicy(username);

    const response = await gql(gateway, DELETE_ACCOUNT, { username }, owner);

    expect(response.errors?.[0].message).toMatch(/failure injected/);
    expect(await limitsPolicyExists(username)).toBe(true);
  });

  test("user deletion failure keeps both", async () => {
    const username = uniqueName("undo-delete");
    expect((await createAccount(username)).errors).toBeUndefined();
    const failing = proxy.add({
      method: "DELETE",
      path: pathOf("users", escaped(username)),
      status: 503,
    });

    const response = await gql(gateway, DELETE_ACCOUNT, { username }, owner);

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await accountRowExists(username)).toBe(true);
    expect(await brokerUserExists(username)).toBe(true);
  });

  test("lost deletion response restores the user", async () => {
    const username = uniqueName("undo-lost-delete");
    const created = await createAccount(username);
    expect(created.errors).toBeUndefined();
    const failing = proxy.add({
      method: "DELETE",
      path: pathOf("users", escaped(username)),
      status: 503,
      forwardFirst: true,
    });

    const response = await gql(gateway, DELETE_ACCOUNT, { username }, owner);

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await accountRowExists(username)).toBe(true);
    expect(await brokerUserExists(username)).toBe(true);
    const password = created.data!.createAccount.password as string;
    expect(await passwordAccepted(username, password)).toBe(true);
  });

  test("a failed queue deletion leaves rows only for queues still there", async () => {
    const username = uniqueName("undo-delete-queues");
    expect((await createAccount(username)).errors).toBeUndefined();
    for (const name of ["a", "b"]) {
      const queue = await gql(gateway, CREATE_QUEUE, { input: { account: username, name } }, owner);
      expect(queue.errors).toBeUndefined();
    }
    // The broker lists queues by name, so "a" goes first and "b" fails.
    const failing = proxy.add({
      method: "DELETE",
      path: pathOf("queues", VHOST, escaped(`queue/${username}/b`)),
      status: 503,
    });

    const response = await gql(gateway, DELETE_ACCOUNT, { username }, owner);

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await accountRowExists(username)).toBe(true);
    expect(await brokerUserExists(username)).toBe(true);
    const rows = await gateway.db.queue.findMany({ where: { accountName: username } });
    expect(rows.map((row) => row.name)).toEqual([`queue/${username}/b`]);
    const onBroker = (await management.listQueues())
      .map((queue) => queue.name)
      .filter((name) => name.startsWith(`queue/${username}/`));
    expect(onBroker).toEqual([`queue/${username}/b`]);

    // The rule fails one request only, so a retry finishes the deletion.
    expect((await gql(gateway, DELETE_ACCOUNT, { username }, owner)).errors).toBeUndefined();
    expect(await accountRowExists(username)).toBe(false);
  });

  test("commit failure restores the user", async () => {
    const username = uniqueName(`${DELETE_FAILS_ACCOUNT}account`);
    const created = await createAccount(username);
    expect(created.errors).toBeUndefined();
    const permissions = await management.getPermissions(username);

    const response = await gql(gateway, DELETE_ACCOUNT, { username }, owner);

    expect(response.errors?.[0].message).toMatch(/failure injected/);
    expect(await accountRowExists(username)).toBe(true);
    expect(await brokerUserExists(username)).toBe(true);
    expect(await management.getPermissions(username)).toEqual(permissions);
    const password = created.data!.createAccount.password as string;
    expect(await passwordAccepted(username, password)).toBe(true);
  });
});

describe("rotateAccountPassword", () => {
  test("failed change keeps the old password", async () => {
    const username = uniqueName("undo-rotate");
    const created = await createAccount(username);
    expect(created.errors).toBeUndefined();
    const failing = proxy.add({
      method: "PUT",
      path: pathOf("users", escaped(username)),
      status: 503,
    });

    const response = await gql(gateway, ROTATE_PASSWORD, { username }, owner);

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await accountRowExists(username)).toBe(true);
    const oldPassword = created.data!.createAccount.password as string;
    expect(await passwordAccepted(username, oldPassword)).toBe(true);
  });

  test("lost response restores the old password", async () => {
    const username = uniqueName("undo-lost-rotate");
    const created = await createAccount(username);
    expect(created.errors).toBeUndefined();
    const failing = proxy.add({
      method: "PUT",
      path: pathOf("users", escaped(username)),
      status: 503,
      forwardFirst: true,
    });

    const response = await gql(gateway, ROTATE_PASSWORD, { username }, owner);

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    const oldPassword = created.data!.createAccount.password as string;
    expect(await passwordAccepted(username, oldPassword)).toBe(true);
  });
});

const CREATE_QUEUE = `mutation ($input: CreateQueueInput!) {
  createQueue(input: $input) { name }
}`;

const DELETE_QUEUE = `mutation ($name: String!) { deleteQueue(name: $name) }`;

async function queueExists(name: string): Promise<boolean> {
  try {
    await management.getQueue(name);
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

async function queueRowExists(name: string): Promise<boolean> {
  const row = await gateway.db.queue.findUnique({ where: { name } });
  return row !== null;
}

/** Creates an account for the tests of one describe block. */
async function accountForQueues(prefix: string): Promise<string> {
  const username = uniqueName(prefix);
  const response = await createAccount(username);
  expect(response.errors).toBeUndefined();
  return username;
}

describe("createQueue", () => {
  let account: string;

  beforeAll(async () => {
    account = await accountForQueues("undo-queues");
  });

  test("declare failure leaves no queue", async () => {
    const name = uniqueName("declare");
    const queue = `queue/${account}/${name}`;
    const failing = proxy.add({
      method: "PUT",
      path: pathOf("queues", VHOST, escaped(queue)),
      status: 503,
    });

    const response = await gql(
      gateway,
      CREATE_QUEUE,
      { input: { account, name } },
      owner,
    );

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await queueExists(queue)).toBe(false);
    expect(await queueRowExists(queue)).toBe(false);
  });

  test("row failure deletes the queue", async () => {
    const name = uniqueName(`${INSERT_FAILS_QUEUE}queue`);
    const queue = `queue/${account}/${name}`;

    const response = await gql(
      gateway,
      CREATE_QUEUE,
      { input: { account, name } },
      owner,
    );

    expect(response.errors?.[0].message).toMatch(/failure injected/);
    expect(await queueRowExists(queue)).toBe(false);
    expect(await queueExists(queue)).toBe(false);
  });
});

describe("deleteQueue", () => {
  test("broker failure keeps the row", async () => {
    const account = await accountForQueues("undo-queue-delete");
    const queue = `queue/${account}/kept`;
    const created = await gql(
      gateway,
      CREATE_QUEUE,
      { input: { account, name: "kept" } },
      owner,
    );
    expect(created.errors).toBeUndefined();
    const failing = proxy.add({
      method: "DELETE",
      path: pathOf("queues", VHOST, escaped(queue)),
      status: 503,
    });

    const response = await gql(gateway, DELETE_QUEUE, { name: queue }, owner);

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await queueExists(queue)).toBe(true);
    expect(await queueRowExists(queue)).toBe(true);
  });
});

const CREATE_BINDING = `mutation ($input: BindingInput!) {
  createBinding(input: $input) { queue }
}`;

const DELETE_BINDING = `mutation ($input: BindingInput!) {
  deleteBinding(input: $input)
}`;

const UPDATE_BINDING = `
  mutation ($input: BindingInput!, $to: BindingTargetInput!) {
    updateBinding(input: $input, to: $to) { queue }
  }`;

const REPLACE_BINDINGS = `
  mutation ($queue: String!, $bindings: [BindingTargetInput!]!) {
    replaceBindings(queue: $queue, bindings: $bindings) { queue }
  }`;

/** Bindings of the queue on the broker, as "exchange pattern", sorted. */
async function brokerBindings(queue: string): Promise<string[]> {
  const bindings = await management.listQueueBindings(queue);
  return bindings
    .filter((binding) => binding.source !== "")
    .map((binding) => `${binding.source} ${binding.routing_key}`)
    .sort();
}

/** Binding rows of the queue, as "exchange pattern", sorted. */
async function bindingRows(queue: string): Promise<string[]> {
  const rows = await gateway.db.binding.findMany({
    where: { queue: { name: queue } },
  });
  return rows.map((row) => `${row.exchange} ${row.routingKeyPattern}`).sort();
}

function bindingPath(exchange: string, queue: string, suffix = ""): RegExp {
  return pathOf(
    "bindings",
    VHOST,
    "e",
    escaped(exchange),
    "q",
    escaped(queue) + suffix,
  );
}

describe("bindings", () => {
  let queue: string;
  // The binding whose deletion the trigger makes fail stays on this queue.
  let keptQueue: string;
  let first: string;
  let second: string;

  beforeAll(async () => {
    const account = await accountForQueues("undo-bindings");
    for (const name of ["bound", "kept"]) {
      const created = await gql(
        gateway,
        CREATE_QUEUE,
        { input: { account, name } },
        owner,
      );
      expect(created.errors).toBeUndefined();
    }
    queue = `queue/${account}/bound`;
    keptQueue = `queue/${account}/kept`;
    first = `exchange/${uniqueName("undo-first")}/v1`;
    second = `exchange/${uniqueName("undo-second")}/v1`;
    await declareTestExchange(gateway, cleanup, first);
    await declareTestExchange(gateway, cleanup, second);
  });

  /** Makes the queue's bindings exactly `patterns` on the first exchange. */
  async function startWith(
    patterns: string[],
    target: string = queue,
  ): Promise<void> {
    const response = await gql(
      gateway,
      REPLACE_BINDINGS,
      {
        queue: target,
        bindings: patterns.map((routingKeyPattern) => ({
          exchange: first,
          routingKeyPattern,
        })),
      },
      owner,
    );
    expect(response.errors).toBeUndefined();
    const expected = patterns.map((pattern) => `${first} ${pattern}`).sort();
    expect(await brokerBindings(target)).toEqual(expected);
    expect(await bindingRows(target)).toEqual(expected);
  }

  test("create: bind failure leaves no row", async () => {
    await startWith([]);
    const failing = proxy.add({
      method: "POST",
      path: bindingPath(first, queue),
      status: 503,
    });

    const response = await gql(
      gateway,
      CREATE_BINDING,
      { input: { queue, exchange: first, routingKeyPattern: "a.#" } },
      owner,
    );

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await brokerBindings(queue)).toEqual([]);
    expect(await bindingRows(queue)).toEqual([]);
  });

  test("create: lost bind response unbinds", async () => {
    await startWith([]);
    const failing = proxy.add({
      method: "POST",
      path: bindingPath(first, queue),
      status: 503,
      forwardFirst: true,
    });

    const response = await gql(
      gateway,
      CREATE_BINDING,
      { input: { queue, exchange: first, routingKeyPattern: "a.#" } },
      owner,
    );

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await brokerBindings(queue)).toEqual([]);
    expect(await bindingRows(queue)).toEqual([]);
  });

  test("create: lost response keeps older binding", async () => {
    await startWith(["a.#"]);
    const failing = proxy.add({
      method: "POST",
      path: bindingPath(first, queue),
      status: 503,
      forwardFirst: true,
    });

    const response = await gql(
      gateway,
      CREATE_BINDING,
      { input: { queue, exchange: first, routingKeyPattern: "a.#" } },
      owner,
    );

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await brokerBindings(queue)).toEqual([`${first} a.#`]);
    expect(await bindingRows(queue)).toEqual([`${first} a.#`]);
  });

  test("create: row failure unbinds", async () => {
    await startWith([]);

    const response = await gql(
      gateway,
      CREATE_BINDING,
      {
        input: {
          queue,
          exchange: first,
          routingKeyPattern: `${INSERT_FAILS_PATTERN}#`,
        },
      },
      owner,
    );

    expect(response.errors?.[0].message).toMatch(/failure injected/);
    expect(await brokerBindings(queue)).toEqual([]);
    expect(await bindingRows(queue)).toEqual([]);
  });

  test("delete: unbind failure keeps both", async () => {
    await startWith(["a.#"]);
    const failing = proxy.add({
      method: "DELETE",
      path: bindingPath(first, queue, "/[^/]+"),
      status: 503,
    });

    const response = await gql(
      gateway,
      DELETE_BINDING,
      { input: { queue, exchange: first, routingKeyPattern: "a.#" } },
      owner,
    );

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await brokerBindings(queue)).toEqual([`${first} a.#`]);
    expect(await bindingRows(queue)).toEqual([`${first} a.#`]);
  });

  test("delete: lost unbind response binds again", async () => {
    await startWith(["a.#"]);
    const failing = proxy.add({
      method: "DELETE",
      path: bindingPath(first, queue, "/[^/]+"),
      status: 503,
      forwardFirst: true,
    });

    const response = await gql(
      gateway,
      DELETE_BINDING,
      { input: { queue, exchange: first, routingKeyPattern: "a.#" } },
      owner,
    );

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await brokerBindings(queue)).toEqual([`${first} a.#`]);
    expect(await bindingRows(queue)).toEqual([`${first} a.#`]);
  });

  test("delete: commit failure binds again", async () => {
    const pattern = `${DELETE_FAILS_PATTERN}#`;
    await startWith([pattern], keptQueue);

    const response = await gql(
      gateway,
      DELETE_BINDING,
      {
        input: {
          queue: keptQueue,
          exchange: first,
          routingKeyPattern: pattern,
        },
      },
      owner,
    );

    expect(response.errors?.[0].message).toMatch(/failure injected/);
    expect(await brokerBindings(keptQueue)).toEqual([`${first} ${pattern}`]);
    expect(await bindingRows(keptQueue)).toEqual([`${first} ${pattern}`]);
  });

  test("replace: second bind failure unbinds first", async () => {
    await startWith(["old.#"]);
    const failing = proxy.add({
      method: "POST",
      path: bindingPath(second, queue),
      status: 503,
    });

    const response = await gql(
      gateway,
      REPLACE_BINDINGS,
      {
        queue,
        bindings: [
          { exchange: first, routingKeyPattern: "a.#" },
          { exchange: second, routingKeyPattern: "b.#" },
        ],
      },
      owner,
    );

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await brokerBindings(queue)).toEqual([`${first} old.#`]);
    expect(await bindingRows(queue)).toEqual([`${first} old.#`]);
  });

  test("replace: lost bind response unbinds it", async () => {
    await startWith(["old.#"]);
    const failing = proxy.add({
      method: "POST",
      path: bindingPath(second, queue),
      status: 503,
      forwardFirst: true,
    });

    const response = await gql(
      gateway,
      REPLACE_BINDINGS,
      { queue, bindings: [{ exchange: second, routingKeyPattern: "b.#" }] },
      owner,
    );

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await brokerBindings(queue)).toEqual([`${first} old.#`]);
    expect(await bindingRows(queue)).toEqual([`${first} old.#`]);
  });

  test("replace: row failure unbinds all new", async () => {
    await startWith(["old.#"]);

    const response = await gql(
      gateway,
      REPLACE_BINDINGS,
      {
        queue,
        bindings: [
          { exchange: second, routingKeyPattern: "a.#" },
          { exchange: second, routingKeyPattern: `${INSERT_FAILS_PATTERN}#` },
        ],
      },
      owner,
    );

    expect(response.errors?.[0].message).toMatch(/failure injected/);
    expect(await brokerBindings(queue)).toEqual([`${first} old.#`]);
    expect(await bindingRows(queue)).toEqual([`${first} old.#`]);
  });

  test("update: row failure keeps the old", async () => {
    await startWith(["old.#"]);

    const response = await gql(
      gateway,
      UPDATE_BINDING,
      {
        input: { queue, exchange: first, routingKeyPattern: "old.#" },
        to: { exchange: second, routingKeyPattern: `${INSERT_FAILS_PATTERN}#` },
      },
      owner,
    );

    expect(response.errors?.[0].message).toMatch(/failure injected/);
    expect(await brokerBindings(queue)).toEqual([`${first} old.#`]);
    expect(await bindingRows(queue)).toEqual([`${first} old.#`]);
  });

  test("update: old unbind failure removes the new", async () => {
    await startWith(["old.#"]);
    const failing = proxy.add({
      method: "DELETE",
      path: bindingPath(first, queue, "/[^/]+"),
      status: 503,
    });

    const response = await gql(
      gateway,
      UPDATE_BINDING,
      {
        input: { queue, exchange: first, routingKeyPattern: "old.#" },
        to: { exchange: second, routingKeyPattern: "new.#" },
      },
      owner,
    );

    expect(failing.matches).toHaveLength(1);
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(await brokerBindings(queue)).toEqual([`${first} old.#`]);
    expect(await bindingRows(queue)).toEqual([`${first} old.#`]);
  });
});

/** Opens and closes an AMQP connection as the account. */
async function passwordAccepted(
  username: string,
  password: string,
): Promise<boolean> {
  try {
    const connection = await amqp.connect(amqpUrlAs(username, password));
    await connection.close();
    return true;
  } catch {
    return false;
  }
}
