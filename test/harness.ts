// Shared test harness: a real gateway on port 0 against the local RabbitMQ
// and PostgreSQL, tokens, GraphQL over HTTP, a graphql-ws client that keeps
// every message, unique names, and one place for cleanup.
import "reflect-metadata";

import { randomBytes } from "node:crypto";
import vm from "node:vm";

import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";

import { signToken } from "../src/auth";
import { loadConfig, type Config } from "../src/config";
import { Guardian } from "../src/guardian";
import { createLogger, type Logger } from "../src/logger";
import { ManagementClient } from "../src/rabbitmq";
import { Gateway } from "../src/server";

export const TEST_SECRET = "test-secret-for-the-gateway-suite";
export const ADMIN_EMAIL = "admin@example.com";

export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL ??
  "postgresql://postgres@127.0.0.1:5432/pulse_gateway_test";

/** Settings for a test gateway; the guardian is off unless asked for. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  const base = loadConfig({
    ...process.env,
    DATABASE_URL: TEST_DATABASE_URL,
    JWT_SECRET: TEST_SECRET,
    JWT_JWKS_URL: "",
    ADMIN_EMAILS: ADMIN_EMAIL,
    PORT: "0",
    HOST: "127.0.0.1",
    GUARDIAN_ENABLED: "false",
  });
  return { ...base, ...overrides };
}

/**
 * Starts a gateway and waits until it is ready. Its logs are dropped
 * unless TEST_LOG_LEVEL is set or the test passes its own logger.
 */
export async function startGateway(
  overrides: Partial<Config> = {},
  logger: Logger = createLogger({
    level: process.env.TEST_LOG_LEVEL ?? "silent",
  }),
): Promise<Gateway> {
  const config = testConfig(overrides);
  const gateway = new Gateway(config, logger);
  await gateway.start();
  await gateway.ready(30_000);
  return gateway;
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

export function uniqueEmail(prefix = "user"): string {
  return `${uniqueName(prefix)}@example.com`;
}

export function tokenFor(
  email: string,
  options: { expiresIn?: string | number; secret?: string } = {},
): Promise<string> {
  return signToken(options.secret ?? TEST_SECRET, { email }, {
    expiresIn: options.expiresIn ?? "1h",
  });
}

export interface GraphQLResponse<T = Record<string, any>> {
  status: number;
  data?: T | null;
  errors?: { message: string; extensions?: Record<string, any> }[];
}

/** POSTs one operation and returns the HTTP status with the JSON body. */
export async function gql<T = Record<string, any>>(
  gateway: Gateway,
  query: string,
  variables: Record<string, unknown> = {},
  token?: string | null,
): Promise<GraphQLResponse<T>> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(gateway.url, {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as GraphQLResponse<T>;
  return { ...body, status: response.status };
}

/** Returns the error codes of a response, for one-line assertions. */
export function errorCodes(response: GraphQLResponse): string[] {
  return (response.errors ?? []).map((error) => error.extensions?.code);
}

export function wsClient(
  gateway: Gateway,
  token: string | null,
  onClose?: (event: { code: number; reason: string }) => void,
): Client {
  return createClient({
    url: gateway.url.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
    on: onClose
      ? { closed: (event) => onClose(event as { code: number; reason: string }) }
      : undefined,
  });
}

/**
 * A subscription whose every event is kept from the start, with a way to
 * wait for a count of them. The sink is attached before the subscribe
 * message goes out, so nothing delivered is missed.
 */
export class Collected<T = Record<string, any>> {
  readonly events: T[] = [];
  readonly errors: unknown[] = [];
  completed = false;
  private readonly waiters: (() => void)[] = [];
  private readonly unsubscribe: () => void;

  constructor(client: Client, query: string, variables: Record<string, unknown> = {}) {
    this.unsubscribe = client.subscribe<T>(
      { query, variables },
      {
        next: (value) => {
          if (value.errors) this.errors.push(...value.errors);
          if (value.data) this.events.push(value.data as T);
          this.notify();
        },
        error: (error) => {
          // graphql-ws hands an error message's errors over as an array.
          this.errors.push(...(Array.isArray(error) ? error : [error]));
          this.notify();
        },
        complete: () => {
          this.completed = true;
          this.notify();
        },
      },
    );
  }

  /** Waits until `done()` holds, or fails after timeoutMs. */
  async until(done: () => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms with ${this.events.length} events ` +
            `and errors ${JSON.stringify(this.errors)}`,
        );
      }
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  stop(): void {
    this.unsubscribe();
  }

  private notify(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}

/** Polls until check returns a value other than undefined. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 20_000,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Returns the test AMQP URL (AMQP_URL, so its vhost too) with another
 * user's credentials, to connect as a Pulse account.
 */
export function amqpUrlAs(username: string, password: string): string {
  const url = new URL(testConfig().amqpUrl);
  url.username = encodeURIComponent(username);
  url.password = encodeURIComponent(password);
  return url.toString();
}

/** Creates a management client with the gateway's credentials. */
export function brokerAdmin(): ManagementClient {
  const config = testConfig();
  return new ManagementClient(config.managementUrl, config.vhost);
}

/** Cleanup steps run in reverse order of registration, all in one place. */
export class Cleanup {
  private readonly steps: (() => Promise<unknown> | unknown)[] = [];

  add(step: () => Promise<unknown> | unknown): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw errors[0];
  }
}

/**
 * Opens a bare graphql-transport-ws socket, signs in and sends one
 * subscribe message, for tests that must drop or stall the socket in ways
 * the graphql-ws client does not allow.
 */
export async function rawSubscription(
  gateway: Gateway,
  token: string,
  query: string,
  variables: Record<string, unknown>,
): Promise<WebSocket> {
  const socket = new WebSocket(
    gateway.url.replace(/^http/, "ws"),
    "graphql-transport-ws",
  );
  await new Promise((resolve) => socket.once("open", resolve));
  socket.send(
    JSON.stringify({
      type: "connection_init",
      payload: { authorization: `Bearer ${token}` },
    }),
  );
  await new Promise((resolve) => socket.once("message", resolve));
  socket.send(
    JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }),
  );
  return socket;
}

/**
 * Creates an account through the API as the holder of `token`, fails the
 * test on any error, and deletes its RabbitMQ user at cleanup. Returns
 * the generated password.
 */
export async function createTestAccount(
  gateway: Gateway,
  cleanup: Cleanup,
  username: string,
  token: string,
): Promise<string> {
  const created = await gql<{ createAccount: { password: string } }>(
    gateway,
    `mutation ($u: String!) { createAccount(input: { username: $u }) { password } }`,
    { u: username },
    token,
  );
  expect(created.errors).toBeUndefined();
  cleanup.add(() => brokerAdmin().deleteUser(username).catch(() => undefined));
  return created.data!.createAccount.password;
}

/**
 * Declares a non-durable topic exchange for one test file and registers
 * its deletion with the file's cleanup.
 */
export async function declareTestExchange(
  gateway: Gateway,
  cleanup: Cleanup,
  name: string,
): Promise<void> {
  const channel = await gateway.amqp.createChannel();
  await channel.assertExchange(name, "topic", { durable: false });
  await channel.close();
  cleanup.add(async () => {
    const channel = await gateway.amqp.createChannel();
    await channel.deleteExchange(name);
    await channel.close();
  });
}

/**
 * Creates a guardian on the gateway's database, broker and event log with
 * the gateway's global thresholds, as `npm run guardian` would, so a test
 * can run passes itself.
 */
export function guardianFor(gateway: Gateway): Guardian {
  return new Guardian({
    db: gateway.db,
    management: gateway.management,
    stats: gateway.stats,
    events: gateway.guardianEvents,
    logger: gateway.logger,
    warnSize: gateway.config.guardian.warnSize,
    deleteSize: gateway.config.guardian.deleteSize,
    gatewayAccount: gateway.config.gatewayAccount,
  });
}

/** What reached the real process's last-resort handlers during a test. */
export interface ProcessFailures {
  unhandledRejections: unknown[];
  uncaughtExceptions: unknown[];
}

/**
 * Records unhandled rejections and uncaught exceptions of the real
 * process until cleanup runs. Jest gives each test file a copy of
 * `process`, whose listeners never see the real process's events; the
 * main context's `process` is the real one.
 */
export function trackProcessFailures(cleanup: Cleanup): ProcessFailures {
  const realProcess = vm.runInThisContext("process") as NodeJS.Process;
  const failures: ProcessFailures = {
    unhandledRejections: [],
    uncaughtExceptions: [],
  };
  const onRejection = (reason: unknown) => failures.unhandledRejections.push(reason);
  const onException = (error: Error) => failures.uncaughtExceptions.push(error);
  realProcess.on("unhandledRejection", onRejection);
  realProcess.on("uncaughtException", onException);
  cleanup.add(() => {
    realProcess.off("unhandledRejection", onRejection);
    realProcess.off("uncaughtException", onException);
  });
  return failures;
}
