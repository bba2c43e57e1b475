// The guardian: on every stats snapshot it adopts Pulse queues it has not
// seen, warns about queues above the warn size, records their recovery,
// deletes queues above the delete size unless they are unbounded, and
// notes queues that vanished. Thresholds compare the queue's `messages`
// (ready plus unacknowledged) strictly, as PulseGuardian does.
import type { Database, Queue as QueueRow } from "../db";
import { RateLimitedLog, type Logger } from "../logger";
import { isNotFound, type ManagementClient } from "../rabbitmq/management";
import { queueAccount } from "../services/pulse-names";
import type { StatsPoller, StatsSnapshot } from "../stats";
import type { GuardianEventLog } from "./events";
import type { GuardianLock } from "./lock";

export interface GuardianOptions {
  db: Database;
  management: ManagementClient;
  stats: StatsPoller;
  events: GuardianEventLog;
  logger: Logger;
  warnSize: number;
  deleteSize: number;
  /** Queues of the gateway's own live bridge are not guarded. */
  gatewayAccount: string;
  /** Without a lock the guardian always acts (a single instance). */
  lock?: GuardianLock;
}

type Thresholds = { warn: number; delete: number };

export class Guardian {
  private running: Promise<void> = Promise.resolve();
  private readonly onSnapshot = (snapshot: StatsSnapshot) => {
    this.running = this.running.then(() => this.checkSafely(snapshot));
  };
  private readonly errors: RateLimitedLog;

  constructor(private readonly options: GuardianOptions) {
    this.errors = new RateLimitedLog(options.logger);
  }

  start(): void {
    this.options.stats.on("snapshot", this.onSnapshot);
    this.options.logger.info(
      {
        warnSize: this.options.warnSize,
        deleteSize: this.options.deleteSize,
      },
      "guardian started",
    );
  }

  async stop(): Promise<void> {
    this.options.stats.off("snapshot", this.onSnapshot);
    await this.running;
    await this.options.lock?.release();
    this.options.logger.info("guardian stopped");
  }

  private async checkSafely(snapshot: StatsSnapshot): Promise<void> {
    try {
      if (this.options.lock && !(await this.options.lock.acquire())) return;
      await this.check(snapshot);
      this.errors.clear("check");
    } catch (error) {
      this.errors.error("check", { err: error }, "guardian pass failed");
    }
  }

  /** Runs one pass over a snapshot. */
  async check(snapshot: StatsSnapshot): Promise<void> {
    const rows = await this.options.db.queue.findMany();
    const rowByName = new Map(rows.map((row) => [row.name, row]));
    const seen: string[] = [];
    for (const [name, info] of snapshot.queues) {
      const account = this.guardedAccount(name);
      if (account === null) continue;
      seen.push(name);
      let row = rowByName.get(name);
      row ??= await this.adopt(name, account, info.durable, info.messages);
      if (info.messages === undefined) continue;
      await this.checkSize(row, info.messages);
    }
    await this.options.db.queue.updateMany({
      where: { name: { in: seen } },
      data: { lastSeenAt: new Date() },
    });
    await this.recordVanished(rows, snapshot);
  }

  private guardedAccount(name: string): string | null {
    const account = queueAccount(name);
    const live = `queue/${this.options.gatewayAccount}/live/`;
    if (account === null || name.startsWith(live)) return null;
    return account;
  }

  private async adopt(
    name: string,
    accountName: string,
    durable: boolean,
    size: number | undefined,
  ): Promise<QueueRow> {
    const { db, events } = this.options;
    const account = await db.account.findUnique({
      where: { username: accountName },
      select: { id: true },
    });
    const row = await db.queue.upsert({
      where: { name },
      create: { name, accountName, accountId: account?.id, durable },
      update: {},
    });
    await events.record({
      queue: name,
      account: accountName,
      kind: "ADOPTED",
      size: size ?? null,
      threshold: null,
    });
    return row;
  }

  private async checkSize(row: QueueRow, size: number): Promise<void> {
    const limits = this.thresholds(row);
    if (size > limits.delete && !row.unbounded) {
      await this.deleteQueue(row, size, limits.delete);
      return;
    }
    let warned = row.warned;
    if (size > limits.warn && !row.warned) {
      warned = true;
      await this.record(row, "WARNED", size, limits.warn);
    } else if (size <= limits.warn && row.warned) {
      warned = false;
      await this.record(row, "RECOVERED", size, limits.warn);
    }
    if (warned !== row.warned || size !== row.lastSize) {
      await this.options.db.queue.update({
        where: { id: row.id },
        data: { warned, lastSize: size },
      });
    }
  }

  private thresholds(row: QueueRow): Thresholds {
    return {
      warn: row.warnSize ?? this.options.warnSize,
      delete: row.deleteSize ?? this.options.deleteSize,
    };
  }

  private async deleteQueue(
    row: QueueRow,
    size: number,
    threshold: number,
  ): Promise<void> {
    try {
      await this.options.management.deleteQueue(row.name);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    await this.options.db.queue.deleteMany({ where: { id: row.id } });
    await this.record(row, "DELETED", size, threshold);
  }

  /** Rows of queues missing from a snapshot taken after they were seen. */
  private async recordVanished(
    rows: QueueRow[],
    snapshot: StatsSnapshot,
  ): Promise<void> {
    for (const row of rows) {
      if (snapshot.queues.has(row.name)) continue;
      if (row.lastSeenAt >= snapshot.startedAt) continue;
      const { count } = await this.options.db.queue.deleteMany({
        where: { id: row.id, lastSeenAt: { lt: snapshot.startedAt } },
      });
      if (count > 0) await this.record(row, "VANISHED", row.lastSize, null);
    }
  }

  private async record(
    row: QueueRow,
    kind: "WARNED" | "RECOVERED" | "DELETED" | "VANISHED",
    size: number | null,
    threshold: number | null,
  ): Promise<void> {
    await this.options.events.record({
      queue: row.name,
      account: row.accountName,
      kind,
      size,
      threshold,
    });
  }
}
