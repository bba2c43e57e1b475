// Start-up with dependencies missing: the gateway keeps serving /healthz,
// reports each missing dependency with its address and the fix, and keeps
// retrying instead of exiting.
import { createLogger } from "../src/logger";
import { Gateway } from "../src/server";
import { Cleanup, eventually, testConfig } from "./harness";

// Ports on 127.0.0.1 where nothing listens during the tests.
const CLOSED_PORT = 9;

const cleanup = new Cleanup();
let gateway: Gateway;
const lines: string[] = [];

beforeAll(async () => {
  const config = testConfig({
    databaseUrl: `postgresql://postgres@127.0.0.1:${CLOSED_PORT}/missing`,
    amqpUrl: `amqp://guest:guest@127.0.0.1:${CLOSED_PORT}`,
    managementUrl: `http://guest:guest@127.0.0.1:${CLOSED_PORT}`,
    retryIntervalMs: 200,
  });
  const logger = createLogger({
    level: "info",
    destination: { write: (line: string) => void lines.push(line) },
  });
  gateway = new Gateway(config, logger);
  await gateway.start();
  cleanup.add(() => gateway.stop());
});

afterAll(() => cleanup.run());

function messages(): string[] {
  return lines.map((line) => JSON.parse(line).msg as string);
}

async function logged(pattern: RegExp): Promise<string> {
  return eventually(async () => messages().find((m) => pattern.test(m)));
}

function baseUrl(): string {
  return gateway.url.replace(/\/graphql$/, "");
}

test("healthz responds while dependencies are missing", async () => {
  const response = await fetch(`${baseUrl()}/healthz`);
  expect(response.status).toBe(200);
});

test("readyz names each failing dependency", async () => {
  const response = await fetch(`${baseUrl()}/readyz`);
  const body = (await response.json()) as {
    checks: Record<string, { ok: boolean }>;
  };
  expect(response.status).toBe(503);
  expect(body.checks.database.ok).toBe(false);
  expect(body.checks.management.ok).toBe(false);
  expect(body.checks.amqp.ok).toBe(false);
});

test("readyz gives the database fix", async () => {
  const response = await fetch(`${baseUrl()}/readyz`);
  const body = (await response.json()) as {
    checks: Record<string, { error?: string }>;
  };
  const error = body.checks.database.error!;
  expect(error).toContain(`PostgreSQL is not reachable at 127.0.0.1:${CLOSED_PORT}`);
  expect(error).toContain("pg_ctlcluster");
  expect(error).not.toContain("prisma");
});

test("missing database logged with fix", async () => {
  const message = await logged(/PostgreSQL is not reachable/);
  expect(message).toContain(`127.0.0.1:${CLOSED_PORT}`);
  expect(message).toContain("pg_ctlcluster");
});

test("missing management plugin logged with fix", async () => {
  const message = await logged(/management API/);
  expect(message).toContain(`127.0.0.1:${CLOSED_PORT}`);
  expect(message).toContain("rabbitmq-plugins enable rabbitmq_management");
});

test("missing broker logged with fix", async () => {
  const message = await logged(/not reachable over AMQP/);
  expect(message).toContain(`127.0.0.1:${CLOSED_PORT}`);
  expect(message).toContain("rabbitmq-server");
});

test("broker connection retried", async () => {
  await eventually(async () => {
    const attempts = messages().filter((m) => /over AMQP/.test(m));
    return attempts.length >= 2 ? true : undefined;
  });
});

test("graphql returns 503 before database ready", async () => {
  const response = await fetch(gateway.url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: "{ viewer { email } }" }),
  });
  const body = (await response.json()) as {
    errors: { message: string; extensions: { code: string } }[];
  };
  expect(response.status).toBe(503);
  expect(body.errors[0].message).toMatch(/database is not ready/);
  expect(body.errors[0].extensions.code).toBe("DATABASE_UNAVAILABLE");
});
