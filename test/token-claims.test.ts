// Tokens signed with the right key whose claims are still unacceptable:
// an `email` that is not a storable address, or an `iat` in the future.
// Each is rejected over HTTP (UNAUTHENTICATED, with an audit entry for
// the mutation it carried) and over graphql-ws (close 4403).
import { SignJWT, type JWTPayload } from "jose";

import type { Gateway } from "../src/server";
import {
  brokerAdmin,
  Cleanup,
  errorCodes,
  gql,
  startGateway,
  TEST_SECRET,
  tokenFor,
  uniqueEmail,
  uniqueName,
  wsClient,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
});

afterAll(() => cleanup.run());

const nowSeconds = () => Math.floor(Date.now() / 1000);

function sign(claims: JWTPayload): Promise<string> {
  return new SignJWT({ iat: nowSeconds(), exp: nowSeconds() + 600, ...claims })
    .setProtectedHeader({ alg: "HS256" })
    .sign(new TextEncoder().encode(TEST_SECRET));
}

const CREATE_ACCOUNT = `mutation ($username: String!) {
  createAccount(input: { username: $username }) { password }
}`;

const EMAIL_INVALID = /Token claim "email" is invalid/;
const IAT_IN_FUTURE = /Token claim "iat" is in the future/;

type Case = [name: string, claims: () => JWTPayload, message: RegExp];

const BAD_CLAIMS: Case[] = [
  ["NUL in email", () => ({ email: "a\u0000b@example.com" }), EMAIL_INVALID],
  ["very long email", () => ({ email: `${"a".repeat(300)}@example.com` }), EMAIL_INVALID],
  ["bell in email", () => ({ email: "a\u0007b@example.com" }), EMAIL_INVALID],
  ["escape in email", () => ({ email: "a@example.com\u001b[2J" }), EMAIL_INVALID],
  ["DEL in email", () => ({ email: "a\u007fb@example.com" }), EMAIL_INVALID],
  ["email not an address", () => ({ email: "not-an-address" }), EMAIL_INVALID],
  ["email a number", () => ({ email: 42 }), EMAIL_INVALID],
  ["email missing", () => ({}), EMAIL_INVALID],
  [
    "iat an hour ahead",
    () => ({ email: uniqueEmail(), iat: nowSeconds() + 3600 }),
    IAT_IN_FUTURE,
  ],
  [
    "iat a year ahead",
    () => ({ email: uniqueEmail(), iat: nowSeconds() + 365 * 86400 }),
    IAT_IN_FUTURE,
  ],
];

async function closeEvent(token: string): Promise<{ code: number; reason: string }> {
  const client = wsClient(gateway, token);
  try {
    return await new Promise((resolve) => {
      client.subscribe(
        { query: "subscription { guardianEvents { kind } }" },
        {
          next: () => undefined,
          error: (error) => resolve(error as { code: number; reason: string }),
          complete: () => resolve({ code: -1, reason: "completed" }),
        },
      );
    });
  } finally {
    await client.dispose();
  }
}

describe.each(BAD_CLAIMS)("token with %s", (_name, claims, message) => {
  test("HTTP mutation unauthenticated and audited", async () => {
    const username = uniqueName("claim");
    const response = await gql(gateway, CREATE_ACCOUNT, { username }, await sign(claims()));
    // Removes the account should the token wrongly be accepted.
    cleanup.add(async () => {
      await brokerAdmin().deleteUser(username).catch(() => undefined);
      await gateway.db.account.deleteMany({ where: { username } });
    });
    expect(errorCodes(response)).toEqual(["UNAUTHENTICATED"]);
    expect(response.errors?.[0].message).toMatch(message);
    expect(await gateway.management.userExists(username)).toBe(false);

    const entries = await gateway.db.auditEntry.findMany({ where: { account: username } });
    expect(entries).toHaveLength(1);
    expect(entries[0].actor).toBeNull();
    expect(entries[0].outcome).toBe("UNAUTHENTICATED");
    expect(entries[0].error).toMatch(message);
  });

  test("graphql-ws closes with 4403", async () => {
    const event = await closeEvent(await sign(claims()));
    expect(event.code).toBe(4403);
    expect(event.reason).toMatch(message);
  });
});

test("iat within the clock tolerance accepted", async () => {
  const email = uniqueEmail();
  const token = await sign({ email, iat: nowSeconds() + 3 });
  const response = await gql(gateway, "{ viewer { email } }", {}, token);
  expect(response.errors).toBeUndefined();
  expect(response.data?.viewer.email).toBe(email);
});

test("email message escapes control characters", async () => {
  const token = await sign({ email: "a\u0000b@example.com" });
  const response = await gql(gateway, "{ viewer { email } }", {}, token);
  expect(response.errors?.[0].message).toContain('"a\\u0000b@example.com"');
});

test("valid token still signs in", async () => {
  const email = uniqueEmail();
  const response = await gql(gateway, "{ viewer { email } }", {}, await tokenFor(email));
  expect(response.data?.viewer.email).toBe(email);
});
