// Requests that are not GraphQL requests get status 400 and BAD_REQUEST.
// Error responses carry stack traces only with INCLUDE_STACKTRACE_IN_ERRORS,
// whatever NODE_ENV is.
import { loadConfig } from "../../src/config";
import type { Gateway } from "../../src/server";
import {
  Cleanup,
  errorCodes,
  gql,
  startGateway,
  testConfig,
  tokenFor,
  uniqueEmail,
} from "../harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let token: string;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  token = await tokenFor(uniqueEmail());
});

afterAll(() => cleanup.run());

async function post(body: string): Promise<{ status: number; codes: string[] }> {
  const response = await fetch(gateway.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body,
  });
  const parsed = (await response.json()) as {
    errors: { message: string; extensions: { code: string } }[];
  };
  for (const error of parsed.errors) expect(error.message).not.toBe("");
  return {
    status: response.status,
    codes: parsed.errors.map((error) => error.extensions.code),
  };
}

describe.each([
  ["not JSON", "{not json"],
  ["empty", ""],
  ["JSON null", "null"],
  ["JSON string", '"{ viewer { email } }"'],
  ["JSON number", "42"],
  ["JSON array", '[{"query": "{ viewer { email } }"}]'],
  ["empty object", "{}"],
  ["object without query", '{"variables": {}}'],
  ["query not a string", '{"query": 1}'],
])("body %s", (_name, body) => {
  test("gets 400 BAD_REQUEST", async () => {
    const response = await post(body);
    expect(response.status).toBe(400);
    expect(response.codes).toEqual(["BAD_REQUEST"]);
  });
});

describe("stack traces", () => {
  const FAILING = '{ queue(name: "not-a-queue") { name } }';

  test("hidden by default", async () => {
    const response = await gql(gateway, FAILING, {}, token);
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors?.[0].extensions).not.toHaveProperty("stacktrace");
  });

  test("hidden on validation errors", async () => {
    const response = await gql(gateway, "{ noSuchField }", {}, token);
    expect(errorCodes(response)).toEqual(["GRAPHQL_VALIDATION_FAILED"]);
    expect(response.errors?.[0].extensions).not.toHaveProperty("stacktrace");
  });

  test("hidden on malformed requests", async () => {
    const response = await gql(gateway, "", {}, token);
    expect(response.status).toBe(400);
    expect(response.errors?.[0].extensions).not.toHaveProperty("stacktrace");
  });

  test("shown when the setting is on", async () => {
    const verbose = await startGateway({ includeStacktraceInErrors: true });
    cleanup.add(() => verbose.stop());
    const response = await gql(verbose, FAILING, {}, token);
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors?.[0].extensions?.stacktrace).toEqual(
      expect.arrayContaining([expect.stringContaining("not-a-queue")]),
    );
  });

  test("setting read from the environment", () => {
    const env = { DATABASE_URL: testConfig().databaseUrl };
    expect(loadConfig(env).includeStacktraceInErrors).toBe(false);
    expect(loadConfig({ ...env, NODE_ENV: "development" }).includeStacktraceInErrors).toBe(false);
    expect(
      loadConfig({ ...env, INCLUDE_STACKTRACE_IN_ERRORS: "true" }).includeStacktraceInErrors,
    ).toBe(true);
    expect(() => loadConfig({ ...env, INCLUDE_STACKTRACE_IN_ERRORS: "maybe" })).toThrow(
      /INCLUDE_STACKTRACE_IN_ERRORS is "maybe"/,
    );
  });
});
