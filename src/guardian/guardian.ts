// The guardian. On every stats snapshot it adopts Pulse queues it has not
// seen and reconciles their bindings and the accounts' RabbitMQ users with
// the database. It warns about queues above their warn size, records
// recovery, and deletes queues above their delete size unless they are
// unbounded. It also notes queues that lost their consumer or vanished,
// and samples queue history.
// Thresholds compare the queue's `messages` (ready plus unacknowledged)
// strictly, as PulseGuardian does.
import type { Database } from "../db";
import { RateLimitedLog, type Logger } from "../logger";
import type { ManagementClient, QueueInfo } from "../rabbitmq/management";
import { effectiveThresholds } from "../services/policies";
import { queueAccount } from "../services/pulse-names";
import type { StatsPoller, StatsSnapshot } from "../stats";
import {
  EventDispatcher,
  loadAccountPolicies,
  loadQueueRows,
  type AccountPolicyRow,
  type QueueCheck,
  type QueueRow,
} from "./dispatch";
import type { GuardianEventLog } from "./events";
import { classifyFailure, describeFailure, type FailureKind } from "./failures";
import type { QueueHistory } from "./history";
import type { GuardianLock } from "./lock";
import type { Notifier, Recipients } from "./notifier";
import { QueueChecks } from "./queue-checks";
import { Reconciler } from "./reconcile";

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
  /** Time without a consumer before CONSUMER_GONE (600000 ms). */
  consumerGoneMs?: number;
  /** Sends notices; without it, events are only stored and published. */
  notifier?: Notifier;
  /** Receives admin notices such as POLL_FAILED and MISNAMED_QUEUE. */
  adminRecipients?: Recipients;
  /** Stores queue samples at every pass, when set. */
  history?: QueueHistory;
  /** Maximum delay between passes after failed ones (60000 ms). */
  maxBackoffMs?: number;
}

interface PassState {
  rowByName: Map<string, QueueRow>;
  policyByAccount: Map<string, AccountPolicyRow>;
}

const DOWNSAMPLE_EVERY_MS = 60_000;

export class Guardian {
  private running: Promise<void> = Promise.resolve();
  private readonly onSnapshot = (snapshot: StatsSnapshot) => {
    this.running = this.running.then(() => this.checkSafely(snapshot));
  };
  private readonly onPollError = (error: Error) => {
    this.running = this.running.then(() => this.onFailure(error, "poll"));
  };
  private readonly errors: RateLimitedLog;
  private readonly activeFailures = new Set<FailureKind>();
  private failedPasses = 0;
  private retryAt = 0;
  private lastDownsampleAt = 0;
  private actingNow = false;
  private readonly dispatcher: EventDispatcher;
  private readonly checks: QueueChecks;
  private readonly reconciler: Reconciler;

  constructor(private readonly options: GuardianOptions) {
    this.errors = new RateLimitedLog(options.logger);
    this.dispatcher = new EventDispatcher(options);
    this.checks = new QueueChecks(options, this.dispatcher);
    this.reconciler = new Reconciler(options, this.dispatcher);
  }

  /** True while this guardian holds the lock (or needs none) and acts. */
  get acting(): boolean {
    return this.actingNow;
  }

  start(): void {
    this.options.stats.on("snapshot", this.onSnapshot);
    this.options.stats.on("error", this.onPollError);
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
    this.options.stats.off("error", this.onPollError);
    await this.running;
    await this.options.notifier?.drain();
    await this.options.lock?.release();
    this.actingNow = false;
    this.options.logger.info("guardian stopped");
  }

  /** Takes the lock if there is one; returns whether this guardian acts. */
  private async takeLock(): Promise<boolean> {
    const lock = this.options.lock;
    this.actingNow = lock ? await lock.acquire() : true;
    return this.actingNow;
  }

  private async checkSafely(snapshot: StatsSnapshot): Promise<void> {
    if (Date.now() < this.retryAt) return;
    const wasActing = this.actingNow;
    if (!(await this.takeLock())) {
      // The lock's database is away, so the guardian that acted last
      // raises the notice.
      // NOTE: no test covers this path, because it needs the lock's
      // connection to fail while the test's database stays up.
      const lockError = this.options.lock?.lastError;
      if (wasActing && lockError) {
        await this.onFailure(lockError, "pass", "DATABASE", true);
      }
      return;
    }
    try {
      await this.check(snapshot);
      this.onSuccess();
    } catch (error) {
      await this.onFailure(error as Error, "pass");
    }
  }

  private onSuccess(): void {
    this.errors.clear("check");
    this.failedPasses = 0;
    this.retryAt = 0;
    if (this.activeFailures.size > 0) {
      this.options.logger.info(
        { failures: [...this.activeFailures] },
        "guardian checks succeed again",
      );
      this.activeFailures.clear();
    }
  }

  /**
   * Logs a failed poll or pass, backs off after a failed pass, and raises
   * one admin notice per kind of failure until a pass succeeds.
   */
  private async onFailure(
    error: Error,
    source: "poll" | "pass",
    kind = classifyFailure(error, source),
    actedLast = this.actingNow,
  ): Promise<void> {
    if (source === "pass") {
      this.failedPasses += 1;
      const max = this.options.maxBackoffMs ?? 60_000;
      const delayMs = Math.min(
        1000 * 2 ** Math.min(this.failedPasses, 10),
        max,
      );
      this.retryAt = Date.now() + delayMs;
      this.errors.error(
        "check",
        { err: error, kind, failures: this.failedPasses, retryInMs: delayMs },
        "guardian pass failed",
      );
    }
    if (this.activeFailures.has(kind)) return;
    // Only the acting guardian raises notices. A guardian that cannot
    // reach the lock's database relies on having acted last.
    const acting = kind === "DATABASE" ? actedLast : await this.takeLock();
    if (!acting) return;
    this.activeFailures.add(kind);
    await this.dispatcher.emit(
      {
        queue: "",
        account: "",
        kind: "POLL_FAILED",
        size: null,
        threshold: null,
        detail: `${kind}: ${describeFailure(kind)} (${error.message})`,
      },
      null,
    );
  }

  /** Runs one pass over a snapshot. */
  async check(snapshot: StatsSnapshot): Promise<void> {
    const state = await this.loadState();
    const seen: QueueInfo[] = [];
    const misnamed: string[] = [];
    for (const [name, info] of snapshot.queues) {
      const account = queueAccount(name);
      if (account === null) {
        // Exclusive queues end with their connection, so only lasting
        // queues outside the convention are reported.
        if (!info.exclusive) misnamed.push(name);
        continue;
      }
      if (this.isLiveQueue(name)) continue;
      seen.push(info);
      await this.checkQueue(snapshot, state, name, account, info);
    }
    await this.options.db.queue.updateMany({
      where: { name: { in: seen.map((info) => info.name) } },
      data: { lastSeenAt: new Date() },
    });
    await this.recordVanished([...state.rowByName.values()], snapshot);
    await this.reconciler.reportMisnamed(misnamed);
    await this.reconciler.reconcileAccounts();
    await this.recordHistory(snapshot, seen);
  }

  private isLiveQueue(name: string): boolean {
    return name.startsWith(`queue/${this.options.gatewayAccount}/live/`);
  }

  private async loadState(): Promise<PassState> {
    const [rows, policies] = await Promise.all([
      loadQueueRows(this.options.db),
      loadAccountPolicies(this.options.db),
    ]);
    return {
      rowByName: new Map(rows.map((row) => [row.name, row])),
      policyByAccount: new Map(
        policies.map((policy) => [policy.account.username, policy]),
      ),
    };
  }

  private async checkQueue(
    snapshot: StatsSnapshot,
    state: PassState,
    name: string,
    account: string,
    info: QueueInfo,
  ): Promise<void> {
    const row =
      state.rowByName.get(name) ??
      (await this.adopt(name, account, info.durable, info.messages));
    // A client deleted the queue since the snapshot; nothing to check.
    if (row === null) return;
    const bindings = await this.reconciler.syncBindings(row, snapshot);
    // A queue whose statistics are missing is skipped, not read as empty.
    if (info.messages === undefined) return;
    const policy = state.policyByAccount.get(account);
    const check: QueueCheck = {
      row,
      bindings,
      policy,
      size: info.messages,
      thresholds: effectiveThresholds(row, policy, this.options),
    };
    if (await this.checks.checkSize(check)) return;
    await this.checks.checkConsumers(check, info.consumers);
  }

  private async adopt(
    name: string,
    accountName: string,
    durable: boolean,
    size: number | undefined,
  ): Promise<QueueRow | null> {
    const { db } = this.options;
    const account = await db.account.findUnique({
      where: { username: accountName },
      select: { id: true },
    });
    // createMany with skipDuplicates returns 0 when the row exists, for
    // example from a createQueue that committed after the pass began.
    const { count } = await db.queue.createMany({
      data: [{ name, accountName, accountId: account?.id, durable }],
      skipDuplicates: true,
    });
    const row = await db.queue.findUnique({
      where: { name },
      include: { bindings: true },
    });
    if (count === 0 || row === null) return row;
    await this.dispatcher.emit(
      {
        queue: name,
        account: accountName,
        kind: "ADOPTED",
        size: size ?? null,
        threshold: null,
      },
      null,
    );
    return row;
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
      if (count === 0) continue;
      await this.dispatcher.emit(
        {
          queue: row.name,
          account: row.accountName,
          kind: "VANISHED",
          size: row.lastSize,
          threshold: null,
        },
        null,
      );
    }
  }

  private async recordHistory(
    snapshot: StatsSnapshot,
    queues: QueueInfo[],
  ): Promise<void> {
    const history = this.options.history;
    if (!history) return;
    await history.record(snapshot.takenAt, queues);
    if (Date.now() - this.lastDownsampleAt < DOWNSAMPLE_EVERY_MS) return;
    await history.downsample();
    this.lastDownsampleAt = Date.now();
  }
}
