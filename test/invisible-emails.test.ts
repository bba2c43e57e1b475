// E-mail addresses with characters a reader cannot see (controls, zero-width
// and bidi format characters, U+FEFF, variation selectors) look exactly like
// someone else's address. Every e-mail input rejects them, names the
// character, and changes nothing.
import type { Gateway } from "../src/server";
import {
  ADMIN_EMAIL,
  Cleanup,
  createTestAccount,
  errorCodes,
  gql,
  startGateway,
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
