// The one stats poller: reads every queue and binding of the vhost from the
// management API at an interval and keeps the latest snapshot. Queries, the
// guardian and subscriptions read the snapshot, so load on the broker does
// not grow with the number of clients.
import { EventEmitter } from "node:events";

import { RateLimitedLog, type Logger } from "../logger";
import type {
  BindingInfo,
  ManagementClient,
  QueueInfo,
} from "../rabbitmq/management";

export interface StatsSnapshot {
  /** When the poll began; anything created later may be missing from it. */
  startedAt: Date;
  takenAt: Date;
  queues: Map<string, QueueInfo>;
  /** Bindings of queues to exchanges, by queue name. */
  bindings: Map<string, BindingInfo[]>;
}

export interface StatsPollerOptions {
  management: ManagementClient;
  intervalMs: number;
  logger: Logger;
  /** Maximum delay between failed polls; doubles from intervalMs (60000). */
  maxBackoffMs?: number;
}

interface StatsPollerEvents {
  snapshot: [StatsSnapshot];
  error: [Error];
}

export class StatsPoller extends EventEmitter<StatsPollerEvents> {
  private snapshot: StatsSnapshot | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private inFlight: Promise<StatsSnapshot> | null = null;
  private failures = 0;
  private readonly errors: RateLimitedLog;

  constructor(private readonly options: StatsPollerOptions) {
    super();
    // Every open queueStats subscription adds a listener.
    this.setMaxListeners(0);
    this.errors = new RateLimitedLog(options.logger);
  }

  latest(): StatsSnapshot | null {
    return this.snapshot;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.inFlight?.catch(() => undefined);
  }

  /** Polls now (sharing a poll already under way) and returns the result. */
  refresh(): Promise<StatsSnapshot> {
    this.inFlight ??= this.poll().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => void this.tick(), delayMs);
  }

  private async tick(): Promise<void> {
    try {
      await this.refresh();
      this.failures = 0;
      this.errors.clear("poll");
      this.schedule(this.options.intervalMs);
    } catch (error) {
      this.failures += 1;
      const delayMs = this.backoffMs();
      this.errors.error(
        "poll",
        { err: error, failures: this.failures, retryInMs: delayMs },
        "stats poll failed",
      );
      if (this.listenerCount("error") > 0) this.emit("error", error as Error);
      this.schedule(delayMs);
    }
  }

  private backoffMs(): number {
    const max = this.options.maxBackoffMs ?? 60_000;
    const base = this.options.intervalMs * 2 ** Math.min(this.failures, 10);
    return Math.min(base, max);
  }

  private async poll(): Promise<StatsSnapshot> {
    const startedAt = new Date();
    const [queues, bindings] = await Promise.all([
      this.options.management.listQueues(),
      this.options.management.listBindings(),
    ]);
    const snapshot: StatsSnapshot = {
      startedAt,
      takenAt: new Date(),
      queues: new Map(queues.map((queue) => [queue.name, queue])),
      bindings: groupQueueBindings(bindings),
    };
    this.snapshot = snapshot;
    this.emit("snapshot", snapshot);
    return snapshot;
  }
}

function groupQueueBindings(all: BindingInfo[]): Map<string, BindingInfo[]> {
  const byQueue = new Map<string, BindingInfo[]>();
  for (const binding of all) {
    // Every queue has an implicit binding to the default exchange "".
    if (binding.destination_type !== "queue" || binding.source === "") {
      continue;
    }
    const list = byQueue.get(binding.destination) ?? [];
    list.push(binding);
    byQueue.set(binding.destination, list);
  }
  return byQueue;
}
