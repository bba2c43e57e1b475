// E-mail addresses with characters a reader cannot see (controls, zero-width
// and bidi format characters, U+FEFF, variation selectors, blanks such as
// U+2800) look exactly like someone else's address. Every e-mail input
// rejects them, names the character, and changes nothing. Addresses are
// stored in Unicode NFC, so the two spellings of "é" are one address.
import { loadConfig } from "../src/config";
import type { Gateway } from "../src/server";
import {
  ADMIN_EMAIL,
  Cleanup,
  createTestAccount,
  errorCodes,
  gql,
  startGateway,
  TEST_DATABASE_URL,
  TEST_SECRET,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

// Each address has one hidden character before the "@".
const HIDDEN = [
  ["zero-width space", "\u200b", "U+200B"],
  ["right-to-left override", "\u202e", "U+202E"],
  ["byte order mark", "\ufeff", "U+FEFF"],
  ["word joiner", "\u2060", "U+2060"],
  ["soft hyphen", "\u00ad", "U+00AD"],
  ["variation selector", "\ufe0f", "U+FE0F"],
  ["bell", "\u0007", "U+0007"],
  ["C1 next line", "\u0085", "U+0085"],
  ["tag letter", "\u{e0041}", "U+E0041"],
  ["braille pattern blank", "\u2800", "U+2800"],
  ["Hangul filler", "\u3164", "U+3164"],
  ["halfwidth Hangul filler", "\uffa0", "U+FFA0"],
  ["Hangul choseong filler", "\u115f", "U+115F"],
  ["Hangul jungseong filler", "\u1160", "U+1160"],
  ["no-break space", "\u00a0", "U+00A0"],
  ["ideographic space", "\u3000", "U+3000"],
] as const;

function hide(email: string, character: string): string {
  return email.replace("@", `${character}@`);
}

const cleanup = new Cleanup();
let gateway: Gateway;
let ownerEmail: string;
let owner: string;
let admin: string;
const account = uniqueName("hidden-mail");

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  ownerEmail = uniqueEmail("owner");
  owner = await tokenFor(ownerEmail);
  admin = await tokenFor(ADMIN_EMAIL);
  await createTestAccount(gateway, cleanup, account, owner);
});

afterAll(() => cleanup.run());

describe.each(HIDDEN)("address with %s", (_name, character, code) => {
  test("addAccountOwner rejects it", async () => {
    const response = await gql(
      gateway,
      `mutation ($u: String!, $e: String!) {
        addAccountOwner(username: $u, email: $e) { owners }
      }`,
      { u: account, e: hide(uniqueEmail("twin"), character) },
      owner,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors![0].message).toContain(code);
    const owners = await gateway.db.accountOwner.count({
      where: { account: { username: account } },
    });
    expect(owners).toBe(1);
  });

  test("createAccount rejects it as owner", async () => {
    const username = uniqueName("hidden-owner");
    const response = await gql(
      gateway,
      `mutation ($u: String!, $o: [String!]!) {
        createAccount(input: { username: $u, owners: $o }) { password }
      }`,
      { u: username, o: [hide(uniqueEmail("twin"), character)] },
      owner,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors![0].message).toContain(code);
    expect(await gateway.management.userExists(username)).toBe(false);
  });

  test("grantAdmin rejects it", async () => {
    const email = hide(uniqueEmail("twin"), character);
    const response = await gql(
      gateway,
      `mutation ($e: String!) { grantAdmin(email: $e) { email } }`,
      { e: email },
      admin,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors![0].message).toContain(code);
    const row = await gateway.db.user.findFirst({
      where: { email: email.toLowerCase() },
    });
    expect(row).toBeNull();
  });

  test("setNotificationRecipients rejects it", async () => {
    const response = await gql(
      gateway,
      `mutation ($a: String!, $e: [String!]!) {
        setNotificationRecipients(account: $a, emails: $e, webhookUrls: []) {
          notifyEmails
        }
      }`,
      { a: account, e: [hide(uniqueEmail("twin"), character)] },
      owner,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors![0].message).toContain(code);
    const policy = await gateway.db.accountPolicy.findFirst({
      where: { account: { username: account } },
    });
    expect(policy?.notifyEmails ?? []).toEqual([]);
  });

  test("token claim rejected", async () => {
    const token = await tokenFor(hide(ownerEmail, character));
    const response = await gql(gateway, "{ viewer { email } }", {}, token);
    expect(errorCodes(response)).toEqual(["UNAUTHENTICATED"]);
    expect(response.errors![0].message).toContain(code);
  });
});

test("accented address still accepted", async () => {
  const email = uniqueEmail("zoë");
  const response = await gql(
    gateway,
    `mutation ($u: String!, $e: String!) {
      addAccountOwner(username: $u, email: $e) { owners }
    }`,
    { u: account, e: email },
    owner,
  );
  expect(response.errors).toBeUndefined();
  expect(response.data?.addAccountOwner.owners).toContain(email);
});

describe("address in NFD", () => {
  // "josé" with "e" and U+0301 COMBINING ACUTE ACCENT, and with U+00E9.
  const local = uniqueName("jose");
  const composed = `${local}\u00e9@example.com`;
  const decomposed = `${local}e\u0301@example.com`;

  test("addAccountOwner stores it as NFC", async () => {
    const add = `mutation ($u: String!, $e: String!) {
      addAccountOwner(username: $u, email: $e) { owners }
    }`;
    const first = await gql(gateway, add, { u: account, e: composed }, owner);
    expect(first.errors).toBeUndefined();
    const second = await gql(gateway, add, { u: account, e: decomposed }, owner);
    expect(second.errors?.[0].message).toContain("already an owner");
    const owners = await gateway.db.accountOwner.findMany({
      where: { account: { username: account } },
      select: { user: { select: { email: true } } },
    });
    const emails = owners.map((row) => row.user.email);
    expect(emails).toContain(composed);
    expect(emails).not.toContain(decomposed);
  });

  test("token claim read as NFC", async () => {
    const token = await tokenFor(decomposed);
    const response = await gql(gateway, "{ viewer { email } }", {}, token);
    expect(response.data?.viewer.email).toBe(composed);
  });

  test("grantAdmin stores it as NFC", async () => {
    const email = `${uniqueName("admin")}e\u0301@example.com`;
    const response = await gql(
      gateway,
      `mutation ($e: String!) { grantAdmin(email: $e) { email } }`,
      { e: email },
      admin,
    );
    expect(response.data?.grantAdmin.email).toBe(email.normalize("NFC"));
    cleanup.add(() =>
      gateway.db.user
        .updateMany({
          where: { email: email.normalize("NFC") },
          data: { isAdmin: false },
        })
        .then(() => undefined),
    );
  });

  test("setNotificationRecipients stores it as NFC", async () => {
    const response = await gql(
      gateway,
      `mutation ($a: String!, $e: [String!]!) {
        setNotificationRecipients(account: $a, emails: $e, webhookUrls: []) {
          notifyEmails
        }
      }`,
      { a: account, e: [decomposed, composed] },
      owner,
    );
    expect(response.data?.setNotificationRecipients.notifyEmails).toEqual([
      composed,
    ]);
  });

  test("ADMIN_EMAILS read as NFC", () => {
    const email = `${uniqueName("listed")}e\u0301@example.com`;
    const config = loadConfig({
      ...process.env,
      DATABASE_URL: TEST_DATABASE_URL,
      JWT_SECRET: TEST_SECRET,
      ADMIN_EMAILS: email,
    });
    expect(config.adminEmails).toEqual([email.normalize("NFC")]);
  });
});

// Addresses of the right shape that read like another one.
const LOOK_ALIKES = [
  ["fullwidth letter", "\uff42ob@example.com", "U+FF42"],
  ["Cyrillic letter in the domain", "bob@ex\u0430mple.com", "punycode"],
  ["trailing dot in the domain", "bob@example.com.", "trailing dots"],
  ["combining mark in the domain", "bob@exa\u0301mple.com", "punycode"],
] as const;

test.each(LOOK_ALIKES)("addAccountOwner rejects a %s", async (_name, email, hint) => {
  const response = await gql(
    gateway,
    `mutation ($u: String!, $e: String!) {
      addAccountOwner(username: $u, email: $e) { owners }
    }`,
    { u: account, e: email },
    owner,
  );

  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors![0].message).toContain(hint);
});

test.each(LOOK_ALIKES)("a token for a %s is rejected", async (_name, email, hint) => {
  const response = await gql(gateway, "{ viewer { email } }", {}, await tokenFor(email));

  expect(errorCodes(response)).toEqual(["UNAUTHENTICATED"]);
  expect(response.errors![0].message).toContain(hint);
});
