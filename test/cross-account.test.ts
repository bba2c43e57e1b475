// Every mutation of the schema, sent by a signed-in user who does not own
// the object, is rejected and leaves the owner's account, queue and binding
// as they were. The mutations come from the schema itself, so a new one
// fails here until it has a case. Admin-only mutations are sent by the same
// plain user and must change no admin and no reserved name.
import "reflect-metadata";

import type { Channel } from "amqplib";

import { isNotFound } from "../src/rabbitmq";
import { buildGatewaySchema } from "../src/schema";
import type { Gateway } from "../src/server";
import { accountPolicyName } from "../src/services";
import {
  ADMIN_EMAIL,
  amqpUrlAs,
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
let channel: Channel;
let ownerEmail: string;
let ownerToken: string;
let intruderEmail: string;
let intruderToken: string;
let adminToken: string;
let account: string;
let intruderAccount: string;
let password: string;
let queue: string;
let exchange: string;
/** An admin granted through the API, so revokeAdmin could revoke it. */
let grantedAdminEmail: string;
/** A name reserved by an admin, so unreserveAccountName could free it. */
let reservedName: string;

/** Messages published to the owner's queue before the attempts. */
const READY_MESSAGES = 3;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  channel = await gateway.amqp.createChannel();
  cleanup.add(() => channel.close());
  ownerEmail = uniqueEmail("owner");
  ownerToken = await tokenFor(ownerEmail);
  intruderEmail = uniqueEmail("intruder");
  intruderToken = await tokenFor(intruderEmail);
  adminToken = await tokenFor(ADMIN_EMAIL);

  account = uniqueName("owned");
  const created = await gql(
    gateway,
    `mutation ($u: String!) { createAccount(input: { username: $u }) { password } }`,
    { u: account },
    ownerToken,
  );
  expect(created.errors).toBeUndefined();
  password = created.data!.createAccount.password;
  cleanup.add(() =>
    gql(gateway, `mutation { deleteAccount(username: "${account}") }`, {}, ownerToken),
  );
  // The intruder owns an account too, so it is a user with rights of its own.
  intruderAccount = uniqueName("intruder");
  await expectOk(
    gql(
      gateway,
      `mutation ($u: String!) { createAccount(input: { username: $u }) { password } }`,
      { u: intruderAccount },
      intruderToken,
    ),
  );
  cleanup.add(() =>
    gql(
      gateway,
      `mutation { deleteAccount(username: "${intruderAccount}") }`,
      {},
      intruderToken,
    ),
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
  for (let i = 0; i < READY_MESSAGES; i++) {
    await gateway.amqp.publish("", queue, Buffer.from(`{"n": ${i}}`));
  }

  grantedAdminEmail = uniqueEmail("granted-admin");
  await expectOk(
    gql(
      gateway,
      `mutation ($e: String!) { grantAdmin(email: $e) { email } }`,
      { e: grantedAdminEmail },
      adminToken,
    ),
  );
  cleanup.add(() =>
    gql(
      gateway,
      `mutation ($e: String!) { revokeAdmin(email: $e) { email } }`,
      { e: grantedAdminEmail },
      adminToken,
    ),
  );
  reservedName = uniqueName("reserved");
  await expectOk(
    gql(
      gateway,
      `mutation ($n: String!) { reserveAccountName(name: $n) { name } }`,
      { n: reservedName },
      adminToken,
    ),
  );
  cleanup.add(() =>
    gql(
      gateway,
      `mutation ($n: String!) { unreserveAccountName(name: $n) { name } }`,
      { n: reservedName },
      adminToken,
    ),
  );
  // Deleting the account leaves its queue-limits policy on the broker.
  cleanup.add(() =>
    gateway.management
      .deletePolicy(accountPolicyName(account))
      .catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      }),
  );
});

afterAll(() => cleanup.run());

async function expectOk(pending: ReturnType<typeof gql>): Promise<void> {
  const response = await pending;
  expect(response.errors).toBeUndefined();
}

const SET_RECIPIENTS = `mutation ($a: String!, $q: String, $e: [String!]!) {
  setNotificationRecipients(
    account: $a
    queue: $q
    emails: $e
    webhookUrls: ["http://127.0.0.1:9/intruder"]
  ) { notifyEmails }
}`;

interface Attempt {
  query: string;
  variables: () => Record<string, unknown>;
  /** The code the intruder gets. */
  code: string;
}

/**
 * Attempts per mutation of the schema, each aimed at the owner's objects,
 * or at the admins and reserved names for admin-only mutations. A mutation
 * with more than one way to name its target has an attempt per way.
 */
const MUTATION_ATTEMPTS: Record<string, Attempt | Attempt[]> = {
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
  setQueuePolicy: {
    query: `mutation ($q: String!) {
      setQueuePolicy(name: $q, warnSize: 1, deleteSize: 2) { deleteSize }
    }`,
    variables: () => ({ q: queue }),
    code: "FORBIDDEN",
  },
  setAccountPolicy: {
    query: `mutation ($a: String!) {
      setAccountPolicy(account: $a, warnSize: 1, deleteSize: 2) { deleteSize }
    }`,
    variables: () => ({ a: account }),
    code: "FORBIDDEN",
  },
  setNotificationRecipients: [
    {
      query: SET_RECIPIENTS,
      variables: () => ({ a: account, q: null, e: [intruderEmail] }),
      code: "FORBIDDEN",
    },
    {
      query: SET_RECIPIENTS,
      variables: () => ({ a: account, q: queue, e: [intruderEmail] }),
      code: "FORBIDDEN",
    },
    // The intruder's own account with the owner's queue. The queue's name
    // decides its account, so the mismatch is rejected before any write.
    {
      query: SET_RECIPIENTS,
      variables: () => ({ a: intruderAccount, q: queue, e: [intruderEmail] }),
      code: "BAD_USER_INPUT",
    },
  ],
  setAccountQueueLimits: {
    query: `mutation ($a: String!) {
      setAccountQueueLimits(account: $a, limits: { maxLength: 1 }) { maxLength }
    }`,
    variables: () => ({ a: account }),
    code: "FORBIDDEN",
  },
  addAccountOwner: {
    query: `mutation ($u: String!, $e: String!) {
      addAccountOwner(username: $u, email: $e) { owners }
    }`,
    variables: () => ({ u: account, e: intruderEmail }),
    code: "FORBIDDEN",
  },
  removeAccountOwner: {
    query: `mutation ($u: String!, $e: String!) {
      removeAccountOwner(username: $u, email: $e) { owners }
    }`,
    variables: () => ({ u: account, e: ownerEmail }),
    code: "FORBIDDEN",
  },
  rotateAccountPassword: {
    query: `mutation ($u: String!) { rotateAccountPassword(username: $u) { password } }`,
    variables: () => ({ u: account }),
    code: "FORBIDDEN",
  },
  purgeQueue: {
    query: `mutation ($q: String!) { purgeQueue(name: $q) { queue { name } } }`,
    variables: () => ({ q: queue }),
    code: "FORBIDDEN",
  },
  updateBinding: {
    query: `mutation ($q: String!, $e: String!) {
      updateBinding(
        input: { queue: $q, exchange: $e, routingKeyPattern: "#" }
        to: { exchange: $e, routingKeyPattern: "intruder.#" }
      ) { routingKeyPattern }
    }`,
    variables: () => ({ q: queue, e: exchange }),
    code: "FORBIDDEN",
  },
  // An empty list would remove every binding of the queue.
  replaceBindings: {
    query: `mutation ($q: String!) { replaceBindings(queue: $q, bindings: []) { queue } }`,
    variables: () => ({ q: queue }),
    code: "FORBIDDEN",
  },
  grantAdmin: {
    query: `mutation ($e: String!) { grantAdmin(email: $e) { email } }`,
    variables: () => ({ e: intruderEmail }),
    code: "FORBIDDEN",
  },
  revokeAdmin: {
    query: `mutation ($e: String!) { revokeAdmin(email: $e) { email } }`,
    variables: () => ({ e: grantedAdminEmail }),
    code: "FORBIDDEN",
  },
  // Reserving the owner's account name leaves the account in place, but
  // only an admin may do it.
  reserveAccountName: {
    query: `mutation ($n: String!) { reserveAccountName(name: $n) { name } }`,
    variables: () => ({ n: account }),
    code: "FORBIDDEN",
  },
  unreserveAccountName: {
    query: `mutation ($n: String!) { unreserveAccountName(name: $n) { name } }`,
    variables: () => ({ n: reservedName }),
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
    oldPasswordConnects: await passwordConnects(account, password),
    queues: brokerQueues
      .map((q) => q.name)
      .filter((name) => name.startsWith(`queue/${account}/`))
      .sort(),
    readyMessages: (await channel.checkQueue(queue)).messageCount,
    queueRows: await db.queue.findMany({
      where: { accountName: account },
      select: {
        name: true,
        unbounded: true,
        warnSize: true,
        deleteSize: true,
        notifyEmails: true,
        webhookUrls: true,
      },
      orderBy: { name: "asc" },
    }),
    accountPolicy: await db.accountPolicy.findFirst({
      where: { account: { username: account } },
      select: {
        warnSize: true,
        deleteSize: true,
        notifyEmails: true,
        webhookUrls: true,
        maxLength: true,
        overflow: true,
        messageTtlMs: true,
        expiresMs: true,
      },
    }),
    brokerPolicy: await brokerPolicy(accountPolicyName(account)),
    bindings: bindings
      .filter((binding) => binding.source !== "")
      .map((binding) => `${binding.source} ${binding.routing_key}`)
      .sort(),
    bindingRows: await db.binding.findMany({
      where: { queue: { name: queue } },
      select: { exchange: true, routingKeyPattern: true },
      orderBy: { routingKeyPattern: "asc" },
    }),
    admins: await db.user.findMany({
      where: { email: { in: [intruderEmail, grantedAdminEmail] } },
      select: { email: true, isAdmin: true },
      orderBy: { email: "asc" },
    }),
    reservedNames: await db.reservedAccountName.findMany({
      where: { name: { in: [account, reservedName] } },
      select: { name: true },
      orderBy: { name: "asc" },
    }),
  };
}

/**
 * Returns true when the password opens an AMQP connection, else the error
 * message.
 */
async function passwordConnects(
  username: string,
  secret: string,
): Promise<true | string> {
  const amqplib = await import("amqplib");
  try {
    const connection = await amqplib.connect(amqpUrlAs(username, secret));
    await connection.close();
    return true;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Returns a RabbitMQ policy of the test vhost, or null when there is none. */
async function brokerPolicy(name: string) {
  try {
    return await gateway.management.getPolicy(name);
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
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
  expect(before.readyMessages).toBe(READY_MESSAGES);
  expect(before.oldPasswordConnects).toBe(true);
  expect(before.admins).toEqual([
    { email: grantedAdminEmail, isAdmin: true },
    { email: intruderEmail, isAdmin: false },
  ]);
  expect(before.reservedNames).toEqual([{ name: reservedName }]);

  for (const mutation of mutations) {
    const attempts = [MUTATION_ATTEMPTS[mutation] ?? []].flat();
    for (const [index, attempt] of attempts.entries()) {
      const variables = attempt.variables();
      const response = await gql(
        gateway,
        attempt.query,
        variables,
        intruderToken,
      );
      // The mutation, the attempt's index and its variables are part of
      // each compared value, so a failure names the attempt.
      const label = { mutation, index, variables };
      expect({ ...label, codes: errorCodes(response) }).toEqual({
        ...label,
        codes: [attempt.code],
      });
      expect({ ...label, state: await ownerState() }).toEqual({
        ...label,
        state: before,
      });
    }
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

describe("owner after the intruder", () => {
  // The owner's objects are the ones the intruder attempts ran against.
  // The admin-only mutations are left out because owners may not run them.
  test("owner sets queue and account policies", async () => {
    const queuePolicy = await ownerMutation(
      `mutation ($q: String!) {
        setQueuePolicy(name: $q, warnSize: 1, deleteSize: 2) { deleteSize source }
      }`,
      { q: queue },
    );
    expect(queuePolicy.setQueuePolicy).toEqual({
      deleteSize: 2,
      source: "QUEUE",
    });

    const accountPolicy = await ownerMutation(
      `mutation ($a: String!) {
        setAccountPolicy(account: $a, warnSize: 10, deleteSize: 20) { deleteSize source }
      }`,
      { a: account },
    );
    expect(accountPolicy.setAccountPolicy).toEqual({
      deleteSize: 20,
      source: "ACCOUNT",
    });
  });

  test("owner sets notice recipients", async () => {
    const forAccount = await ownerMutation(SET_RECIPIENTS, {
      a: account,
      q: null,
      e: [ownerEmail],
    });
    const accountRecipients = forAccount.setNotificationRecipients;
    expect(accountRecipients.notifyEmails).toEqual([ownerEmail]);

    const forQueue = await ownerMutation(SET_RECIPIENTS, {
      a: account,
      q: queue,
      e: [ownerEmail],
    });
    const queueRecipients = forQueue.setNotificationRecipients;
    expect(queueRecipients.notifyEmails).toEqual([ownerEmail]);
  });

  test("owner sets queue limits", async () => {
    await ownerMutation(
      `mutation ($a: String!) {
        setAccountQueueLimits(account: $a, limits: { maxLength: 1000 }) { maxLength }
      }`,
      { a: account },
    );
    const policy = await brokerPolicy(accountPolicyName(account));
    expect(policy?.definition["max-length"]).toBe(1000);
  });

  test("owner adds and removes an owner", async () => {
    const second = uniqueEmail("second-owner");
    const added = await ownerMutation(
      `mutation ($u: String!, $e: String!) {
        addAccountOwner(username: $u, email: $e) { owners }
      }`,
      { u: account, e: second },
    );
    expect(added.addAccountOwner.owners).toEqual([ownerEmail, second]);

    const removed = await ownerMutation(
      `mutation ($u: String!, $e: String!) {
        removeAccountOwner(username: $u, email: $e) { owners }
      }`,
      { u: account, e: second },
    );
    expect(removed.removeAccountOwner.owners).toEqual([ownerEmail]);
  });

  test("owner updates and replaces bindings", async () => {
    await ownerMutation(
      `mutation ($q: String!, $e: String!) {
        updateBinding(
          input: { queue: $q, exchange: $e, routingKeyPattern: "#" }
          to: { exchange: $e, routingKeyPattern: "owner.#" }
        ) { routingKeyPattern }
      }`,
      { q: queue, e: exchange },
    );
    expect((await ownerState()).bindings).toEqual([`${exchange} owner.#`]);

    await ownerMutation(
      `mutation ($q: String!, $e: String!) {
        replaceBindings(queue: $q, bindings: [{ exchange: $e, routingKeyPattern: "#" }]) {
          queue
        }
      }`,
      { q: queue, e: exchange },
    );
    expect((await ownerState()).bindings).toEqual([`${exchange} #`]);
  });

  test("owner purges the queue", async () => {
    expect((await channel.checkQueue(queue)).messageCount).toBe(READY_MESSAGES);
    await ownerMutation(
      `mutation ($q: String!) { purgeQueue(name: $q) { queue { name } } }`,
      { q: queue },
    );
    expect((await channel.checkQueue(queue)).messageCount).toBe(0);
  });

  test("owner rotates the password", async () => {
    const rotated = await ownerMutation(
      `mutation ($u: String!) { rotateAccountPassword(username: $u) { password } }`,
      { u: account },
    );
    const newPassword = rotated.rotateAccountPassword.password as string;
    expect(await passwordConnects(account, newPassword)).toBe(true);
    const oldPassword = await passwordConnects(account, password);
    expect(oldPassword).toMatch(/ACCESS_REFUSED|403/);
  });
});

/** Sends a mutation as the owner, expects no errors and returns the data. */
async function ownerMutation(
  query: string,
  variables: Record<string, unknown>,
): Promise<Record<string, any>> {
  const response = await gql(gateway, query, variables, ownerToken);
  expect(response.errors).toBeUndefined();
  return response.data!;
}

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
