// Tokens over HTTP and graphql-ws: missing, expired and wrongly signed
// tokens are rejected; a valid one identifies the caller by e-mail.
import type { Gateway } from "../src/server";
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
  async function closeCode(token: string | null): Promise<number> {
    const client = wsClient(gateway, token);
    try {
      return await new Promise<number>((resolve) => {
        client.subscribe(
          { query: "subscription { guardianEvents { kind } }" },
          {
            next: () => undefined,
            error: (error) => resolve((error as { code: number }).code),
            complete: () => resolve(-1),
          },
        );
      });
    } finally {
      await client.dispose();
    }
  }

  test("missing token closes with 4403", async () => {
    expect(await closeCode(null)).toBe(4403);
  });

  test("expired token closes with 4403", async () => {
    const expired = await tokenFor(uniqueEmail(), {
      expiresIn: Math.floor(Date.now() / 1000) - 60,
    });
    expect(await closeCode(expired)).toBe(4403);
  });

  test("wrongly signed token closes with 4403", async () => {
    const forged = await tokenFor(uniqueEmail(), { secret: "another-secret" });
    expect(await closeCode(forged)).toBe(4403);
  });

  test("token expiring mid-connection closes it", async () => {
    const shortLived = await tokenFor(uniqueEmail(), {
      expiresIn: Math.floor(Date.now() / 1000) + 2,
    });
    const started = Date.now();
    expect(await closeCode(shortLived)).toBe(4403);
    expect(Date.now() - started).toBeGreaterThan(500);
  });
});
