// Webhook URLs with a user and password: shown and audited with the
// password replaced by "***", stored and sent with it in full.
import { redactUrl, redactUrlPasswords } from "../src/config";
import { Notifier } from "../src/guardian";
import { buildNotice } from "../src/guardian/notices";
import type { Gateway } from "../src/server";
import {
  Cleanup,
  createTestAccount,
  errorCodes,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";
import { startWebhookReceiver, type WebhookReceiver } from "./notice-receivers";

const PASSWORD = "s3cret-pa55";

const cleanup = new Cleanup();
let gateway: Gateway;
let hooks: WebhookReceiver;
let ownerToken: string;
let withPassword: string;
let redacted: string;
const account = uniqueName("hooked");

const SET_RECIPIENTS = `mutation ($a: String!, $h: [String!]!) {
  setNotificationRecipients(account: $a, emails: [], webhookUrls: $h) { webhookUrls }
}`;

const AUDIT = `query ($a: String!) {
  auditLog(account: $a, limit: 10) { mutation arguments error }
}`;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  hooks = await startWebhookReceiver();
  cleanup.add(() => hooks.close());
  ownerToken = await tokenFor(uniqueEmail("owner"));
  await createTestAccount(gateway, cleanup, account, ownerToken);
  const url = new URL(hooks.url);
  withPassword = `http://hook-user:${PASSWORD}@${url.host}${url.pathname}`;
  redacted = `http://hook-user:***@${url.host}${url.pathname}`;
});

afterAll(() => cleanup.run());

async function setRecipients(urls: string[]) {
  return gql(gateway, SET_RECIPIENTS, { a: account, h: urls }, ownerToken);
}

async function storedUrls(): Promise<string[]> {
  const row = await gateway.db.accountPolicy.findFirst({
    where: { account: { username: account } },
  });
  return row?.webhookUrls ?? [];
}

test("mutation result hides the password", async () => {
  const response = await setRecipients([withPassword]);

  expect(response.errors).toBeUndefined();
  expect(response.data?.setNotificationRecipients.webhookUrls).toEqual([
    redacted,
  ]);
  expect(await storedUrls()).toEqual([withPassword]);
});

test("policy query hides the password", async () => {
  await setRecipients([withPassword]);

  const response = await gql(
    gateway,
    `query ($a: String!) { account(username: $a) { policy { webhookUrls } } }`,
    { a: account },
    ownerToken,
  );

  expect(response.errors).toBeUndefined();
  expect(response.data?.account.policy.webhookUrls).toEqual([redacted]);
  expect(JSON.stringify(response)).not.toContain(PASSWORD);
});

test("audit log hides the password", async () => {
  await setRecipients([withPassword]);

  const response = await gql(gateway, AUDIT, { a: account }, ownerToken);

  const entries = response.data!.auditLog as { arguments: unknown }[];
  expect(entries.length).toBeGreaterThan(0);
  expect(entries[0].arguments).toMatchObject({ webhookUrls: [redacted] });
  expect(JSON.stringify(entries)).not.toContain(PASSWORD);
});

test("redacted URL sent back keeps password", async () => {
  await setRecipients([withPassword]);

  const response = await setRecipients([redacted, "https://other.example/x"]);

  expect(response.errors).toBeUndefined();
  expect(await storedUrls()).toEqual([
    withPassword,
    "https://other.example/x",
  ]);
});

test("overlong webhook URL rejected", async () => {
  const long = `https://example.com/${"a".repeat(2048)}`;

  const response = await setRecipients([long]);

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain("the maximum is 2048");
  expect(response.errors![0].message.length).toBeLessThan(300);
});

test("invalid URL error hides the password", async () => {
  const response = await setRecipients([`ftp://user:${PASSWORD}@example.com/`]);

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain("ftp://user:***@example.com/");
  expect(response.errors![0].message).not.toContain(PASSWORD);
  const audit = await gql(gateway, AUDIT, { a: account }, ownerToken);
  expect(JSON.stringify(audit.data)).not.toContain(PASSWORD);
});

test.each([
  ["http:u:PW@127.0.0.1:9/x"],
  ["https:\\\\u:PW@127.0.0.1/x"],
  ["http:/u:PW@127.0.0.1/x"],
  [" http://u:PW@127.0.0.1/x"],
  ["http://u:PW@127.0.0.1/x "],
  ["HTTP://u:PW@127.0.0.1/x"],
])("webhook URL %j rejected, password hidden", async (url) => {
  const response = await setRecipients([url.replace("PW", PASSWORD)]);

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain("http://");
  expect(response.errors![0].message).not.toContain(PASSWORD);
  const audit = await gql(gateway, AUDIT, { a: account }, ownerToken);
  expect(JSON.stringify(audit.data)).not.toContain(PASSWORD);
});

test("out-of-range port names the port", async () => {
  const url = `https://u:${PASSWORD}@127.0.0.1:99999/x`;

  const response = await setRecipients([url]);

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain("the port (1 to 65535)");
  expect(response.errors![0].message).toContain("u:***@127.0.0.1:99999");
  expect(response.errors![0].message).not.toContain(PASSWORD);
});

test("changed redacted URL asks for password", async () => {
  await setRecipients([withPassword]);
  const changed = `${redacted}-other`;

  const response = await setRecipients([changed]);

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain("give the password again");
  expect(await storedUrls()).toEqual([withPassword]);
});

test("delivery sends the credentials", async () => {
  await setRecipients([withPassword]);
  const notifier = new Notifier(
    {
      smtpFrom: "guardian@example.com",
      webhookSecret: "webhook-secret-for-tests",
      webhookAttempts: 1,
      webhookBackoffMs: 0,
      adminWebhookUrls: [],
    },
    gateway.logger,
  );
  cleanup.add(() => notifier.close());

  notifier.send(
    buildNotice({
      kind: "WARNED",
      queue: `queue/${account}/q`,
      account,
      size: 1,
      thresholds: null,
      bindings: [],
      detail: null,
      at: new Date(),
    }),
    { emails: [], webhookUrls: await storedUrls() },
  );
  expect(await notifier.drain(5000)).toBe(true);

  expect(hooks.calls).toHaveLength(1);
  const expected = Buffer.from(`hook-user:${PASSWORD}`).toString("base64");
  expect(hooks.calls[0].headers.authorization).toBe(`Basic ${expected}`);
  expect(hooks.calls[0].path).toBe("/hook");
  expect(hooks.calls[0].status).toBe(204);
});

test.each([
  ["https://u:p@host/x", "https://u:***@host/x"],
  ["https://u:p@ss@host/x", "https://u:***@host/x"],
  ["failed: http://u:p@h:80/a?b=c:d@e", "failed: http://u:***@h:80/a?b=c:d@e"],
  ["https://user@host/x", "https://***@host/x"],
  ["no URL here: a:b@c", "no URL here: a:b@c"],
  ["failed: http:u:p@h/x", "failed: http:u:***@h/x"],
  ["https:\\\\u:p@h/x", "https:\\\\u:***@h/x"],
])("redactUrlPasswords(%j)", (text, expected) => {
  expect(redactUrlPasswords(text)).toBe(expected);
});

test.each([
  ["http:u:p@h/x", "http://u:***@h/x"],
  ["https://u:p@h:99999/x", "https://u:***@h:99999/x"],
  ["queue/a/b", "queue/a/b"],
])("redactUrl(%j)", (text, expected) => {
  expect(redactUrl(text)).toBe(expected);
});

test("alike redacted URLs sent back all keep passwords", async () => {
  const other = withPassword.replace(PASSWORD, "second-secret");
  await setRecipients([withPassword, other]);

  const response = await setRecipients([redacted, redacted]);

  expect(response.errors).toBeUndefined();
  expect(await storedUrls()).toEqual([withPassword, other]);
});

test("one of two alike redacted URLs is ambiguous", async () => {
  const other = withPassword.replace(PASSWORD, "second-secret");
  await setRecipients([withPassword, other]);

  const response = await setRecipients([redacted]);

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain("give the full URL");
  expect(await storedUrls()).toEqual([withPassword, other]);
});

test("token as user name is hidden", async () => {
  const host = new URL(hooks.url).host;
  const withToken = `http://secret-token-123@${host}/hook`;
  const response = await setRecipients([withToken]);

  expect(response.data?.setNotificationRecipients.webhookUrls).toEqual([
    `http://***@${host}/hook`,
  ]);
  const audit = await gql(gateway, AUDIT, { a: account }, ownerToken);
  expect(JSON.stringify(audit)).not.toContain("secret-token-123");
  const resent = await setRecipients([`http://***@${host}/hook`]);
  expect(resent.errors).toBeUndefined();
  expect(await storedUrls()).toEqual([withToken]);
});

test("invalid URL error shows the URL as typed", async () => {
  const response = await setRecipients([`http://u:${PASSWORD}@host/a b`]);

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain('"http://u:***@host/a b"');
  expect(response.errors![0].message).not.toContain(PASSWORD);
});
