// Guardian policies: warn and delete sizes per account and per queue, and
// the recipients of the guardian's notices. Each size comes from the most
// specific level that sets it: queue, then account, then the global
// settings.
import {
  canonicalEmail,
  describeInvisibleCharacter,
  isEmail,
  type Viewer,
} from "../auth";
import {
  REDACTED_PASSWORD,
  redactUrl,
  webhookUrlProblem,
} from "../config";
import type { Database } from "../db";
import {
  BadInputError,
  ForbiddenError,
  NotFoundError,
  quote,
} from "../errors";
import { authorizeAccount, type ServiceDeps } from "./context";
import type { QueueService } from "./queues";
import { requireQueueAccount } from "./pulse-names";

export type ThresholdSource = "QUEUE" | "ACCOUNT" | "GLOBAL";

export interface Thresholds {
  warnSize: number;
  deleteSize: number;
  source: ThresholdSource;
}

/** Global thresholds and the bounds within which owners may set theirs. */
export interface ThresholdLimits {
  warnSize: number;
  deleteSize: number;
  /** Highest size an owner who is not an admin may set. */
  maxDeleteSize: number;
}

/** New sizes: undefined keeps the stored size, null clears it. */
export interface ThresholdInput {
  warnSize?: number | null;
  deleteSize?: number | null;
}

export interface RecipientsInput {
  emails: string[];
  webhookUrls: string[];
}

export interface PolicyRecord {
  warnSize: number;
  deleteSize: number;
  source: ThresholdSource;
  notifyEmails: string[];
  webhookUrls: string[];
}

type Pair = { warnSize: number | null; deleteSize: number | null };

/** Maximum recipients of each kind per account or queue. */
export const MAX_RECIPIENTS = 10;

/**
 * Resolves the thresholds that apply, each size from the queue, else the
 * account, else the global settings. `source` is the most specific level
 * that sets either size. A warn size at or above the delete size, which
 * sizes from different levels can give, is lowered to one below it, so a
 * growing queue is warned before it is deleted.
 */
export function effectiveThresholds(
  queue: Pair | null | undefined,
  account: Pair | null | undefined,
  global: { warnSize: number; deleteSize: number },
): Thresholds {
  const deleteSize =
    queue?.deleteSize ?? account?.deleteSize ?? global.deleteSize;
  const warnSize = queue?.warnSize ?? account?.warnSize ?? global.warnSize;
  return {
    warnSize: Math.min(warnSize, deleteSize - 1),
    deleteSize,
    source: sourceOf(queue) ?? sourceOf(account, "ACCOUNT") ?? "GLOBAL",
  };
}

function sourceOf(
  pair: Pair | null | undefined,
  level: ThresholdSource = "QUEUE",
): ThresholdSource | null {
  if (pair?.warnSize == null && pair?.deleteSize == null) return null;
  return level;
}

export class PolicyService {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly queues: QueueService,
    private readonly limits: ThresholdLimits,
  ) {}

  /**
   * Sets a queue's thresholds. A size left undefined keeps its stored
   * value, and a null size falls back to the account's.
   */
  async setQueueThresholds(
    viewer: Viewer,
    name: string,
    input: ThresholdInput,
  ): Promise<PolicyRecord> {
    const account = requireQueueAccount(name);
    const target = `queue ${quote(name)}`;
    this.validateThresholds(viewer, input, target);
    const accountId = await authorizeAccount(this.deps, viewer, account);
    const stored = await this.deps.db.queue.findUnique({ where: { name } });
    const pair = this.mergeThresholds(viewer, stored, input, target);
    const info = await this.queues.fetchQueue(name);
    await this.deps.db.queue.upsert({
      where: { name },
      create: {
        name,
        accountName: account,
        accountId,
        durable: info.durable,
        ...pair,
      },
      update: pair,
    });
    this.deps.logger.info(
      { queue: name, ...pair, by: viewer.email },
      "queue thresholds set",
    );
    return this.queuePolicy(name);
  }

  /**
   * Sets an account's thresholds. A size left undefined keeps its stored
   * value, and a null size falls back to the global one.
   */
  async setAccountThresholds(
    viewer: Viewer,
    username: string,
    input: ThresholdInput,
  ): Promise<PolicyRecord> {
    const target = `account ${quote(username)}`;
    this.validateThresholds(viewer, input, target);
    const accountId = await this.requireKnownAccount(viewer, username);
    const stored = await this.deps.db.accountPolicy.findUnique({
      where: { accountId },
    });
    const pair = this.mergeThresholds(viewer, stored, input, target);
    await this.deps.db.accountPolicy.upsert({
      where: { accountId },
      create: { accountId, ...pair },
      update: pair,
    });
    this.deps.logger.info(
      { account: username, ...pair, by: viewer.email },
      "account thresholds set",
    );
    return this.accountPolicy(username);
  }

  /**
   * Replaces the recipients of notices about one queue, or about every
   * queue of an account when `queue` is null. Empty lists fall back to the
   * next level: queue to account, account to the account's owners. A URL
   * given in the redacted form the API shows keeps its stored password.
   */
  async setRecipients(
    viewer: Viewer,
    target: { account: string; queue?: string | null },
    input: RecipientsInput,
  ): Promise<PolicyRecord> {
    const recipients = validateRecipients(input);
    if (target.queue) {
      const owner = requireQueueAccount(target.queue);
      if (owner !== target.account) {
        throw new BadInputError(
          `Queue ${quote(target.queue)} belongs to account ${quote(owner)}, ` +
            `not ${quote(target.account)}; pass account "${owner}".`,
          { queue: target.queue, account: target.account },
        );
      }
      const accountId = await authorizeAccount(this.deps, viewer, owner);
      const info = await this.queues.fetchQueue(target.queue);
      const stored = await this.deps.db.queue.findUnique({
        where: { name: target.queue },
        select: { webhookUrls: true },
      });
      recipients.webhookUrls = restoreRedacted(
        recipients.webhookUrls,
        stored?.webhookUrls ?? [],
      );
      await this.deps.db.queue.upsert({
        where: { name: target.queue },
        create: {
          name: target.queue,
          accountName: owner,
          accountId,
          durable: info.durable,
          ...recipients,
        },
        update: recipients,
      });
      return this.queuePolicy(target.queue);
    }
    const accountId = await this.requireKnownAccount(viewer, target.account);
    const stored = await this.deps.db.accountPolicy.findUnique({
      where: { accountId },
      select: { webhookUrls: true },
    });
    recipients.webhookUrls = restoreRedacted(
      recipients.webhookUrls,
      stored?.webhookUrls ?? [],
    );
    await this.deps.db.accountPolicy.upsert({
      where: { accountId },
      create: { accountId, ...recipients },
      update: recipients,
    });
    return this.accountPolicy(target.account);
  }

  /** Returns the policy that applies to a queue, with its source. */
  async queuePolicy(name: string): Promise<PolicyRecord> {
    const account = requireQueueAccount(name);
    const [row, accountRow] = await Promise.all([
      this.deps.db.queue.findUnique({ where: { name } }),
      findAccountPolicy(this.deps.db, account),
    ]);
    const thresholds = effectiveThresholds(row, accountRow, this.limits);
    const queueHasRecipients =
      (row?.notifyEmails.length ?? 0) + (row?.webhookUrls.length ?? 0) > 0;
    const recipients = queueHasRecipients ? row : accountRow;
    return {
      ...thresholds,
      notifyEmails: recipients?.notifyEmails ?? [],
      webhookUrls: redactWebhookUrls(recipients?.webhookUrls ?? []),
    };
  }

  /** Returns when the account's RabbitMQ user was found missing, if it is. */
  async userMissingAt(username: string): Promise<Date | null> {
    const row = await findAccountPolicy(this.deps.db, username);
    return row?.userMissingAt ?? null;
  }

  async accountPolicy(username: string): Promise<PolicyRecord> {
    const row = await findAccountPolicy(this.deps.db, username);
    return {
      ...effectiveThresholds(null, row, this.limits),
      notifyEmails: row?.notifyEmails ?? [],
      webhookUrls: redactWebhookUrls(row?.webhookUrls ?? []),
    };
  }

  /** Checks each size given, whatever the other size is. */
  private validateThresholds(
    viewer: Viewer,
    input: ThresholdInput,
    target: string,
  ): void {
    const warnSize = input.warnSize ?? null;
    const deleteSize = input.deleteSize ?? null;
    if (warnSize !== null && warnSize < 0) {
      throw new BadInputError(
        `Invalid warnSize ${warnSize} for ${target}: use 0 or more.`,
        { warnSize },
      );
    }
    if (deleteSize !== null && deleteSize < 1) {
      throw new BadInputError(
        `Invalid deleteSize ${deleteSize} for ${target}: use 1 or more.`,
        { deleteSize },
      );
    }
    const largest = Math.max(warnSize ?? 0, deleteSize ?? 0);
    if (!viewer.isAdmin && largest > this.limits.maxDeleteSize) {
      throw new BadInputError(
        `Invalid size ${largest} for ${target}: owners may set at most ` +
          `${this.limits.maxDeleteSize} (GUARDIAN_MAX_DELETE_SIZE); ask an ` +
          `admin for a larger one.`,
        { warnSize, deleteSize, maxDeleteSize: this.limits.maxDeleteSize },
      );
    }
  }

  /**
   * Returns the stored sizes with the given ones in their place. An owner
   * who is not an admin may not change a stored size above
   * GUARDIAN_MAX_DELETE_SIZE, because only an admin can have set it and
   * the owner could not set it back.
   */
  private mergeThresholds(
    viewer: Viewer,
    stored: Pair | null,
    input: ThresholdInput,
    target: string,
  ): Pair {
    const pair: Pair = {
      warnSize: stored?.warnSize ?? null,
      deleteSize: stored?.deleteSize ?? null,
    };
    for (const key of ["warnSize", "deleteSize"] as const) {
      const value = input[key];
      if (value === undefined || value === pair[key]) continue;
      const current = pair[key];
      if (
        !viewer.isAdmin &&
        current !== null &&
        current > this.limits.maxDeleteSize
      ) {
        throw new ForbiddenError(
          `Only admins may change ${key} ${current} of ${target}, because ` +
            `it is above GUARDIAN_MAX_DELETE_SIZE ` +
            `(${this.limits.maxDeleteSize}); ask an admin, or leave ${key} ` +
            `out to keep it.`,
          { [key]: current, maxDeleteSize: this.limits.maxDeleteSize },
        );
      }
      pair[key] = value;
    }
    const { warnSize, deleteSize } = pair;
    if (warnSize !== null && deleteSize !== null && warnSize >= deleteSize) {
      throw new BadInputError(
        `Invalid thresholds for ${target}: warnSize (${warnSize}) must be ` +
          `below deleteSize (${deleteSize}). A size left out keeps its ` +
          `current value; pass both to change both.`,
        { warnSize, deleteSize },
      );
    }
    return pair;
  }

  private async requireKnownAccount(
    viewer: Viewer,
    username: string,
  ): Promise<number> {
    const id = await authorizeAccount(this.deps, viewer, username);
    if (id !== null) return id;
    throw new NotFoundError(
      `Account ${quote(username)} not found among the accounts this ` +
        `gateway manages; policies apply to accounts created through it.`,
      { account: username },
    );
  }
}

function findAccountPolicy(db: Database, username: string) {
  return db.accountPolicy.findFirst({ where: { account: { username } } });
}

function validateRecipients(input: RecipientsInput): {
  notifyEmails: string[];
  webhookUrls: string[];
} {
  const emails = [
    ...new Set(input.emails.map((e) => canonicalEmail(e.trim()))),
  ];
  // Redacted URLs may repeat, because two stored URLs that differ only in
  // their password read alike. restoreRedacted matches them by count.
  const webhookUrls = input.webhookUrls.filter(
    (url, index, all) =>
      all.indexOf(url) === index || url.includes(REDACTED_PASSWORD),
  );
  if (emails.length > MAX_RECIPIENTS || webhookUrls.length > MAX_RECIPIENTS) {
    throw new BadInputError(
      `Too many recipients: use at most ${MAX_RECIPIENTS} e-mail addresses ` +
        `and ${MAX_RECIPIENTS} webhook URLs.`,
      { emails: emails.length, webhookUrls: webhookUrls.length },
    );
  }
  for (const email of emails) {
    if (!isEmail(email)) {
      const invisible = describeInvisibleCharacter(email);
      throw new BadInputError(
        `Invalid e-mail address ${quote(email)}` +
          (invisible ? `: ${invisible}.` : "; use name@example.com."),
        { email },
      );
    }
  }
  for (const url of webhookUrls) validateWebhookUrl(url);
  return { notifyEmails: emails, webhookUrls };
}

function validateWebhookUrl(url: string): void {
  const problem = webhookUrlProblem(url);
  if (problem) throw new BadInputError(problem, { length: url.length });
}

/**
 * Returns stored webhook URLs with their passwords replaced by "***". The
 * guardian reads the rows, so it still sends with the full URL.
 */
function redactWebhookUrls(urls: string[]): string[] {
  return urls.map(redactUrl);
}

/**
 * Puts back the stored URL for each input URL equal to its redacted form,
 * so that a client may send back the list it read without losing the
 * passwords it never saw.
 */
function restoreRedacted(input: string[], stored: string[]): string[] {
  const byRedacted = new Map<string, string[]>();
  for (const url of stored) {
    const redacted = redactUrl(url);
    byRedacted.set(redacted, [...(byRedacted.get(redacted) ?? []), url]);
  }
  for (const [redacted, urls] of byRedacted) {
    const sent = input.filter((url) => url === redacted).length;
    // Two stored URLs that differ only in their secret read alike, so a
    // list that keeps one of them does not identify which one.
    if (urls.length > 1 && sent > 0 && sent !== urls.length) {
      throw new BadInputError(
        `Webhook URL ${quote(redacted)} matches ${urls.length} stored ` +
          `URLs that differ only in their password or user, so it is not ` +
          `clear which to keep; give the full URL of each webhook to keep.`,
        { webhookUrl: redacted },
      );
    }
  }
  const restored = [
    ...new Set(input.map((url) => byRedacted.get(url)?.shift() ?? url)),
  ];
  const placeholder = restored.find((url) => {
    const parsed = new URL(url);
    return (
      parsed.password === REDACTED_PASSWORD ||
      (parsed.username === REDACTED_PASSWORD && parsed.password === "")
    );
  });
  if (placeholder) {
    throw new BadInputError(
      `Webhook URL ${quote(placeholder)} has the placeholder password ` +
        `"${REDACTED_PASSWORD}" but matches no stored URL, so its real ` +
        `password is unknown; give the password again.`,
      { webhookUrl: placeholder },
    );
  }
  return restored;
}
