// An account name deleted and created again: the new account starts with
// no RabbitMQ queue-limits policy and an audit log of its own.
import type { Gateway } from "../src/server";
import { accountPolicyName } from "../src/services/queue-limits";
import {
  ADMIN_EMAIL,
  brokerAdmin,
  Cleanup,
  createTestAccount,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let admin: string;
let firstOwner: string;
let secondOwner: string;

const SET_LIMITS = `mutation ($a: String!) {
  setAccountQueueLimits(
    account: $a
    limits: { maxLength: 1, overflow: REJECT_PUBLISH }
  ) { maxLength }
}`;

const DELETE_ACCOUNT = `mutation ($u: String!) { deleteAccount(username: $u) }`;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  admin = await tokenFor(ADMIN_EMAIL);
  firstOwner = await tokenFor(uniqueEmail("first"));
  secondOwner = await tokenFor(uniqueEmail("second"));
});

afterAll(() => cleanup.run());

async function policyNames(): Promise<string[]> {
  const policies = await brokerAdmin().listPolicies();
  return policies.map((policy) => policy.name);
}

async function mutate(
  query: string,
  variables: Record<string, unknown>,
  token: string,
) {
  const response = await gql(gateway, query, variables, token);
  expect(response.errors).toBeUndefined();
  return response.data!;
}

describe("queue-limits policy", () => {
  test("deleteAccount removes the policy", async () => {
    const name = uniqueName("limited");
    await createTestAccount(gateway, cleanup, name, firstOwner);
    await mutate(SET_LIMITS, { a: name }, firstOwner);
    expect(await policyNames()).toContain(accountPolicyName(name));

    await mutate(DELETE_ACCOUNT, { u: name }, firstOwner);
    expect(await policyNames()).not.toContain(accountPolicyName(name));
  });

  test("createAccount clears a left-over policy", async () => {
    const name = uniqueName("leftover");
    const policy = accountPolicyName(name);
    await brokerAdmin().putPolicy({
      name: policy,
      pattern: `^queue/${name}/`,
      "apply-to": "queues",
      priority: 0,
      definition: { "max-length": 1, overflow: "reject-publish" },
    });
    cleanup.add(() => brokerAdmin().deletePolicy(policy).catch(() => undefined));

    await createTestAccount(gateway, cleanup, name, secondOwner);
    expect(await policyNames()).not.toContain(policy);
  });
});

describe("audit log", () => {
  const AUDIT_LOG = `query ($a: String) {
    auditLog(account: $a, limit: 500) { actor mutation arguments }
  }`;

  async function auditOf(name: string | null, token: string) {
    const data = await mutate(AUDIT_LOG, { a: name }, token);
    return data.auditLog as { actor: string; mutation: string }[];
  }

  test("new owner sees only new entries", async () => {
    const name = uniqueName("reused");
    await createTestAccount(gateway, cleanup, name, firstOwner);
    await mutate(
      `mutation ($a: String!) {
        setNotificationRecipients(
          account: $a
          emails: ["first-private@example.com"]
          webhookUrls: []
        ) { warnSize }
      }`,
      { a: name },
      firstOwner,
    );
    await mutate(DELETE_ACCOUNT, { u: name }, firstOwner);
    // The old entries must be older than the new account's createdAt, so
    // they may not share its millisecond.
    await new Promise((resolve) => setTimeout(resolve, 20));
    await createTestAccount(gateway, cleanup, name, secondOwner);

    const own = await auditOf(name, secondOwner);
    expect(own.map((entry) => entry.mutation)).toEqual(["createAccount"]);
    expect(JSON.stringify(own)).not.toContain("first-private");

    const unfiltered = await auditOf(null, secondOwner);
    expect(JSON.stringify(unfiltered)).not.toContain("first-private");

    const all = await auditOf(name, admin);
    expect(JSON.stringify(all)).toContain("first-private");
  });
});

describe("guardian events and history", () => {
  const EVENTS = `query ($q: String) {
    guardianEvents(queue: $q, limit: 500) { queue detail }
  }`;
  const HISTORY = `query ($n: String!) {
    queue(name: $n) { history(from: "2000-01-01T00:00:00Z") { messages } }
  }`;

  test("new owner sees only new ones", async () => {
    const name = uniqueName("watched");
    const queue = `queue/${name}/kept`;
    cleanup.add(() =>
      gateway.db.queueSample.deleteMany({ where: { queueName: queue } }),
    );
    cleanup.add(() => brokerAdmin().deleteQueue(queue).catch(() => undefined));
    await createTestAccount(gateway, cleanup, name, firstOwner);
    await gateway.guardianEvents.record({
      queue,
      account: name,
      kind: "BINDING_ADDED",
      size: null,
      threshold: null,
      detail: "first-private.pattern",
    });
    await gateway.history.record(new Date(), [
      {
        name: queue,
        vhost: gateway.config.vhost,
        durable: true,
        auto_delete: false,
        exclusive: false,
        messages: 4321,
      },
    ]);
    await mutate(DELETE_ACCOUNT, { u: name }, firstOwner);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await createTestAccount(gateway, cleanup, name, secondOwner);
    await mutate(
      `mutation ($a: String!) { createQueue(input: { account: $a, name: "kept" }) { name } }`,
      { a: name },
      secondOwner,
    );

    const all = await mutate(EVENTS, { q: null }, secondOwner);
    expect(JSON.stringify(all)).not.toContain("first-private");
    const one = await mutate(EVENTS, { q: queue }, secondOwner);
    expect(one.guardianEvents).toEqual([]);
    const history = await mutate(HISTORY, { n: queue }, secondOwner);
    expect(history.queue.history).toEqual([]);

    const asAdmin = await mutate(EVENTS, { q: queue }, admin);
    expect(JSON.stringify(asAdmin)).toContain("first-private");
  });
});
