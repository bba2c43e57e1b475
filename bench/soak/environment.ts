// The soak's own database and vhost, made afresh at the start and removed
// at the end, and the broker restarts of the run.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

import { Client } from "pg";

import { ManagementClient } from "../../src/rabbitmq";
import { DATABASE, VHOST, type SoakOptions } from "./options";

const run = promisify(execFile);

/** Address of the soak database, on the server of `postgresUrl`. */
export function soakDatabaseUrl(options: SoakOptions): string {
  const url = new URL(options.postgresUrl);
  url.pathname = `/${DATABASE}`;
  return url.toString();
}

/** AMQP address of the soak vhost, for the gateway and the publisher. */
export function soakAmqpUrl(options: SoakOptions): string {
  const url = new URL(options.amqpUrl);
  url.pathname = `/${encodeURIComponent(VHOST)}`;
  return url.toString();
}

/** Drops the soak database if it exists and creates it empty. */
export async function recreateDatabase(options: SoakOptions): Promise<void> {
  await withServer(options, async (client) => {
    await client.query(`DROP DATABASE IF EXISTS "${DATABASE}" WITH (FORCE)`);
    await client.query(`CREATE DATABASE "${DATABASE}"`);
  });
}

export async function dropDatabase(options: SoakOptions): Promise<void> {
  await withServer(options, (client) =>
    client.query(`DROP DATABASE IF EXISTS "${DATABASE}" WITH (FORCE)`),
  );
}

async function withServer(
  options: SoakOptions,
  work: (client: Client) => Promise<unknown>,
): Promise<void> {
  const client = new Client({ connectionString: options.postgresUrl });
  await client.connect();
  try {
    await work(client);
  } finally {
    await client.end();
  }
}

/**
 * The management API calls that the gateway's own client lacks: vhosts and
 * the users with rights on one.
 */
export class VhostAdmin {
  readonly management: ManagementClient;
  private readonly baseUrl: string;
  private readonly authorization: string;
  readonly gatewayUser: string;

  constructor(options: SoakOptions) {
    this.management = new ManagementClient(options.managementUrl, VHOST);
    const url = new URL(options.managementUrl);
    this.authorization =
      "Basic " +
      Buffer.from(
        `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`,
      ).toString("base64");
    url.username = "";
    url.password = "";
    this.baseUrl = url.toString().replace(/\/$/, "");
    this.gatewayUser = decodeURIComponent(
      new URL(options.amqpUrl).username || "guest",
    );
  }

  /** Deletes the soak vhost with its users, then creates it empty. */
  async recreate(): Promise<void> {
    await this.remove();
    await this.call("PUT", `/api/vhosts/${VHOST}`, {});
    await this.management.setPermissions(this.gatewayUser, {
      configure: ".*",
      write: ".*",
      read: ".*",
    });
  }

  /**
   * Deletes every user with rights on the soak vhost, except the gateway's
   * own, and the vhost with its queues, exchanges and bindings.
   */
  async remove(): Promise<void> {
    const exists = await this.call("GET", `/api/vhosts/${VHOST}`, undefined, [404]);
    if (exists === null) return;
    for (const user of await this.usersWithRights()) {
      await this.call("DELETE", `/api/users/${encodeURIComponent(user)}`, undefined, [404]);
    }
    await this.call("DELETE", `/api/vhosts/${VHOST}`, undefined, [404]);
  }

  /** Users with permissions on the soak vhost, the gateway's own excluded. */
  async usersWithRights(): Promise<string[]> {
    const permissions = (await this.call(
      "GET",
      `/api/vhosts/${VHOST}/permissions`,
    )) as { user: string }[];
    return permissions
      .map((permission) => permission.user)
      .filter((user) => user !== this.gatewayUser);
  }

  private async call(
    method: string,
    path: string,
    body?: unknown,
    allowed: number[] = [],
  ): Promise<unknown> {
    const response = await fetch(this.baseUrl + path, {
      method,
      headers: {
        authorization: this.authorization,
        "content-type": "application/json",
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    if (allowed.includes(response.status)) return null;
    if (!response.ok) {
      throw new Error(
        `${method} ${this.baseUrl}${path} failed with HTTP ` +
          `${response.status}: ${(await response.text()).slice(0, 300)}`,
      );
    }
    const text = await response.text();
    return text ? JSON.parse(text) : {};
  }
}

/**
 * Restarts the RabbitMQ application of this machine with rabbitmqctl, as
 * an operator would: stop_app, start_app, then await_startup. Returns the
 * time it took, in milliseconds.
 */
export async function restartBroker(): Promise<number> {
  const started = Date.now();
  for (const step of ["stop_app", "start_app", "await_startup"]) {
    await run("rabbitmqctl", [step], { timeout: 120_000 });
  }
  return Date.now() - started;
}
