// Guardian policies, notices and reconciliation on the real broker and
// database, with a local SMTP server and a local webhook receiver.
import type { Channel } from "amqplib";

import {
  Guardian,
  guardianSettings,
  Notifier,
  signBody,
  SIGNATURE_HEADER,
  type GuardianEventRecord,
} from "../src/guardian";
import { buildNotice } from "../src/guardian/notices";
import type { Gateway } from "../src/server";
import { accountPolicyName, escapeRegExp } from "../src/services";
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
import {
  startMailReceiver,
  startWebhookReceiver,
  type MailReceiver,
  type WebhookReceiver,
} from "./notice-receivers";

const WEBHOOK_SECRET = "webhook-secret-for-tests";
const cleanup = new Cleanup();
let gateway: Gateway;
let guardian: Guardian;
let channel: Channel;
let mail: MailReceiver;
let hooks: WebhookReceiver;
let adminHooks: WebhookReceiver;
let ownerEmail: string;
let ownerToken: string;
const account = uniqueName("noticed");
const exchange = `exchange/${uniqueName("notices")}/v1`;
const events: GuardianEventRecord[] = [];

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  mail = await startMailReceiver();
  cleanup.add(() => mail.close());
  hooks = await startWebhookReceiver();
  cleanup.add(() => hooks.close());
  adminHooks = await startWebhookReceiver();
  cleanup.add(() => adminHooks.close());
  ownerEmail = uniqueEmail("owner");
  ownerToken = await tokenFor(ownerEmail);
  await createAccount(account);
  await declareTestExchange(gateway, cleanup, exchange);

  const notifier = new Notifier(
    {
      smtpUrl: mail.url,
      smtpFrom: "guardian@example.com",
      webhookSecret: WEBHOOK_SECRET,
      webhookAttempts: 3,
      webhookBackoffMs: 50,
      adminWebhookUrls: [],
    },
    gateway.logger,
  );
  cleanup.add(() => notifier.close());
  guardian = new Guardian({
    ...guardianSettings(gateway.config),
    db: gateway.db,
    management: gateway.management,
    stats: gateway.stats,
    events: gateway.guardianEvents,
    logger: gateway.logger,
    consumerGoneMs: 0,
    notifier,
    adminRecipients: { emails: [ADMIN_EMAIL], webhookUrls: [adminHooks.url] },
  });
  cleanup.add(() => guardian.stop());
  gateway.guardianEvents.on("event", (event) => events.push(event));
  channel = await gateway.amqp.createChannel();
  cleanup.add(() => channel.close());
});

afterAll(() => cleanup.run());

async function createAccount(username: string): Promise<void> {
  await createTestAccount(gateway, cleanup, username, ownerToken);
}

async function declare(suffix: string): Promise<string> {
  const name = `queue/${account}/${suffix}`;
  await channel.assertQueue(name, { durable: false });
  cleanup.add(() =>
    brokerAdmin()
      .deleteQueue(name)
      .catch(() => undefined),
  );
  await passUntil(name, "ADOPTED");
  return name;
}

function publish(queue: string, count: number): void {
  for (let i = 0; i < count; i += 1) {
    channel.sendToQueue(queue, Buffer.from(JSON.stringify({ i })));
  }
}

async function pass(): Promise<void> {
  await guardian.check(await gateway.stats.refresh());
}

async function passUntil(
  queue: string,
  kind: GuardianEventRecord["kind"],
): Promise<GuardianEventRecord> {
  return eventually(
    async () => {
      await pass();
      return events.find((e) => e.queue === queue && e.kind === kind);
    },
    30_000,
    500,
  );
}

function eventsOf(queue: string, kind?: string): GuardianEventRecord[] {
  return events.filter((e) => e.queue === queue && (!kind || e.kind === kind));
}

/** E-mails whose subject names the queue, once the count is reached. */
async function mailsAbout(queue: string, count: number) {
  return eventually(async () => {
    const found = mail.messages.filter((m) => m.raw.includes(`: ${queue}`));
    return found.length >= count ? found : undefined;
  });
}

const SET_QUEUE_POLICY = `mutation ($n: String!, $w: Int, $d: Int) {
  setQueuePolicy(name: $n, warnSize: $w, deleteSize: $d) {
    warnSize deleteSize source
  }
}`;

async function setQueuePolicy(
  name: string,
  warn: number | null,
  del: number | null,
) {
  return gql(
    gateway,
    SET_QUEUE_POLICY,
    { n: name, w: warn, d: del },
    ownerToken,
  );
}

describe("thresholds", () => {
  test("queue policy overrides the global one", async () => {
    const queue = await declare("own-thresholds");
    const set = await setQueuePolicy(queue, 2, 5);
    expect(set.errors).toBeUndefined();
    expect(set.data?.setQueuePolicy).toEqual({
      warnSize: 2,
      deleteSize: 5,
      source: "QUEUE",
    });
    const read = await gql(
      gateway,
      `query ($n: String!) { queue(name: $n) { policy { warnSize deleteSize source } } }`,
      { n: queue },
      ownerToken,
    );
    expect(read.data?.queue.policy).toEqual({
      warnSize: 2,
      deleteSize: 5,
      source: "QUEUE",
    });
  });

  test("account policy applies below queue policy", async () => {
    const plain = await declare("account-thresholds");
    const own = await declare("queue-thresholds");
    await setQueuePolicy(own, 1, 3);
    const set = await gql(
      gateway,
      `mutation ($a: String!) { setAccountPolicy(account: $a, warnSize: 10, deleteSize: 20) { source } }`,
      { a: account },
      ownerToken,
    );
    expect(set.data?.setAccountPolicy).toEqual({ source: "ACCOUNT" });
    const policies = gateway.services.policies;
    expect(await policies.queuePolicy(plain)).toMatchObject({
      warnSize: 10,
      deleteSize: 20,
      source: "ACCOUNT",
    });
    expect(await policies.queuePolicy(own)).toMatchObject({ source: "QUEUE" });

    await setQueuePolicy(own, null, 15);
    expect(await policies.queuePolicy(own)).toMatchObject({
      warnSize: 10,
      deleteSize: 15,
      source: "QUEUE",
    });
    await setQueuePolicy(own, null, 5);
    expect(await policies.queuePolicy(own)).toMatchObject({
      warnSize: 4,
      deleteSize: 5,
    });
    await setQueuePolicy(own, null, null);
    expect(await policies.queuePolicy(own)).toMatchObject({
      source: "ACCOUNT",
    });
    await gql(
      gateway,
      `mutation ($a: String!) {
        setAccountPolicy(account: $a, warnSize: null, deleteSize: null) { source }
      }`,
      { a: account },
      ownerToken,
    );
    expect(await policies.queuePolicy(plain)).toMatchObject({
      source: "GLOBAL",
    });
  });

  test("queue policy rejects bad sizes", async () => {
    const queue = await declare("bad-thresholds");
    const max = gateway.config.guardian.maxDeleteSize;
    const cases: [number | null, number | null][] = [
      [5, 5],
      [-1, 5],
      [null, 0],
      [1, max + 1],
      [max + 1, null],
    ];
    for (const [warn, del] of cases) {
      const response = await setQueuePolicy(queue, warn, del);
      expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    }
    const row = await gateway.db.queue.findUnique({ where: { name: queue } });
    expect(row?.warnSize).toBeNull();
    expect(row?.deleteSize).toBeNull();
  });

  test("admins may exceed the owners' maximum", async () => {
    const queue = await declare("admin-thresholds");
    const max = gateway.config.guardian.maxDeleteSize;
    const response = await gql(
      gateway,
      SET_QUEUE_POLICY,
      { n: queue, w: max, d: max + 1 },
      await tokenFor(ADMIN_EMAIL),
    );
    expect(response.data?.setQueuePolicy).toMatchObject({
      deleteSize: max + 1,
    });
  });

  test("strangers cannot set a queue policy", async () => {
    const queue = await declare("guarded-thresholds");
    const response = await gql(
      gateway,
      SET_QUEUE_POLICY,
      { n: queue, w: 1, d: 2 },
      await tokenFor(uniqueEmail("stranger")),
    );
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  });
});

describe("notices", () => {
  test("warning e-mail names stored bindings", async () => {
    const queue = await declare("warned");
    const bound = await gql(
      gateway,
      `mutation ($q: String!, $e: String!) {
        createBinding(input: { queue: $q, exchange: $e, routingKeyPattern: "task.#" }) { queue }
      }`,
      { q: queue, e: exchange },
      ownerToken,
    );
    expect(bound.errors).toBeUndefined();
    await setQueuePolicy(queue, 2, 100);
    publish(queue, 3);
    const warned = await passUntil(queue, "WARNED");
    expect(warned).toMatchObject({ size: 3, threshold: 2 });

    const [message] = await mailsAbout(`${queue}`, 1);
    expect(message.to).toEqual([ownerEmail]);
    expect(message.raw).toContain(`WARNED: ${queue}`);
    expect(message.raw).toContain("Messages: 3");
    expect(message.raw).toContain("Thresholds: warn above 2, delete above 100");
    expect(message.raw).toContain(`${exchange} task.#`);
    expect(message.raw).toContain("What to do:");
  });

  test("burst past both sizes sends one notice", async () => {
    const queue = await declare("burst");
    const bound = await gql(
      gateway,
      `mutation ($q: String!, $e: String!) {
        createBinding(input: { queue: $q, exchange: $e, routingKeyPattern: "burst.#" }) { queue }
      }`,
      { q: queue, e: exchange },
      ownerToken,
    );
    expect(bound.errors).toBeUndefined();
    await setQueuePolicy(queue, 2, 5);
    publish(queue, 10);
    const deleted = await passUntil(queue, "DELETED");
    expect(deleted).toMatchObject({ size: 10, threshold: 5 });
    expect(deleted.detail).toContain("passed both the warn size (2)");
    expect(eventsOf(queue, "WARNED")).toEqual([]);

    const mails = await mailsAbout(queue, 1);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(
      mail.messages.filter((m) => m.raw.includes(`: ${queue}`)),
    ).toHaveLength(1);
    expect(mails[0].raw).toContain(`DELETED: ${queue}`);
    expect(mails[0].raw).toContain("passed both");
    // The broker dropped the bindings with the queue; the notice lists
    // the ones the gateway stored.
    expect(mails[0].raw).toContain(`${exchange} burst.#`);
  });

  test("consumer gone notice once per stretch", async () => {
    const queue = await declare("abandoned");
    publish(queue, 1);
    const gone = await passUntil(queue, "CONSUMER_GONE");
    expect(gone.size).toBe(1);
    await pass();
    expect(eventsOf(queue, "CONSUMER_GONE")).toHaveLength(1);
    const mails = await mailsAbout(queue, 1);
    expect(mails[0].raw).toContain(`CONSUMER_GONE: ${queue}`);
  });

  test("webhook notice is signed and retried", async () => {
    const queue = await declare("hooked");
    const set = await gql(
      gateway,
      `mutation ($a: String!, $q: String!, $h: [String!]!) {
        setNotificationRecipients(account: $a, queue: $q, emails: [], webhookUrls: $h) { webhookUrls }
      }`,
      { a: account, q: queue, h: [hooks.url] },
      ownerToken,
    );
    expect(set.data?.setNotificationRecipients).toEqual({
      webhookUrls: [hooks.url],
    });
    await setQueuePolicy(queue, 0, 100);
    hooks.failNext = 1;
    publish(queue, 1);
    await passUntil(queue, "WARNED");

    const calls = await eventually(async () => {
      const warned = hooks.calls.filter((c) => c.body.includes('"WARNED"'));
      return warned.length >= 2 ? warned : undefined;
    });
    expect(calls.map((c) => c.status)).toEqual([500, 204]);
    expect(calls[1].body).toBe(calls[0].body);
    expect(calls[1].headers[SIGNATURE_HEADER]).toBe(
      signBody(WEBHOOK_SECRET, calls[1].body),
    );
    expect(JSON.parse(calls[1].body)).toMatchObject({
      kind: "WARNED",
      queue,
      size: 1,
      warnSize: 0,
      deleteSize: 100,
    });
  });

  test("drain gives up at its timeout", async () => {
    const failing = await startWebhookReceiver();
    cleanup.add(() => failing.close());
    failing.failNext = 100;
    const notifier = new Notifier(
      {
        smtpFrom: "guardian@example.com",
        webhookSecret: WEBHOOK_SECRET,
        webhookAttempts: 5,
        webhookBackoffMs: 1000,
        adminWebhookUrls: [],
      },
      gateway.logger,
    );
    notifier.send(
      buildNotice({
        kind: "WARNED",
        queue: `queue/${account}/drained`,
        account,
        size: 1,
        thresholds: null,
        bindings: [],
        detail: null,
        at: new Date(),
      }),
      { emails: [], webhookUrls: [failing.url] },
    );
    const started = Date.now();
    expect(await notifier.drain(300)).toBe(false);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(failing.calls.length).toBeGreaterThanOrEqual(1);
  });

  test("recipients reject a bad webhook URL", async () => {
    const response = await gql(
      gateway,
      `mutation ($a: String!) {
        setNotificationRecipients(account: $a, emails: [], webhookUrls: ["ftp://example.com"]) { webhookUrls }
      }`,
      { a: account },
      ownerToken,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  });
});

describe("reconciliation", () => {
  test("bindings made over AMQP are stored", async () => {
    const queue = await declare("amqp-bound");
    await channel.bindQueue(queue, exchange, "made.over.amqp");
    const added = await passUntil(queue, "BINDING_ADDED");
    expect(added.detail).toContain("made.over.amqp");
    const rows = await gateway.db.binding.findMany({
      where: { queue: { name: queue } },
    });
    expect(rows.map((row) => row.routingKeyPattern)).toEqual([
      "made.over.amqp",
    ]);

    await channel.unbindQueue(queue, exchange, "made.over.amqp");
    await passUntil(queue, "BINDING_REMOVED");
    const left = await gateway.db.binding.count({
      where: { queue: { name: queue } },
    });
    expect(left).toBe(0);
  });

  test("misnamed queue reported once, kept", async () => {
    const queue = uniqueName("misnamed");
    await channel.assertQueue(queue, { durable: false });
    cleanup.add(() =>
      brokerAdmin()
        .deleteQueue(queue)
        .catch(() => undefined),
    );
    await passUntil(queue, "MISNAMED_QUEUE");
    await pass();
    expect(eventsOf(queue, "MISNAMED_QUEUE")).toHaveLength(1);
    await expect(brokerAdmin().getQueue(queue)).resolves.toBeDefined();
    const call = await eventually(async () =>
      adminHooks.calls.find((c) => c.body.includes(queue)),
    );
    expect(JSON.parse(call.body)).toMatchObject({
      kind: "MISNAMED_QUEUE",
      queue,
    });
  });

  test("user deleted by hand is recorded", async () => {
    const other = uniqueName("hand-deleted");
    await createAccount(other);
    await brokerAdmin().deleteUser(other);
    const missing = await eventually(async () => {
      await pass();
      return events.find(
        (e) => e.account === other && e.kind === "USER_MISSING",
      );
    });
    expect(missing.queue).toBe("");
    await pass();
    expect(await brokerAdmin().userExists(other)).toBe(false);
    const policy = await gateway.db.accountPolicy.findFirst({
      where: { account: { username: other } },
    });
    expect(policy?.userMissingAt).toBeInstanceOf(Date);
    const read = await gql(
      gateway,
      `query ($u: String!) { account(username: $u) { userMissingAt } }`,
      { u: other },
      ownerToken,
    );
    expect(read.data?.account.userMissingAt).toBe(
      policy?.userMissingAt?.toISOString(),
    );
  });
});

describe("queue limits", () => {
  const SET_LIMITS = `mutation ($a: String!, $l: QueueLimitsInput!) {
    setAccountQueueLimits(account: $a, limits: $l) {
      maxLength overflow messageTtlMs expiresMs
    }
  }`;
  const limited = uniqueName("limited");

  beforeAll(async () => {
    await createAccount(limited);
    cleanup.add(() =>
      brokerAdmin()
        .deletePolicy(accountPolicyName(limited))
        .catch(() => undefined),
    );
  });

  test("account policy caps queue length", async () => {
    const set = await gql(
      gateway,
      SET_LIMITS,
      {
        a: limited,
        l: { maxLength: 2, overflow: "DROP_HEAD", messageTtlMs: 60000 },
      },
      ownerToken,
    );
    expect(set.data?.setAccountQueueLimits).toEqual({
      maxLength: 2,
      overflow: "DROP_HEAD",
      messageTtlMs: 60000,
      expiresMs: null,
    });
    const read = await gql(
      gateway,
      `query ($u: String!) {
        account(username: $u) { queueLimits { maxLength overflow } policy { source } }
      }`,
      { u: limited },
      ownerToken,
    );
    expect(read.data?.account).toEqual({
      queueLimits: { maxLength: 2, overflow: "DROP_HEAD" },
      policy: { source: "GLOBAL" },
    });
    const policy = await brokerAdmin().getPolicy(accountPolicyName(limited));
    expect(policy.pattern).toBe(`^queue/${escapeRegExp(limited)}/`);
    expect(policy["apply-to"]).toBe("queues");
    expect(policy.definition).toEqual({
      "max-length": 2,
      overflow: "drop-head",
      "message-ttl": 60000,
    });

    const queue = `queue/${limited}/capped`;
    await channel.assertQueue(queue, { durable: false });
    cleanup.add(() =>
      brokerAdmin()
        .deleteQueue(queue)
        .catch(() => undefined),
    );
    await eventually(async () => {
      const check = await channel.checkQueue(queue);
      publish(queue, 5);
      const after = await channel.checkQueue(queue);
      return check.messageCount === 2 && after.messageCount === 2
        ? true
        : undefined;
    });
  });

  test("overflow left out reported as broker's", async () => {
    const set = await gql(
      gateway,
      SET_LIMITS,
      { a: limited, l: { maxLength: 5 } },
      ownerToken,
    );
    expect(set.data?.setAccountQueueLimits.overflow).toBe("DROP_HEAD");
    const policy = await brokerAdmin().getPolicy(accountPolicyName(limited));
    expect(policy.definition.overflow).toBe("drop-head");
    const read = await gql(
      gateway,
      `query ($u: String!) { account(username: $u) { queueLimits { overflow } } }`,
      { u: limited },
      ownerToken,
    );
    expect(read.data?.account.queueLimits.overflow).toBe("DROP_HEAD");
  });

  test("left-out limits keep their values", async () => {
    const set = await gql(
      gateway,
      SET_LIMITS,
      { a: limited, l: { messageTtlMs: 0 } },
      ownerToken,
    );
    expect(set.data?.setAccountQueueLimits).toEqual({
      maxLength: 5,
      overflow: "DROP_HEAD",
      messageTtlMs: 0,
      expiresMs: null,
    });
    const policy = await brokerAdmin().getPolicy(accountPolicyName(limited));
    expect(policy.definition).toEqual({
      "max-length": 5,
      overflow: "drop-head",
      "message-ttl": 0,
    });
  });

  test("null maxLength clears overflow too", async () => {
    const set = await gql(
      gateway,
      SET_LIMITS,
      { a: limited, l: { maxLength: null } },
      ownerToken,
    );
    expect(set.data?.setAccountQueueLimits).toEqual({
      maxLength: null,
      overflow: null,
      messageTtlMs: 0,
      expiresMs: null,
    });
  });

  test("expiresMs below a minute rejected", async () => {
    const response = await gql(
      gateway,
      SET_LIMITS,
      { a: limited, l: { expiresMs: 1 } },
      ownerToken,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors?.[0].message).toContain("at least 60000");
    const policy = await brokerAdmin().getPolicy(accountPolicyName(limited));
    expect(policy.definition.expires).toBeUndefined();
  });

  test("all null removes the policy", async () => {
    const cleared = await gql(
      gateway,
      SET_LIMITS,
      {
        a: limited,
        l: {
          maxLength: null,
          overflow: null,
          messageTtlMs: null,
          expiresMs: null,
        },
      },
      ownerToken,
    );
    expect(cleared.errors).toBeUndefined();
    await expect(
      brokerAdmin().getPolicy(accountPolicyName(limited)),
    ).rejects.toMatchObject({ status: 404 });
    const row = await gateway.db.accountPolicy.findFirst({
      where: { account: { username: limited } },
    });
    expect(row?.maxLength).toBeNull();
  });

  test("overflow needs a maximum length", async () => {
    const response = await gql(
      gateway,
      SET_LIMITS,
      { a: limited, l: { overflow: "REJECT_PUBLISH" } },
      ownerToken,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    await expect(
      brokerAdmin().getPolicy(accountPolicyName(limited)),
    ).rejects.toMatchObject({ status: 404 });
  });

  test("deleted account loses its policy", async () => {
    const doomed = uniqueName("doomed");
    await createAccount(doomed);
    const set = await gql(
      gateway,
      SET_LIMITS,
      { a: doomed, l: { expiresMs: 60000 } },
      ownerToken,
    );
    expect(set.errors).toBeUndefined();
    const deleted = await gql(
      gateway,
      `mutation ($u: String!) { deleteAccount(username: $u) }`,
      { u: doomed },
      ownerToken,
    );
    expect(deleted.errors).toBeUndefined();
    await pass();
    await expect(
      brokerAdmin().getPolicy(accountPolicyName(doomed)),
    ).rejects.toMatchObject({ status: 404 });
  });

  test("strangers cannot set queue limits", async () => {
    const response = await gql(
      gateway,
      SET_LIMITS,
      { a: limited, l: { maxLength: 1 } },
      await tokenFor(uniqueEmail("stranger")),
    );
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  });
});
