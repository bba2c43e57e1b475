// The audit log: every mutation of the schema writes an entry, secrets are
// redacted, and the log is read by admins, and by owners for their accounts.
import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  type GraphQLField,
  type GraphQLInputType,
} from "graphql";

import { buildGatewaySchema } from "../src/schema";
import {
  capArguments,
  describeTarget,
  MAX_ANONYMOUS_ARGUMENTS_BYTES,
  MAX_ARGUMENTS_BYTES,
  REDACTED,
  redactSecrets,
} from "../src/schema/audit";
import type { Gateway } from "../src/server";
import {
  ADMIN_EMAIL,
  brokerAdmin,
  Cleanup,
  createTestAccount,
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
let ownerEmail: string;
let owner: string;
let strangerEmail: string;
let stranger: string;
let admin: string;
const account = uniqueName("audited");

const AUDIT_LOG = `query ($a: String, $o: String, $l: Int, $b: Int) {
  auditLog(account: $a, object: $o, limit: $l, before: $b) {
    id actor mutation account object arguments outcome error at
  }
}`;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  ownerEmail = uniqueEmail("owner");
  owner = await tokenFor(ownerEmail);
  strangerEmail = uniqueEmail("stranger");
  stranger = await tokenFor(strangerEmail);
  admin = await tokenFor(ADMIN_EMAIL);
  await createTestAccount(gateway, cleanup, account, owner);
});

afterAll(() => cleanup.run());

async function entries(variables: Record<string, unknown>, token = admin) {
  const response = await gql(gateway, AUDIT_LOG, variables, token);
  expect(response.errors).toBeUndefined();
  return response.data!.auditLog as Record<string, any>[];
}

/**
 * Returns a value of the type that the schema accepts. Strings contain a space,
 * which no account, queue, e-mail address or name allows, so the mutation
 * is rejected before it changes anything.
 */
function sampleValue(type: GraphQLInputType): unknown {
  if (isNonNullType(type)) return sampleValue(type.ofType);
  if (isListType(type)) return [sampleValue(type.ofType)];
  if (isInputObjectType(type)) {
    const value: Record<string, unknown> = {};
    for (const field of Object.values(type.getFields())) {
      if (isNonNullType(field.type) && field.defaultValue === undefined) {
        value[field.name] = sampleValue(field.type);
      }
    }
    return value;
  }
  if (isEnumType(type)) return type.getValues()[0].value;
  switch (type.name) {
    case "Int":
    case "Float":
      return 1;
    case "Boolean":
      return false;
    default:
      return "audit probe";
  }
}

/** Builds a request for the field with a sample value for every argument. */
function sampleRequest(field: GraphQLField<unknown, unknown>) {
  const variables: Record<string, unknown> = {};
  const definitions: string[] = [];
  const uses: string[] = [];
  for (const arg of field.args) {
    variables[arg.name] = sampleValue(arg.type);
    definitions.push(`$${arg.name}: ${arg.type.toString()}`);
    uses.push(`${arg.name}: $${arg.name}`);
  }
  const selection = isObjectType(getNamedType(field.type)) ? " { __typename }" : "";
  const header = definitions.length ? `(${definitions.join(", ")})` : "";
  const call = uses.length ? `(${uses.join(", ")})` : "";
  return {
    query: `mutation${header} { ${field.name}${call}${selection} }`,
    variables,
  };
}

describe("every mutation", () => {
  test("each mutation writes an entry", async () => {
    const schema = await buildGatewaySchema();
    const fields = Object.values(schema.getMutationType()!.getFields());
    expect(fields.length).toBeGreaterThan(0);
    const probeEmail = uniqueEmail("probe");
    const probe = await tokenFor(probeEmail);
    for (const field of fields) {
      const { query, variables } = sampleRequest(field);
      await gql(gateway, query, variables, probe);
    }
    const rows = await gateway.db.auditEntry.findMany({
      where: { actor: probeEmail },
    });
    const recorded = rows.map((row) => row.mutation).sort();
    expect(recorded).toEqual(fields.map((field) => field.name).sort());
  });
});

describe("entries", () => {
  test("success recorded with its target", async () => {
    const name = uniqueName("q");
    await gql(
      gateway,
      `mutation ($a: String!, $n: String!) {
        createQueue(input: { account: $a, name: $n, durable: false }) { name }
      }`,
      { a: account, n: name },
      owner,
    );
    const queue = `queue/${account}/${name}`;
    cleanup.add(() => brokerAdmin().deleteQueue(queue).catch(() => undefined));
    const [entry] = await entries({ o: queue });
    expect(entry).toMatchObject({
      actor: ownerEmail,
      mutation: "createQueue",
      account,
      object: queue,
      arguments: { input: { account, name, durable: false } },
      outcome: "ok",
      error: null,
    });
  });

  test("failed createQueue names the queue", async () => {
    const name = uniqueName("refused");
    const response = await gql(
      gateway,
      `mutation ($a: String!, $n: String!) {
        createQueue(input: { account: $a, name: $n }) { name }
      }`,
      { a: account, n: name },
      stranger,
    );
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
    const queue = `queue/${account}/${name}`;
    const [entry] = await entries({ o: queue });
    expect(entry).toMatchObject({
      mutation: "createQueue",
      account,
      object: queue,
      outcome: "FORBIDDEN",
    });
  });

  test("rejection recorded with its code", async () => {
    const queue = `queue/${account}/${uniqueName("absent")}`;
    await gql(
      gateway,
      `mutation ($q: String!) { deleteQueue(name: $q) }`,
      { q: queue },
      stranger,
    );
    const [entry] = await entries({ o: queue });
    expect(entry).toMatchObject({
      actor: strangerEmail,
      mutation: "deleteQueue",
      account,
      outcome: "FORBIDDEN",
    });
    expect(entry.error).toContain(strangerEmail);
  });

  test("anonymous attempt recorded", async () => {
    const username = uniqueName("anonymous");
    const response = await gql(
      gateway,
      `mutation ($u: String!) { deleteAccount(username: $u) }`,
      { u: username },
      null,
    );
    expect(errorCodes(response)).toEqual(["UNAUTHENTICATED"]);
    const [entry] = await entries({ o: username });
    expect(entry).toMatchObject({ actor: null, outcome: "UNAUTHENTICATED" });
  });

  test("rotated password never stored", async () => {
    const response = await gql(
      gateway,
      `mutation ($u: String!) { rotateAccountPassword(username: $u) { password } }`,
      { u: account },
      owner,
    );
    const password = response.data!.rotateAccountPassword.password as string;
    const [entry] = await entries({ a: account, l: 1 });
    expect(entry.mutation).toBe("rotateAccountPassword");
    expect(JSON.stringify(entry)).not.toContain(password);
  });

  test("mutation over graphql-ws recorded", async () => {
    const client = wsClient(gateway, owner);
    const username = uniqueName("over-ws");
    await new Promise<void>((resolve, reject) => {
      client.subscribe(
        {
          query: `mutation ($u: String!) { deleteAccount(username: $u) }`,
          variables: { u: username },
        },
        { next: () => undefined, error: reject, complete: resolve },
      );
    });
    await client.dispose();
    const [entry] = await entries({ o: username });
    expect(entry).toMatchObject({
      actor: ownerEmail,
      mutation: "deleteAccount",
      outcome: "NOT_FOUND",
    });
  });

  test("secret arguments redacted", () => {
    const redacted = redactSecrets({
      input: { username: "a", password: "p", items: [{ apiToken: "t" }] },
    });
    expect(redacted).toEqual({
      input: { username: "a", password: REDACTED, items: [{ apiToken: REDACTED }] },
    });
  });

  test("target taken from arguments", () => {
    expect(describeTarget({ input: { queue: "queue/acct/q", exchange: "e" } }))
      .toEqual({ account: "acct", object: "queue/acct/q" });
    expect(describeTarget({ username: "acct", email: "a@example.com" }))
      .toEqual({ account: "acct", object: "acct" });
    expect(describeTarget({ email: "a@example.com" })).toEqual({
      account: null,
      object: "a@example.com",
    });
  });
});

describe("auditLog query", () => {
  async function purgeAttempts(count: number) {
    const queue = `queue/${account}/${uniqueName("paged")}`;
    for (let i = 0; i < count; i += 1) {
      await gql(
        gateway,
        `mutation ($q: String!) { purgeQueue(name: $q) { queue { name } } }`,
        { q: queue },
        owner,
      );
    }
    return queue;
  }

  test("pages newest first", async () => {
    const queue = await purgeAttempts(3);
    const first = await entries({ o: queue, l: 2 });
    expect(first).toHaveLength(2);
    expect(first[0].id).toBeGreaterThan(first[1].id);
    const rest = await entries({ o: queue, l: 2, b: first[1].id });
    expect(rest).toHaveLength(1);
    expect(rest[0].id).toBeLessThan(first[1].id);
  });

  test("owner reads own account's entries", async () => {
    const queue = await purgeAttempts(1);
    const own = await entries({ a: account, o: queue }, owner);
    expect(own).toHaveLength(1);
  });

  test("owner's unfiltered view is own accounts", async () => {
    const rows = await entries({ l: 500 }, owner);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((row) => row.account === account)).toBe(true);
  });

  test("stranger cannot read an account", async () => {
    const response = await gql(gateway, AUDIT_LOG, { a: account }, stranger);
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  });

  test("stranger's unfiltered view excludes others", async () => {
    const rows = await entries({ l: 500 }, stranger);
    expect(rows.some((row) => row.account === account)).toBe(false);
  });

  test.each([0, 501])("limit %i rejected", async (limit) => {
    const response = await gql(gateway, AUDIT_LOG, { l: limit }, admin);
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  });
});

describe("entry size", () => {
  const SET_RECIPIENTS = `mutation ($a: String!, $e: [String!]!) {
    setNotificationRecipients(account: $a, emails: $e, webhookUrls: []) {
      warnSize
    }
  }`;

  function jsonBytes(value: unknown): number {
    return Buffer.byteLength(JSON.stringify(value));
  }

  test("anonymous arguments cut small", async () => {
    const huge = "x".repeat(650_000);
    const name = uniqueName("anonymous-big");
    const response = await gql(
      gateway,
      `mutation ($u: String!, $e: String!) {
        addAccountOwner(username: $u, email: $e) { owners }
      }`,
      { u: name, e: huge },
      null,
    );
    expect(errorCodes(response)).toEqual(["UNAUTHENTICATED"]);
    const [entry] = await entries({ o: name });
    expect(entry.actor).toBeNull();
    expect(jsonBytes(entry.arguments)).toBeLessThanOrEqual(
      MAX_ANONYMOUS_ARGUMENTS_BYTES,
    );
    expect(JSON.stringify(entry.arguments)).toContain(
      "[cut from 650000 characters]",
    );
  });

  test("anonymous target names cut", async () => {
    const prefix = uniqueName("long");
    const huge = prefix + "y".repeat(100_000 - prefix.length);
    await gql(gateway, SET_RECIPIENTS, { a: huge, e: [] }, null);
    const rows = await gateway.db.auditEntry.findMany({
      where: { actor: null, object: { startsWith: prefix } },
    });
    expect(rows).toHaveLength(1);
    expect(rows[0].object!.length).toBeLessThan(300);
    expect(rows[0].account).toContain("[cut from 100000 characters]");
  });

  test("signed-in arguments capped", async () => {
    const long = "z".repeat(100_000);
    await gql(gateway, SET_RECIPIENTS, { a: account, e: [long] }, owner);
    const [entry] = await entries({ a: account, l: 1 });
    expect(entry.mutation).toBe("setNotificationRecipients");
    expect(entry.outcome).toBe("BAD_USER_INPUT");
    expect(jsonBytes(entry.arguments)).toBeLessThanOrEqual(MAX_ARGUMENTS_BYTES);
    expect(entry.arguments.account).toBe(account);
    expect(entry.arguments.emails[0]).toMatch(
      /^z+\.\.\. \[cut from 100000 characters\]$/,
    );
  });

  test("small arguments kept whole", () => {
    const args = { account: "a", emails: ["b@example.com"] };
    expect(capArguments(args, MAX_ARGUMENTS_BYTES)).toBe(args);
  });

  test("long list replaced by its size", () => {
    const args = { emails: Array.from({ length: 5000 }, () => "a") };
    const capped = capArguments(args, MAX_ARGUMENTS_BYTES);
    expect(capped).toEqual({
      "[cut]":
        `The arguments took ${jsonBytes(args)} bytes of JSON, over the ` +
        `limit of ${MAX_ARGUMENTS_BYTES}.`,
    });
  });

  test("owner does not see anonymous entries", async () => {
    await gql(gateway, SET_RECIPIENTS, { a: account, e: ["fake@example.com"] }, null);
    const all = await entries({ a: account, l: 1 });
    expect(all[0].actor).toBeNull();
    const own = await entries({ a: account, l: 500 }, owner);
    expect(own.length).toBeGreaterThan(0);
    expect(own.some((row) => row.actor === null)).toBe(false);
    const unfiltered = await entries({ l: 500 }, owner);
    expect(unfiltered.some((row) => row.actor === null)).toBe(false);
  });
});
