// Graceful shutdown of the built gateway process: SIGTERM lets requests in
// flight finish, closes graphql-ws sockets with 1001, removes the live
// queues and exits 0; a grace period that runs out exits 1 with a log line.
// A management proxy delays one broker request, so that an HTTP request is
// still in flight when the signal arrives.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { promisify } from "node:util";

import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";

import { ConfigError, loadConfig } from "../src/config";
import type { Gateway } from "../src/server";
import {
  ADMIN_EMAIL,
  brokerAdmin,
  Cleanup,
  declareTestExchange,
  eventually,
  gql,
  startGateway,
  TEST_DATABASE_URL,
  TEST_SECRET,
  testConfig,
  tokenFor,
  uniqueEmail,
  uniqueName,
  type GraphQLResponse,
} from "./harness";
import { ManagementProxy, type ProxyRuleHandle } from "./management-proxy";

const ROOT = path.resolve(__dirname, "..");

const CREATE_ACCOUNT = `mutation ($input: CreateAccountInput!) {
  createAccount(input: $input) { account { username } }
}`;

const MESSAGES = `subscription ($exchange: String!) {
  messages(exchange: $exchange, routingKeyPattern: "#") { routingKey }
}`;

const cleanup = new Cleanup();
const management = brokerAdmin();
let proxy: ManagementProxy;
// In-process gateway on the same database and broker, for setup, checks
// and cleanup that must outlive the stopped process.
let helper: Gateway;
let adminToken: string;

beforeAll(async () => {
  await promisify(execFile)("npx", ["tsc", "-p", "tsconfig.build.json"], {
    cwd: ROOT,
  });
  proxy = await ManagementProxy.start(testConfig().managementUrl);
  cleanup.add(() => proxy.close());
  helper = await startGateway();
  cleanup.add(() => helper.stop());
  adminToken = await tokenFor(ADMIN_EMAIL);
}, 180_000);

afterAll(() => cleanup.run());

/** The built gateway, run as `npm start` runs it, with its log lines kept. */
class GatewayProcess {
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: string | null }>;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    let buffered = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      this.lines.push(...parts);
    });
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
    });
  }

  /**
   * Starts dist/server/main.js, or `npm start` with its prestart step
   * (build and local services) skipped when `viaNpm` is set.
   */
  static async start(graceMs: number, viaNpm = false): Promise<GatewayProcess> {
    const port = await freePort();
    const config = testConfig();
    const [command, args] = viaNpm
      ? ["npm", ["start", "--silent", "--ignore-scripts"]]
      : [process.execPath, ["dist/server/main.js"]];
    const child = spawn(command, args, {
      cwd: ROOT,
      env: {
        ...process.env,
        HOST: "127.0.0.1",
        PORT: String(port),
        DATABASE_URL: TEST_DATABASE_URL,
        AMQP_URL: config.amqpUrl,
        RABBITMQ_VHOST: config.vhost,
        RABBITMQ_MANAGEMENT_URL: proxy.url,
        JWT_SECRET: TEST_SECRET,
        JWT_JWKS_URL: "",
        ADMIN_EMAILS: ADMIN_EMAIL,
        GUARDIAN_ENABLED: "false",
        LOG_LEVEL: "info",
        SHUTDOWN_GRACE_MS: String(graceMs),
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const gateway = new GatewayProcess(child, port);
    cleanup.add(() => {
      if (gateway.child.exitCode === null) gateway.child.kill("SIGKILL");
    });
    await eventually(async () => {
      const response = await fetch(`${gateway.baseUrl}/readyz`).catch(
        () => null,
      );
      return response?.status === 200 ? true : undefined;
    }, 60_000);
    return gateway;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Log messages (the `msg` of each JSON line). */
  messages(): string[] {
    return this.lines.flatMap((line) => {
      try {
        return [JSON.parse(line).msg as string];
      } catch {
        return [];
      }
    });
  }

  async post(
    query: string,
    variables: Record<string, unknown>,
    token: string,
  ): Promise<GraphQLResponse> {
    const response = await fetch(`${this.baseUrl}/graphql`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as GraphQLResponse;
    return { ...body, status: response.status };
  }

  wsClient(
    token: string,
    onClose: (event: { code: number; reason: string }) => void,
  ): Client {
    return createClient({
      url: `ws://127.0.0.1:${this.port}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      retryAttempts: 0,
      on: {
        closed: (event) => onClose(event as { code: number; reason: string }),
      },
    });
  }
}

/** Returns a port that was free a moment ago on 127.0.0.1. */
async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Live queues of the gateway's own user bound to the exchange. */
async function liveQueuesBoundTo(exchange: string): Promise<string[]> {
  const prefix = `queue/${testConfig().gatewayAccount}/live/`;
  const bindings = await management.listBindings();
  return bindings
    .filter((binding) => binding.source === exchange)
    .map((binding) => binding.destination)
    .filter((queue) => queue.startsWith(prefix));
}

/** Matches the management path of one RabbitMQ user. */
function userPath(username: string): RegExp {
  return new RegExp(`^/api/users/${encodeURIComponent(username)}$`);
}

/**
 * Waits until the proxy delays the request's broker call. Fails with the
 * response instead when the request ends before reaching the broker.
 */
async function untilHeld(
  held: ProxyRuleHandle,
  request: Promise<unknown>,
): Promise<void> {
  const ended = request.then((response) => {
    throw new Error(
      `the request ended before its broker call: ${JSON.stringify(response)}`,
    );
  });
  await Promise.race([held.matched(), ended]);
}

function deleteAccountLater(username: string): void {
  cleanup.add(async () => {
    await gql(
      helper,
      "mutation ($u: String!) { deleteAccount(username: $u) }",
      { u: username },
      adminToken,
    );
    await management.deleteUser(username).catch(() => undefined);
  });
}

describe("SHUTDOWN_GRACE_MS", () => {
  test("defaults to 10000", () => {
    expect(loadConfig({}).shutdownGraceMs).toBe(10_000);
  });

  test("read from the environment", () => {
    const config = loadConfig({ SHUTDOWN_GRACE_MS: "2500" });
    expect(config.shutdownGraceMs).toBe(2500);
  });

  test("zero rejected with the setting", () => {
    expect(() => loadConfig({ SHUTDOWN_GRACE_MS: "0" })).toThrow(ConfigError);
    expect(() => loadConfig({ SHUTDOWN_GRACE_MS: "0" })).toThrow(
      /SHUTDOWN_GRACE_MS is "0", expected an integer of at least 1/,
    );
  });
});

describe("SIGTERM with work in flight", () => {
  let gateway: GatewayProcess;
  let exchange: string;
  let account: string;
  let closeEvent: { code: number; reason: string } | undefined;
  let inFlight: Promise<GraphQLResponse>;
  let inFlightDone = false;
  let refusedWhileInFlight: boolean | undefined;
  let signalledAt = 0;
  let exit: { code: number | null; signal: string | null };
  let exitedAfterMs = 0;
  const graceMs = 10_000;

  beforeAll(async () => {
    gateway = await GatewayProcess.start(graceMs);
    exchange = `exchange/${uniqueName("test-shutdown")}/v1`;
    await declareTestExchange(helper, cleanup, exchange);

    const subscriber = gateway.wsClient(
      await tokenFor(uniqueEmail("subscriber")),
      (event) => {
        closeEvent ??= event;
      },
    );
    subscriber.subscribe(
      { query: MESSAGES, variables: { exchange } },
      {
        next: () => undefined,
        error: () => undefined,
        complete: () => undefined,
      },
    );
    await eventually(async () =>
      (await liveQueuesBoundTo(exchange)).length > 0 ? true : undefined,
    );

    account = uniqueName("shutdown");
    deleteAccountLater(account);
    const held = proxy.add({
      method: "PUT",
      path: userPath(account),
      delayMs: 2000,
    });
    inFlight = gateway.post(
      CREATE_ACCOUNT,
      { input: { username: account } },
      adminToken,
    );
    void inFlight.finally(() => {
      inFlightDone = true;
    });
    await untilHeld(held, inFlight);

    signalledAt = Date.now();
    gateway.child.kill("SIGTERM");
    refusedWhileInFlight = await eventually(async () => {
      const refused = await fetch(`${gateway.baseUrl}/healthz`).then(
        () => false,
        () => true,
      );
      return refused ? !inFlightDone : undefined;
    }, 10_000, 50);
    exit = await gateway.exited;
    exitedAfterMs = Date.now() - signalledAt;
  }, 120_000);

  test("new connections refused while draining", () => {
    expect(refusedWhileInFlight).toBe(true);
  });

  test("request in flight completes with 200", async () => {
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect(response.errors).toBeUndefined();
    expect(response.data?.createAccount.account.username).toBe(account);
  });

  test("account of the finished request is stored", async () => {
    const row = await helper.db.account.findUnique({
      where: { username: account },
    });
    expect(row).not.toBeNull();
    expect(await management.userExists(account)).toBe(true);
  });

  test("subscriber closed with 1001 and reason", () => {
    expect(closeEvent?.code).toBe(1001);
    expect(closeEvent?.reason).toMatch(/gateway is shutting down/);
  });

  test("process exits 0 within the grace", () => {
    expect(exit.code).toBe(0);
    expect(exit.signal).toBeNull();
    expect(exitedAfterMs).toBeLessThan(graceMs / 2);
  });

  test("shutdown logged as complete", () => {
    expect(gateway.messages()).toContain("shutdown complete");
  });

  test("no live queue left on the broker", async () => {
    const left = await eventually(async () => {
      const queues = await liveQueuesBoundTo(exchange);
      return queues.length === 0 ? queues : undefined;
    }, 10_000);
    expect(left).toEqual([]);
  });
});

describe("SIGTERM with a grace that runs out", () => {
  const graceMs = 300;
  const holdMs = 2000;
  let gateway: GatewayProcess;
  let account: string;
  let exit: { code: number | null; signal: string | null };
  let inFlight: Promise<GraphQLResponse | { failed: string }>;
  let heldUntil = 0;

  beforeAll(async () => {
    gateway = await GatewayProcess.start(graceMs);
    account = uniqueName("shutdown-cut");
    deleteAccountLater(account);
    const held = proxy.add({
      method: "PUT",
      path: userPath(account),
      delayMs: holdMs,
    });
    inFlight = gateway
      .post(CREATE_ACCOUNT, { input: { username: account } }, adminToken)
      .catch((error: Error) => ({ failed: error.message }));
    await untilHeld(held, inFlight);
    heldUntil = Date.now() + holdMs;

    gateway.child.kill("SIGTERM");
    exit = await gateway.exited;
  }, 120_000);

  test("process exits 1", () => {
    expect(exit.code).toBe(1);
  });

  test("timeout logged with the grace", () => {
    const line = gateway.messages().find((m) => /shutdown timed out/.test(m));
    expect(line).toContain(`${graceMs} ms`);
    expect(line).toContain("SHUTDOWN_GRACE_MS");
  });

  test("cut request fails on the client", async () => {
    // fetch reports a connection closed before the response as "fetch failed".
    expect(await inFlight).toEqual({ failed: "fetch failed" });
  });

  test("cut request leaves no account", async () => {
    // Waits until the proxy would have forwarded the held request.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, heldUntil - Date.now()) + 200),
    );
    const row = await helper.db.account.findUnique({
      where: { username: account },
    });
    expect(row).toBeNull();
    expect(await management.userExists(account)).toBe(false);
  });
});

describe("SIGTERM to npm start", () => {
  let gateway: GatewayProcess;
  let exit: { code: number | null; signal: string | null };
  let children: number[] = [];

  beforeAll(async () => {
    gateway = await GatewayProcess.start(10_000, true);
    // npm's children, so that a gateway npm leaves behind is still stopped.
    const { stdout } = await promisify(execFile)("pgrep", [
      "-P",
      String(gateway.child.pid),
    ]).catch(() => ({ stdout: "" }));
    children = stdout.split("\n").filter(Boolean).map(Number);
    cleanup.add(() => {
      for (const pid of children) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    });
    gateway.child.kill("SIGTERM");
    exit = await gateway.exited;
  }, 120_000);

  test("reaches the gateway process", async () => {
    await eventually(async () =>
      gateway.messages().includes("shutdown complete") ? true : undefined,
    );
    expect(gateway.messages()).toContain("shutdown complete");
  });

  test("port closed after npm exits", async () => {
    const closed = await eventually(async () => {
      const response = await fetch(`${gateway.baseUrl}/healthz`).catch(
        () => null,
      );
      return response === null ? true : undefined;
    }, 15_000);
    expect(closed).toBe(true);
    expect(exit.code).toBe(0);
  });
});
