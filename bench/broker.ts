// RabbitMQ's management API as the benchmark uses it: declaring and
// deleting its exchanges and counting the queues, consumers and channels
// that a server holds.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

import {
  MANAGEMENT_PASSWORD,
  MANAGEMENT_URL,
  MANAGEMENT_USER,
  VHOST,
} from "./settings";

const AMQP_PORT = 5672;

/** Time for the management API to catch up with new channels and consumers. */
const MANAGEMENT_LAG_MS = 6_000;

export interface BrokerFootprint {
  queues: number;
  consumers: number;
  channels: number;
  connections: number;
}

export class Broker {
  private readonly authorization =
    "Basic " +
    Buffer.from(`${MANAGEMENT_USER}:${MANAGEMENT_PASSWORD}`).toString("base64");

  async version(): Promise<string> {
    const overview = await this.get<{ rabbitmq_version?: string; product_version?: string }>(
      "/api/overview",
    );
    return overview.rabbitmq_version ?? overview.product_version ?? "unknown";
  }

  /** Declares a non-durable topic exchange, as the reference expects. */
  async declareExchange(name: string): Promise<void> {
    await this.call("PUT", this.exchangePath(name), {
      type: "topic",
      durable: false,
      auto_delete: false,
      internal: false,
      arguments: {},
    });
  }

  /** Deletes an exchange, treating a missing one as deleted. */
  async deleteExchange(name: string): Promise<void> {
    await this.call("DELETE", this.exchangePath(name), undefined, [404]);
  }

  /** Names of the queues bound to an exchange with one of `routingKeys`. */
  async boundQueues(exchange: string, routingKeys?: string[]): Promise<string[]> {
    const bindings = await this.get<
      { destination: string; destination_type: string; routing_key: string }[]
    >(`${this.exchangePath(exchange)}/bindings/source`);
    const queues = bindings
      .filter((binding) => binding.destination_type === "queue")
      .filter((binding) => !routingKeys || routingKeys.includes(binding.routing_key))
      .map((binding) => binding.destination);
    return [...new Set(queues)];
  }

  /**
   * Counts the queues bound to `exchange` with one of `routingKeys`, their
   * consumers, and the channels of the AMQP connections whose client ports
   * are `ports`. The management API learns of new channels and consumers
   * from events that it processes a few seconds late, so this waits for
   * one statistics interval (5 s by default) and then polls until two
   * readings a second apart agree.
   */
  async footprint(
    exchange: string,
    routingKeys: string[],
    ports: number[],
    timeoutMs = 20_000,
  ): Promise<BrokerFootprint> {
    const deadline = Date.now() + timeoutMs;
    await new Promise((resolve) => setTimeout(resolve, MANAGEMENT_LAG_MS));
    let previous: BrokerFootprint | null = null;
    for (;;) {
      const current = await this.readFootprint(exchange, routingKeys, ports);
      if (previous && sameFootprint(previous, current)) return current;
      if (Date.now() > deadline) return current;
      previous = current;
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  }

  private async readFootprint(
    exchange: string,
    routingKeys: string[],
    ports: number[],
  ): Promise<BrokerFootprint> {
    const queues = new Set(await this.boundQueues(exchange, routingKeys));
    // The channel and consumer lists, unlike the per-connection and
    // per-queue counts, do not wait for the next statistics interval.
    const consumers = await this.get<{ queue?: { name?: string } }[]>("/api/consumers");
    const channels = await this.get<{ connection_details?: { peer_port?: number } }[]>(
      "/api/channels?columns=name,connection_details",
    );
    const ownChannels = channels.filter((channel) =>
      ports.includes(channel.connection_details?.peer_port ?? -1),
    );
    return {
      queues: queues.size,
      consumers: consumers.filter((consumer) => queues.has(consumer.queue?.name ?? "")).length,
      channels: ownChannels.length,
      connections: ports.length,
    };
  }

  private async send(method: string, path: string, body?: unknown): Promise<Response> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await fetch(`${MANAGEMENT_URL}${path}`, {
          method,
          headers: {
            authorization: this.authorization,
            "content-type": "application/json",
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(15_000),
        });
      } catch (error) {
        if (attempt >= ATTEMPTS) {
          throw new Error(
            `${method} ${MANAGEMENT_URL}${path} failed ${ATTEMPTS} times: ` +
              `${(error as Error).message}. Check that the RabbitMQ management API is up.`,
            { cause: error },
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 1_000 * attempt));
      }
    }
  }

  private exchangePath(name: string): string {
    return `/api/exchanges/${encodeURIComponent(VHOST)}/${encodeURIComponent(name)}`;
  }

  private async get<T>(path: string, allowed: number[] = []): Promise<T> {
    return (await this.call("GET", path, undefined, allowed)) as T;
  }

  private async call(
    method: string,
    path: string,
    body?: unknown,
    allowed: number[] = [],
  ): Promise<unknown> {
    const response = await this.send(method, path, body);
    if (allowed.includes(response.status)) return null;
    if (!response.ok) {
      throw new Error(
        `${method} ${path} failed with HTTP ${response.status}: ` +
          `${(await response.text()).slice(0, 300)}`,
      );
    }
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }
}

/** Attempts per management API request, so that a refused connection is retried. */
const ATTEMPTS = 3;

function sameFootprint(a: BrokerFootprint, b: BrokerFootprint): boolean {
  return (
    a.queues === b.queues &&
    a.consumers === b.consumers &&
    a.channels === b.channels &&
    a.connections === b.connections
  );
}

/**
 * Returns the local ports of a process's TCP connections to the AMQP port,
 * by matching the socket inodes under /proc/PID/fd with /proc/net/tcp and
 * /proc/net/tcp6 (Linux only).
 */
export function amqpClientPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed while listing
    }
    const match = /^socket:\[(\d+)\]$/.exec(target);
    if (match) inodes.add(match[1]);
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let lines: string[];
    try {
      lines = readFileSync(table, "utf8").trim().split("\n").slice(1);
    } catch {
      continue;
    }
    for (const line of lines) {
      const columns = line.trim().split(/\s+/);
      const [, local, remote] = columns;
      const inode = columns[9];
      if (!inodes.has(inode)) continue;
      const remotePort = parseInt(remote.split(":")[1], 16);
      if (remotePort === AMQP_PORT) ports.push(parseInt(local.split(":")[1], 16));
    }
  }
  return ports;
}
