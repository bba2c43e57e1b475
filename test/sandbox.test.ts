// Apollo Sandbox, introspection and CORS: on by default so Sandbox and
// Apollo Studio can explore a local gateway, and each can be switched off.
import type { Gateway } from "../src/server";
import {
  Cleanup,
  Collected,
  errorCodes,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
  wsClient,
} from "./harness";

const STUDIO = "https://studio.apollographql.com";
const INTROSPECTION = "{ __schema { queryType { name } } }";

const cleanup = new Cleanup();
let open: Gateway;
let closed: Gateway;

beforeAll(async () => {
  open = await startGateway();
  cleanup.add(() => open.stop());
  closed = await startGateway({
    introspection: false,
    landingPage: false,
    corsOrigins: ["https://dashboard.example.com"],
  });
  cleanup.add(() => closed.stop());
});

afterAll(() => cleanup.run());

function openPage(gateway: Gateway): Promise<Response> {
  return fetch(gateway.url, { headers: { accept: "text/html" } });
}

describe("landing page", () => {
  test("Sandbox served by default", async () => {
    const response = await openPage(open);
    const html = await response.text();
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/text\/html/);
    expect(html).toContain("embeddable-sandbox");
  });

  test("LANDING_PAGE=false serves no page", async () => {
    const response = await openPage(closed);
    const body = await response.text();
    expect(response.headers.get("content-type")).not.toMatch(/text\/html/);
    expect(body).not.toContain("embeddable-sandbox");
  });
});

describe("introspection", () => {
  test("allowed by default over HTTP", async () => {
    const response = await gql(open, INTROSPECTION);
    expect(response.data?.__schema.queryType.name).toBe("Query");
  });

  test("INTROSPECTION=false rejects it over HTTP", async () => {
    const token = await tokenFor(uniqueEmail());
    const response = await gql(closed, INTROSPECTION, {}, token);
    expect(errorCodes(response)).toEqual(["GRAPHQL_VALIDATION_FAILED"]);
    expect(response.errors?.[0].message).toMatch(/introspection/i);
  });

  test("INTROSPECTION=false rejects it over graphql-ws", async () => {
    const client = wsClient(closed, await tokenFor(uniqueEmail()));
    cleanup.add(() => client.dispose());
    const result = new Collected(client, INTROSPECTION);
    await result.until(() => result.errors.length > 0);
    expect(result.events).toEqual([]);
    expect((result.errors[0] as Error).message).toMatch(/introspection/i);
  });

  test("allowed by default over graphql-ws", async () => {
    const client = wsClient(open, await tokenFor(uniqueEmail()));
    cleanup.add(() => client.dispose());
    const result = new Collected(client, INTROSPECTION);
    await result.until(() => result.completed);
    expect(result.errors).toEqual([]);
    expect(result.events).toEqual([{ __schema: { queryType: { name: "Query" } } }]);
  });

  test("plain queries still work when off", async () => {
    const email = uniqueEmail();
    const response = await gql(closed, "{ viewer { email } }", {}, await tokenFor(email));
    expect(response.data?.viewer.email).toBe(email);
  });
});

describe("CORS", () => {
  const STUDIO_HEADERS = [
    "authorization",
    "content-type",
    "apollographql-client-name",
    "apollographql-client-version",
    "x-apollo-operation-name",
  ];

  test("Studio preflight allowed by default", async () => {
    const response = await fetch(open.url, {
      method: "OPTIONS",
      headers: {
        origin: STUDIO,
        "access-control-request-method": "POST",
        "access-control-request-headers": STUDIO_HEADERS.join(","),
        "access-control-request-private-network": "true",
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe(STUDIO);
    expect(response.headers.get("access-control-allow-methods")).toContain("POST");
    expect(response.headers.get("access-control-allow-private-network")).toBe("true");
    const allowed = response.headers.get("access-control-allow-headers") ?? "";
    for (const header of STUDIO_HEADERS) {
      expect(allowed.split(/,\s*/)).toContain(header);
    }
  });

  test("Studio POST gets its origin back", async () => {
    const response = await fetch(open.url, {
      method: "POST",
      headers: { origin: STUDIO, "content-type": "application/json" },
      body: JSON.stringify({ query: INTROSPECTION }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBe(STUDIO);
  });

  test("CORS_ORIGINS leaves other origins out", async () => {
    const response = await fetch(closed.url, {
      method: "OPTIONS",
      headers: { origin: STUDIO, "access-control-request-method": "POST" },
    });
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
  });

  test("CORS_ORIGINS allows a listed origin", async () => {
    const origin = "https://dashboard.example.com";
    const response = await fetch(closed.url, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST" },
    });
    expect(response.headers.get("access-control-allow-origin")).toBe(origin);
  });
});
