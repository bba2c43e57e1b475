// /readyz and /metrics: what the gateway reaches and what it holds.
import { describeDatabaseProbeError } from "./dependencies";
import type { Gateway } from "./gateway";
import { renderMetrics, type MetricSample } from "./metrics";

export interface ReadinessReport {
  ready: boolean;
  state: string;
  checks: Record<string, { ok: boolean; error?: string }>;
}

const CHECK_TIMEOUT_MS = 3000;

export async function checkReadiness(
  gateway: Gateway,
): Promise<ReadinessReport> {
  const [database, management] = await Promise.all([
    runCheck(
      () => gateway.db.$queryRaw`SELECT 1`,
      (error) =>
        describeDatabaseProbeError(gateway.config.databaseUrl, error),
    ),
    runCheck(() =>
      gateway.management.checkVhost(gateway.config.gatewayAccount),
    ),
  ]);
  const amqp =
    gateway.amqp.state === "connected"
      ? { ok: true }
      : {
          ok: false,
          error:
            `AMQP is ${gateway.amqp.state} at ${gateway.amqp.address}; ` +
            `start RabbitMQ or check AMQP_URL.`,
        };
  const checks = { database, management, amqp };
  // Every dependency may be reachable while the gateway still migrates its
  // database, and so rejects GraphQL requests, or while it drains to stop.
  const ready =
    gateway.state === "ready" &&
    Object.values(checks).every((check) => check.ok);
  return { ready, state: gateway.state, checks };
}

async function runCheck(
  probe: () => Promise<unknown>,
  describe: (error: unknown) => string = (error) => (error as Error).message,
): Promise<{ ok: boolean; error?: string }> {
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) =>
        setTimeout(
          () => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`)),
          CHECK_TIMEOUT_MS,
        ).unref(),
      ),
    ]);
    return { ok: true };
  } catch (error) {
    return { ok: false, error: describe(error) };
  }
}

export function collectMetrics(
  gateway: Gateway,
  ws: { connections(): number },
): string {
  const live = gateway.live.stats();
  const source = gateway.liveSource.stats();
  const snapshot = gateway.stats.latest();
  const samples: MetricSample[] = [
    gauge("pulse_gateway_websocket_connections", "Open graphql-ws sockets.", ws.connections()),
    gauge("pulse_gateway_live_bindings", "Live bindings with a broker queue.", live.bindings),
    gauge("pulse_gateway_live_subscribers", "Open messages subscriptions.", live.subscribers),
    gauge(
      "pulse_gateway_live_queues",
      "Live queues with their channel and consumer on the broker.",
      source.bindings - source.suspended,
    ),
    gauge(
      "pulse_gateway_live_queues_suspended",
      "Live queues waiting for the AMQP connection to come back.",
      source.suspended,
    ),
    {
      name: "pulse_gateway_live_lost_messages_total",
      help: "Messages dropped from full subscriber buffers.",
      type: "counter",
      value: live.lost,
    },
    gauge("pulse_gateway_amqp_connected", "1 while AMQP is connected.", gateway.amqp.state === "connected" ? 1 : 0),
    gauge("pulse_gateway_broker_queues", "Queues in the latest stats snapshot.", snapshot?.queues.size ?? 0),
    gauge(
      "pulse_gateway_stats_snapshot_timestamp_seconds",
      "Time of the latest stats snapshot.",
      snapshot ? snapshot.takenAt.getTime() / 1000 : 0,
    ),
    gauge(
      "pulse_gateway_guardian_acting",
      "1 while this gateway's guardian holds the lock and acts.",
      gateway.guardian?.acting ? 1 : 0,
    ),
    ...processMemory(),
  ];
  return renderMetrics(samples);
}

/** Memory gauges under the names of Prometheus's Node.js client. */
function processMemory(): MetricSample[] {
  const memory = process.memoryUsage();
  return [
    gauge("process_resident_memory_bytes", "Resident set size in bytes.", memory.rss),
    gauge("nodejs_heap_size_used_bytes", "V8 heap in use, in bytes.", memory.heapUsed),
    gauge("nodejs_heap_size_total_bytes", "V8 heap allocated, in bytes.", memory.heapTotal),
  ];
}

function gauge(name: string, help: string, value: number): MetricSample {
  return { name, help, type: "gauge", value };
}
