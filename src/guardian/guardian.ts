// The guardian. On every stats snapshot it adopts Pulse queues it has not
// seen and reconciles their bindings and the accounts' RabbitMQ users with
// the database. It warns about queues above their warn size, records
// recovery, and deletes queues above their delete size unless they are
// unbounded. It also notes queues that lost their consumer or vanished,
// and samples queue history.
// Thresholds compare the queue's `messages` (ready plus unacknowledged)
// strictly, as PulseGuardian does.
import type { Database, GuardianEventKind } from "../db";
import { RateLimitedLog, type Logger } from "../logger";
import {
  isNotFound,
  type ManagementClient,
  type QueueInfo,
} from "../rabbitmq/management";
import { effectiveThresholds, type Thresholds } from "../services/policies";
import { queueAccount } from "../services/pulse-names";
import { policyAccount } from "../services/queue-limits";
import type { StatsPoller, StatsSnapshot } from "../stats";
import type { GuardianEventLog } from "./events";
import {
  classifyFailure,
  describeFailure,
  type FailureKind,
} from "./failures";
import type { QueueHistory } from "./history";
import type { GuardianLock } from "./lock";
import {
  ADMIN_NOTICE_KINDS,
  buildNotice,
  OWNER_NOTICE_KINDS,
  type NoticeBinding,
} from "./notices";
import type { Notifier, Recipients } from "./notifier";
import { reconcileBindings, reconcileUsers } from "./reconcile";

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

type QueueRow = NonNullable<
  Awaited<ReturnType<typeof loadQueueRows>>
>[number];

type AccountPolicyRow = Awaited<ReturnType<typeof loadAccountPolicies>>[number];

interface PassState {
  rowByName: Map<string, QueueRow>;
  policyByAccount: Map<string, AccountPolicyRow>;
}

/** One queue being checked, with what the notices about it need. */
interface QueueCheck {
  row: QueueRow;
  bindings: NoticeBinding[];
  thresholds: Thresholds;
  policy: AccountPolicyRow | undefined;
  size: number;
}

interface EventFacts {
  queue: string;
  account: string;
  kind: GuardianEventKind;
  size: number | null;
  threshold: number | null;
  detail?: string | null;
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

  constructor(private readonly options: GuardianOptions) {
    this.errors = new RateLimitedLog(options.logger);
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
      if (wasActing && this.options.lock?.failed) {
        await this.onFailure(new Error("guardian lock query failed"), "pass");
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
  private async onFailure(error: Error, source: "poll" | "pass"): Promise<void> {
    const kind = classifyFailure(error, source);
    if (source === "pass") {
      this.failedPasses += 1;
      const max = this.options.maxBackoffMs ?? 60_000;
      const delayMs = Math.min(1000 * 2 ** Math.min(this.failedPasses, 10), max);
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
    const acting = kind === "DATABASE" ? this.actingNow : await this.takeLock();
    if (!acting) return;
    this.activeFailures.add(kind);
    await this.emit(
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
    await this.reportMisnamed(misnamed);
    await this.reconcileAccounts();
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
    const bindings = await this.syncBindings(row, snapshot);
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
    if (await this.checkSize(check)) return;
    await this.checkConsumers(check, info.consumers);
  }

  private async adopt(
    name: string,
    accountName: string,
    durable: boolean,
    size: number | undefined,
  ): Promise<QueueRow> {
    const { db } = this.options;
    const account = await db.account.findUnique({
      where: { username: accountName },
      select: { id: true },
    });
    const row = await db.queue.upsert({
      where: { name },
      create: { name, accountName, accountId: account?.id, durable },
      update: {},
      include: { bindings: true },
    });
    await this.emit(
      { queue: name, account: accountName, kind: "ADOPTED", size: size ?? null, threshold: null },
      null,
    );
    return row;
  }

  private async syncBindings(
    row: QueueRow,
    snapshot: StatsSnapshot,
  ): Promise<NoticeBinding[]> {
    const changes = await reconcileBindings(
      this.options.db,
      row.id,
      row.bindings,
      snapshot.bindings.get(row.name) ?? [],
      snapshot.startedAt,
    );
    const base = { queue: row.name, account: row.accountName, size: null, threshold: null };
    for (const binding of changes.added) {
      await this.emit({ ...base, kind: "BINDING_ADDED", detail: describeBinding(binding) }, null);
    }
    for (const binding of changes.removed) {
      await this.emit({ ...base, kind: "BINDING_REMOVED", detail: describeBinding(binding) }, null);
    }
    return changes.current;
  }

  /** Warns, records recovery or deletes; returns true if it deleted. */
  private async checkSize(check: QueueCheck): Promise<boolean> {
    const { row, size, thresholds } = check;
    if (size > thresholds.deleteSize && !row.unbounded) {
      await this.deleteQueue(check);
      return true;
    }
    let warned = row.warned;
    if (size > thresholds.warnSize && !row.warned) {
      warned = true;
      await this.emitAboutQueue(check, "WARNED", thresholds.warnSize);
    } else if (size <= thresholds.warnSize && row.warned) {
      warned = false;
      await this.emitAboutQueue(check, "RECOVERED", thresholds.warnSize);
    }
    if (warned !== row.warned || size !== row.lastSize) {
      await this.options.db.queue.update({
        where: { id: row.id },
        data: { warned, lastSize: size },
      });
    }
    return false;
  }

  private async deleteQueue(check: QueueCheck): Promise<void> {
    const { row, thresholds } = check;
    try {
      await this.options.management.deleteQueue(row.name);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    await this.options.db.queue.deleteMany({ where: { id: row.id } });
    // A burst that crossed both thresholds between two passes gets only
    // this notice, whose detail states it, and no WARNED notice first.
    const detail = row.warned
      ? null
      : `passed both the warn size (${thresholds.warnSize}) and the delete ` +
        `size (${thresholds.deleteSize}) since the previous check`;
    await this.emitAboutQueue(check, "DELETED", thresholds.deleteSize, detail);
  }

  /**
   * Sends CONSUMER_GONE once a queue has held messages without a consumer
   * for consumerGoneMs, and rearms when a consumer comes back or the queue
   * empties.
   */
  private async checkConsumers(
    check: QueueCheck,
    consumers: number | undefined,
  ): Promise<void> {
    if (consumers === undefined) return;
    const { row, size } = check;
    const now = new Date();
    if (consumers > 0 || size === 0) {
      if (row.noConsumerSince === null) return;
      await this.options.db.queue.update({
        where: { id: row.id },
        data: { noConsumerSince: null, consumerGoneAt: null },
      });
      return;
    }
    const since = row.noConsumerSince ?? now;
    const limitMs = this.options.consumerGoneMs ?? 600_000;
    const due = row.consumerGoneAt === null && now.getTime() - since.getTime() >= limitMs;
    if (row.noConsumerSince === null || due) {
      await this.options.db.queue.update({
        where: { id: row.id },
        data: { noConsumerSince: since, consumerGoneAt: due ? now : undefined },
      });
    }
    if (!due) return;
    const minutes = Math.round((now.getTime() - since.getTime()) / 60_000);
    await this.emitAboutQueue(
      check,
      "CONSUMER_GONE",
      null,
      `no consumer since ${since.toISOString()} (${minutes} min) while ` +
        `holding ${size} messages`,
    );
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
      await this.emit(
        { queue: row.name, account: row.accountName, kind: "VANISHED", size: row.lastSize, threshold: null },
        null,
      );
    }
  }

  /** Reports each queue outside the convention once; never deletes it. */
  private async reportMisnamed(names: string[]): Promise<void> {
    if (names.length === 0) return;
    const reported = await this.options.db.guardianEvent.findMany({
      where: { kind: "MISNAMED_QUEUE", queueName: { in: names } },
      select: { queueName: true },
      distinct: ["queueName"],
    });
    const done = new Set(reported.map((event) => event.queueName));
    for (const name of names) {
      if (done.has(name)) continue;
      await this.emit(
        {
          queue: name,
          account: "",
          kind: "MISNAMED_QUEUE",
          size: null,
          threshold: null,
          detail: 'the name does not follow "queue/<account>/<name>"',
        },
        null,
      );
    }
  }

  /** Marks accounts whose RabbitMQ user was deleted outside the gateway. */
  private async reconcileAccounts(): Promise<void> {
    await this.removeOrphanPolicies();
    const { db, management } = this.options;
    if ((await db.account.count()) === 0) return;
    const since = new Date();
    const users = await management.listUserNames();
    const changes = await reconcileUsers(db, users, since);
    for (const account of changes.missing) {
      await this.emit(
        {
          queue: "",
          account,
          kind: "USER_MISSING",
          size: null,
          threshold: null,
          detail: `RabbitMQ user "${account}" no longer exists`,
        },
        null,
      );
    }
    for (const account of changes.returned) {
      this.options.logger.info({ account }, "RabbitMQ user of account is back");
    }
  }

  /** Deletes the queue-limits policies of accounts that no longer exist. */
  private async removeOrphanPolicies(): Promise<void> {
    const { db, management, logger } = this.options;
    const policies = await management.listPolicies();
    const owned = policies.filter((p) => policyAccount(p.name) !== null);
    if (owned.length === 0) return;
    const known = await db.account.findMany({
      where: { username: { in: owned.map((p) => policyAccount(p.name)!) } },
      select: { username: true },
    });
    const names = new Set(known.map((account) => account.username));
    for (const policy of owned) {
      const account = policyAccount(policy.name)!;
      if (names.has(account)) continue;
      try {
        await management.deletePolicy(policy.name);
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
      logger.info(
        { account, policy: policy.name },
        "removed the queue-limits policy of a deleted account",
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

  private async emitAboutQueue(
    check: QueueCheck,
    kind: GuardianEventKind,
    threshold: number | null,
    detail: string | null = null,
  ): Promise<void> {
    const { row } = check;
    await this.emit(
      { queue: row.name, account: row.accountName, kind, size: check.size, threshold, detail },
      check,
    );
  }

  /**
   * Stores and publishes an event, then sends its notice to the queue's
   * recipients or to admins. An event that cannot be stored, because the
   * database is away, is still logged and sent.
   */
  private async emit(facts: EventFacts, check: QueueCheck | null): Promise<void> {
    const event = { ...facts, detail: facts.detail ?? null };
    let at = new Date();
    try {
      at = (await this.options.events.record(event)).at;
    } catch (error) {
      if (event.kind !== "POLL_FAILED") throw error;
      this.options.logger.error(
        { err: error, kind: event.kind, detail: event.detail },
        "storing a guardian event failed; sending its notice anyway",
      );
    }
    const notifier = this.options.notifier;
    if (!notifier) return;
    let recipients: Recipients | null = null;
    if (ADMIN_NOTICE_KINDS.has(event.kind)) {
      recipients = this.options.adminRecipients ?? null;
    } else if (OWNER_NOTICE_KINDS.has(event.kind) && check) {
      recipients = await this.ownerRecipients(check);
    }
    if (!recipients) return;
    const notice = buildNotice({
      ...event,
      thresholds: check?.thresholds ?? null,
      bindings: check?.bindings ?? [],
      at,
    });
    notifier.send(notice, recipients);
  }

  /** Returns the queue's recipients, else the account's, else its owners. */
  private async ownerRecipients(check: QueueCheck): Promise<Recipients> {
    const { row, policy } = check;
    if (row.notifyEmails.length + row.webhookUrls.length > 0) {
      return { emails: row.notifyEmails, webhookUrls: row.webhookUrls };
    }
    if (policy && policy.notifyEmails.length + policy.webhookUrls.length > 0) {
      return { emails: policy.notifyEmails, webhookUrls: policy.webhookUrls };
    }
    const owners = await this.options.db.user.findMany({
      where: { accounts: { some: { account: { username: row.accountName } } } },
      select: { email: true },
    });
    return { emails: owners.map((owner) => owner.email), webhookUrls: [] };
  }
}

function loadQueueRows(db: Database) {
  return db.queue.findMany({ include: { bindings: true } });
}

function loadAccountPolicies(db: Database) {
  return db.accountPolicy.findMany({
    include: { account: { select: { username: true } } },
  });
}

function describeBinding(binding: NoticeBinding): string {
  return `exchange ${binding.exchange}, pattern ${binding.routingKeyPattern}`;
}
