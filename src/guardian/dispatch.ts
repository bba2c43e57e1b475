// Guardian events on their way out: stored and published through the
// event log, then sent as notices to the queue's recipients or to admins.
import type { Database, GuardianEventKind } from "../db";
import type { Logger } from "../logger";
import type { Thresholds } from "../services/policies";
import type { GuardianEventLog } from "./events";
import {
  ADMIN_NOTICE_KINDS,
  buildNotice,
  OWNER_NOTICE_KINDS,
  type NoticeBinding,
} from "./notices";
import type { Notifier, Recipients } from "./notifier";

export type QueueRow = Awaited<ReturnType<typeof loadQueueRows>>[number];

export type AccountPolicyRow = Awaited<
  ReturnType<typeof loadAccountPolicies>
>[number];

/** One queue being checked, with what the notices about it need. */
export interface QueueCheck {
  row: QueueRow;
  bindings: NoticeBinding[];
  thresholds: Thresholds;
  policy: AccountPolicyRow | undefined;
  size: number;
}

export interface EventFacts {
  queue: string;
  account: string;
  kind: GuardianEventKind;
  size: number | null;
  threshold: number | null;
  detail?: string | null;
}

export interface DispatcherOptions {
  db: Database;
  events: GuardianEventLog;
  logger: Logger;
  notifier?: Notifier;
  adminRecipients?: Recipients;
}

export class EventDispatcher {
  constructor(private readonly options: DispatcherOptions) {}

  async emitAboutQueue(
    check: QueueCheck,
    kind: GuardianEventKind,
    threshold: number | null,
    detail: string | null = null,
  ): Promise<void> {
    const { row } = check;
    await this.emit(
      {
        queue: row.name,
        account: row.accountName,
        kind,
        size: check.size,
        threshold,
        detail,
      },
      check,
    );
  }

  /**
   * Stores and publishes an event, then sends its notice to the queue's
   * recipients or to admins. An event that cannot be stored, because the
   * database is away, is still logged and sent.
   */
  async emit(facts: EventFacts, check: QueueCheck | null): Promise<void> {
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

/** Loads every queue row with its stored bindings. */
export function loadQueueRows(db: Database) {
  return db.queue.findMany({ include: { bindings: true } });
}

/** Loads every account policy with its account's name. */
export function loadAccountPolicies(db: Database) {
  return db.accountPolicy.findMany({
    include: { account: { select: { username: true } } },
  });
}
