// The gateway's RabbitMQ vhost: AMQP and the management API use one vhost,
// and a vhost that is missing, or that the gateway's user has no
// permissions on, shows up in /readyz and in mutation errors with the fix.
import type { Gateway } from "../src/server";
import {
  Cleanup,
  errorCodes,
  gql,
  startGateway,
  testConfig,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const cleanup = new Cleanup();

afterAll(() => cleanup.run());

/** Sends one request to the management API as the test's broker user. */
async function management(method: string, path: string): Promise<Response> {
  const url = new URL(testConfig().managementUrl);
  const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  url.username = "";
  url.password = "";
  return fetch(new URL(path, url), {
    method,
    headers: {
      authorization: `Basic ${Buffer.from(credentials).toString("base64")}`,
    },
  });
}

async function readiness(gateway: Gateway) {
  const base = gateway.url.replace(/\/graphql$/, "");
  const response = await fetch(`${base}/readyz`);
  const body = (await response.json()) as {
    ready: boolean;
    checks: Record<string, { ok: boolean; error?: string }>;
  };
  return { status: response.status, body };
}

describe("missing vhost", () => {
  const vhost = uniqueName("test-missing-vhost");
  let gateway: Gateway;

  beforeAll(async () => {
    // AMQP stays on the test vhost, so the gateway becomes ready.
    gateway = await startGateway({ vhost });
    cleanup.add(() => gateway.stop());
  });

  test("readyz names the missing vhost", async () => {
    const { status, body } = await readiness(gateway);
    expect(status).toBe(503);
    expect(body.ready).toBe(false);
    expect(body.checks.management.ok).toBe(false);
    expect(body.checks.management.error).toContain(`"${vhost}"`);
    expect(body.checks.management.error).toContain("rabbitmqctl add_vhost");
  });

  test("createAccount fails with BROKER_UNAVAILABLE", async () => {
    const username = uniqueName("no-vhost");
    const response = await gql(
      gateway,
      `mutation ($u: String!) { createAccount(input: { username: $u }) { password } }`,
      { u: username },
      await tokenFor(uniqueEmail("owner")),
    );
    expect(errorCodes(response)).toEqual(["BROKER_UNAVAILABLE"]);
    expect(response.errors![0].message).toContain(`"${vhost}"`);
    expect(response.errors![0].message).toContain("RABBITMQ_VHOST");
    expect(await gateway.management.userExists(username)).toBe(false);
    const row = await gateway.db.account.findUnique({ where: { username } });
    expect(row).toBeNull();
  });
});

describe("vhost without permissions", () => {
  const vhost = uniqueName("test-no-permissions");
  let gateway: Gateway;

  beforeAll(async () => {
    const created = await management("PUT", `/api/vhosts/${vhost}`);
    expect(created.ok).toBe(true);
    cleanup.add(() => management("DELETE", `/api/vhosts/${vhost}`));
    const user = testConfig().gatewayAccount;
    await management("DELETE", `/api/permissions/${vhost}/${user}`);
    gateway = await startGateway({ vhost });
    cleanup.add(() => gateway.stop());
  });

  test("readyz names the user and the fix", async () => {
    const { status, body } = await readiness(gateway);
    expect(status).toBe(503);
    expect(body.checks.management.error).toContain(`"${vhost}"`);
    expect(body.checks.management.error).toContain("rabbitmqctl set_permissions");
  });
});

test("readyz passes on the test vhost", async () => {
  const gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  const { status, body } = await readiness(gateway);
  expect(body.checks.management).toEqual({ ok: true });
  expect(status).toBe(200);
});
