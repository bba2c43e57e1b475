// Notices: the guardian's message to owners and admins about an event, as
// JSON for webhooks and as plain text for e-mail.
import type { GuardianEventKind } from "../db";

/** Event kinds whose notices go to the queue's recipients. */
export const OWNER_NOTICE_KINDS: ReadonlySet<GuardianEventKind> = new Set([
  "WARNED",
  "RECOVERED",
  "DELETED",
  "CONSUMER_GONE",
]);

/** Event kinds whose notices go to admins. */
export const ADMIN_NOTICE_KINDS: ReadonlySet<GuardianEventKind> = new Set([
  "MISNAMED_QUEUE",
  "USER_MISSING",
  "POLL_FAILED",
]);

export interface NoticeBinding {
  exchange: string;
  routingKeyPattern: string;
}

/** The body of a webhook call, and the facts of an e-mail notice. */
export interface Notice {
  kind: GuardianEventKind;
  queue: string;
  account: string;
  /** The queue's `messages` (ready plus unacknowledged), if known. */
  size: number | null;
  warnSize: number | null;
  deleteSize: number | null;
  /** Bindings of the queue as the gateway stores them. */
  bindings: NoticeBinding[];
  detail: string | null;
  /** Advice on the next step for the recipient. */
  advice: string;
  at: string;
}

export interface NoticeFacts {
  kind: GuardianEventKind;
  queue: string;
  account: string;
  size: number | null;
  thresholds: { warnSize: number; deleteSize: number } | null;
  bindings: NoticeBinding[];
  detail: string | null;
  at: Date;
}

export function buildNotice(facts: NoticeFacts): Notice {
  return {
    kind: facts.kind,
    queue: facts.queue,
    account: facts.account,
    size: facts.size,
    warnSize: facts.thresholds?.warnSize ?? null,
    deleteSize: facts.thresholds?.deleteSize ?? null,
    bindings: facts.bindings,
    detail: facts.detail,
    advice: adviceFor(facts.kind),
    at: facts.at.toISOString(),
  };
}

function adviceFor(kind: GuardianEventKind): string {
  switch (kind) {
    case "WARNED":
      return (
        "Consume the queue faster or add consumers; the guardian deletes " +
        "it if it grows past its delete size. Owners can change the " +
        "thresholds with setQueuePolicy."
      );
    case "RECOVERED":
      return "Nothing to do: the queue is back at or below its warn size.";
    case "DELETED":
      return (
        "Declare the queue again and bind it to the exchanges listed here, " +
        "then make sure a consumer keeps up with it."
      );
    case "CONSUMER_GONE":
      return (
        "Start the consumer again, or delete the queue if nobody needs " +
        "it any more, before it grows past its delete size."
      );
    case "MISNAMED_QUEUE":
      return (
        "Rename or delete the queue: Pulse queues are named " +
        "queue/<account>/<name>. The guardian neither deletes it nor " +
        "checks its size, so it can grow without a limit."
      );
    case "USER_MISSING":
      return (
        "The RabbitMQ user was deleted outside the gateway. Delete the " +
        "account with deleteAccount, or create the user again by hand; " +
        "the guardian never creates users."
      );
    case "POLL_FAILED":
      return (
        "Check that RabbitMQ, its management API and PostgreSQL are up. " +
        "The guardian retries with backoff and sends no further notice of " +
        "this kind until a check succeeds."
      );
    default:
      return "No action needed.";
  }
}

export function noticeSubject(notice: Notice): string {
  const target = notice.queue || notice.account || "the guardian";
  return `[Pulse guardian] ${notice.kind}: ${target}`;
}

export function noticeText(notice: Notice): string {
  const lines = [`Event: ${notice.kind}`];
  if (notice.queue) lines.push(`Queue: ${notice.queue}`);
  if (notice.account) lines.push(`Account: ${notice.account}`);
  if (notice.size !== null) lines.push(`Messages: ${notice.size}`);
  if (notice.warnSize !== null && notice.deleteSize !== null) {
    lines.push(
      `Thresholds: warn above ${notice.warnSize}, delete above ` +
        `${notice.deleteSize}`,
    );
  }
  if (notice.detail) lines.push(`Detail: ${notice.detail}`);
  if (notice.queue) {
    lines.push("Bindings:");
    if (notice.bindings.length === 0) lines.push("  (none stored)");
    for (const binding of notice.bindings) {
      lines.push(`  ${binding.exchange} ${binding.routingKeyPattern}`);
    }
  }
  lines.push("", `What to do: ${notice.advice}`, "", `Time: ${notice.at}`);
  return lines.join("\n") + "\n";
}
