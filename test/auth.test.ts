// Tokens over HTTP and graphql-ws: missing, expired and wrongly signed
// tokens are rejected; a valid one identifies the caller by e-mail.
import type { Gateway } from "../src/server";
import { TOKEN_EXPIRED_CLOSE_REASON } from "../src/server/ws";
import {
  ADMIN_EMAIL,
  Cleanup,
  errorCodes,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
  wsClient,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
});

afterAll(() => cleanup.run());

const VIEWER = "{ viewer { email isAdmin } }";

describe("HTTP", () => {
  test("valid token names the viewer", async () => {
    const email = uniqueEmail();
    const response = await gql(gateway, VIEWER, {}, await tokenFor(email));
    expect(response.data?.viewer).toEqual({ email, isAdmin: false });
  });

  test("admin e-mail makes an admin", async () => {
    const response = await gql(gateway, VIEWER, {}, await tokenFor(ADMIN_EMAIL));
    expect(response.data?.viewer.isAdmin).toBe(true);
  });

  test("missing token is unauthenticated", async () => {
    const response = await gql(gateway, VIEWER, {}, null);
    expect(errorCodes(response)).toEqual(["UNAUTHENTICATED"]);
    expect(response.errors?.[0].message).toMatch(/Authorization: Bearer/);
  });

  test("expired token is unauthenticated", async () => {
    const expired = await tokenFor(uniqueEmail(), {
      expiresIn: Math.floor(Date.now() / 1000) - 60,
    });
    const response = await gql(gateway, VIEWER, {}, expired);
    expect(errorCodes(response)).toEqual(["UNAUTHENTICATED"]);
    expect(response.errors?.[0].message).toMatch(/expired/i);
  });

  test("wrongly signed token is unauthenticated", async () => {
    const forged = await tokenFor(uniqueEmail(), { secret: "another-secret" });
    const response = await gql(gateway, VIEWER, {}, forged);
    expect(errorCodes(response)).toEqual(["UNAUTHENTICATED"]);
    expect(response.errors?.[0].message).toMatch(/signature/i);
  });

  test("mutation without token changes nothing", async () => {
    const response = await gql(
      gateway,
      `mutation { createAccount(input: { username: "nobody-here" }) { password } }`,
      {},
      null,
    );
    expect(errorCodes(response)).toEqual(["UNAUTHENTICATED"]);
    expect(await gateway.management.userExists("nobody-here")).toBe(false);
  });

  test("introspection works without token", async () => {
    const response = await gql(gateway, "{ __schema { queryType { name } } }");
    expect(response.data?.__schema.queryType.name).toBe("Query");
  });
});

describe("WebSocket", () => {
  async function closeEvent(
    token: string | null,
  ): Promise<{ code: number; reason: string }> {
    const client = wsClient(gateway, token);
    try {
      return await new Promise((resolve) => {
        client.subscribe(
          { query: "subscription { guardianEvents { kind } }" },
          {
            next: () => undefined,
            error: (error) =>
              resolve(error as { code: number; reason: string }),
            complete: () => resolve({ code: -1, reason: "completed" }),
          },
        );
      });
    } finally {
      await client.dispose();
    }
  }

  test("missing token closes with 4403", async () => {
    const event = await closeEvent(null);
    expect(event.code).toBe(4403);
    expect(event.reason).toMatch(/^Missing token/);
    expect(event.reason).toContain("connection_init payload");
    expect(Buffer.byteLength(event.reason)).toBeLessThanOrEqual(123);
  });

  test("long token error keeps fact and fix", async () => {
    const token = await tokenFor(`${"é".repeat(150)}\u200b@example.com`);
    const event = await closeEvent(token);
    expect(event.code).toBe(4403);
    expect(event.reason).toMatch(/^Token claim "email" is invalid/);
    expect(event.reason).toContain("U+200B");
    expect(event.reason).toMatch(/Get a token for a valid address\.$/);
    expect(Buffer.byteLength(event.reason)).toBeLessThanOrEqual(123);
  });

  test("expired token closes with 4403", async () => {
    const expired = await tokenFor(uniqueEmail(), {
      expiresIn: Math.floor(Date.now() / 1000) - 60,
    });
    const event = await closeEvent(expired);
    expect(event.code).toBe(4403);
    expect(event.reason).toMatch(/expired/i);
  });

  test("wrongly signed token closes with 4403", async () => {
    const forged = await tokenFor(uniqueEmail(), { secret: "another-secret" });
    const event = await closeEvent(forged);
    expect(event.code).toBe(4403);
    expect(event.reason).toMatch(/signature/i);
  });

  test("token expiring mid-connection closes it", async () => {
    const shortLived = await tokenFor(uniqueEmail(), {
      expiresIn: Math.floor(Date.now() / 1000) + 2,
    });
    const started = Date.now();
    const event = await closeEvent(shortLived);
    expect(event.code).toBe(4403);
    expect(event.reason).toBe(TOKEN_EXPIRED_CLOSE_REASON);
    expect(event.reason).toContain("get a new token");
    expect(Date.now() - started).toBeGreaterThan(500);
  });
});
