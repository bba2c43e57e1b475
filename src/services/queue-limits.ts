// Account-wide queue limits, enforced by RabbitMQ itself through one
// policy per account on the pattern ^queue/<account>/: a maximum length
// with its overflow behaviour, a message TTL and an idle-queue expiry.
// The limits are stored with the account's guardian policy too.
import type { Viewer } from "../auth";
import { BadInputError, NotFoundError, quote } from "../errors";
import {
  isNotFound,
  type ManagementClient,
  type PolicyInfo,
} from "../rabbitmq/management";
import {
  authorizeAccount,
  logCompensationFailure,
  type ServiceDeps,
} from "./context";
import { escapeRegExp } from "./pulse-names";

export type OverflowMode = "drop-head" | "reject-publish";

export interface QueueLimits {
  /** Messages a queue keeps; RabbitMQ's `max-length`. */
  maxLength: number | null;
  /** Behaviour at maxLength; `drop-head` unless set. */
  overflow: OverflowMode | null;
  /** RabbitMQ's `message-ttl`, in milliseconds. */
  messageTtlMs: number | null;
  /** RabbitMQ's `expires`: idle time before a queue is deleted, in ms. */
  expiresMs: number | null;
}

/** Changes to the limits: a field left out keeps its value, null clears it. */
export type QueueLimitChanges = {
  [field in keyof QueueLimits]?: QueueLimits[field];
};

const OVERFLOW_MODES: readonly OverflowMode[] = ["drop-head", "reject-publish"];

/**
 * Smallest `expires`: RabbitMQ deletes every queue of the account, existing
 * ones included, that has been unused this long, so a few milliseconds
 * would delete them all at once.
 */
export const MIN_EXPIRES_MS = 60_000;

const POLICY_PREFIX = "pulse-account-";

/** Returns the name of the RabbitMQ policy of an account's queue limits. */
export function accountPolicyName(account: string): string {
  return POLICY_PREFIX + account;
}

/** Returns the account of a queue-limits policy name, or null. */
export function policyAccount(policyName: string): string | null {
  if (!policyName.startsWith(POLICY_PREFIX)) return null;
  return policyName.slice(POLICY_PREFIX.length);
}

/**
 * Deletes the account's queue-limits policy and returns it, or returns
 * null when there is none, so that a failed caller can put it back with
 * restoreAccountPolicy.
 */
export async function removeAccountPolicy(
  management: ManagementClient,
  account: string,
): Promise<PolicyInfo | null> {
  const name = accountPolicyName(account);
  let policy: PolicyInfo;
  try {
    policy = await management.getPolicy(name);
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
  await management.deletePolicy(name).catch((error) => {
    if (!isNotFound(error)) throw error;
  });
  return policy;
}

/** Puts back a policy that removeAccountPolicy returned. */
export async function restoreAccountPolicy(
  management: ManagementClient,
  policy: PolicyInfo | null,
): Promise<void> {
  if (policy) await management.putPolicy(policy);
}

export class QueueLimitService {
  constructor(private readonly deps: ServiceDeps) {}

  /**
   * Changes the limits of every queue of the account through a RabbitMQ
   * policy, or removes the policy when every limit ends up null. A limit
   * left out of `changes` keeps its value. The broker's previous policy is
   * restored when the database write fails.
   */
  async set(
    viewer: Viewer,
    account: string,
    changes: QueueLimitChanges,
  ): Promise<QueueLimits> {
    const accountId = await authorizeAccount(this.deps, viewer, account);
    if (accountId === null) {
      throw new NotFoundError(
        `Account ${quote(account)} not found among the accounts this ` +
          `gateway manages; queue limits apply to accounts created through it.`,
        { account },
      );
    }
    const limits = withBrokerDefaults(
      mergeLimits(await this.get(account), changes),
    );
    validateLimits(account, limits);
    const name = accountPolicyName(account);
    const previous = await this.currentPolicy(name);
    await this.applyPolicy(account, limits);
    try {
      await this.deps.db.accountPolicy.upsert({
        where: { accountId },
        create: { accountId, ...limits },
        update: limits,
      });
    } catch (error) {
      await this.restorePolicy(name, previous).catch((undoError) => {
        logCompensationFailure(
          this.deps.logger,
          { account, policy: name },
          undoError,
        );
      });
      throw error;
    }
    this.deps.logger.info(
      { account, policy: name, ...limits, by: viewer.email },
      "account queue limits set",
    );
    return limits;
  }

  async get(account: string): Promise<QueueLimits> {
    const row = await this.deps.db.accountPolicy.findFirst({
      where: { account: { username: account } },
    });
    return withBrokerDefaults({
      maxLength: row?.maxLength ?? null,
      overflow: (row?.overflow as OverflowMode | null) ?? null,
      messageTtlMs: row?.messageTtlMs ?? null,
      expiresMs: row?.expiresMs ?? null,
    });
  }

  private async applyPolicy(account: string, limits: QueueLimits) {
    const name = accountPolicyName(account);
    const definition = policyDefinition(limits);
    if (Object.keys(definition).length === 0) {
      await this.deps.management.deletePolicy(name).catch((error) => {
        if (!isNotFound(error)) throw error;
      });
      return;
    }
    // NOTE: RabbitMQ applies only the highest-priority policy that matches
    // a queue, so an operator policy of higher priority on the same queues
    // replaces these limits.
    await this.deps.management.putPolicy({
      name,
      pattern: `^queue/${escapeRegExp(account)}/`,
      "apply-to": "queues",
      priority: 0,
      definition,
    });
  }

  private async currentPolicy(name: string): Promise<PolicyInfo | null> {
    try {
      return await this.deps.management.getPolicy(name);
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  private async restorePolicy(name: string, previous: PolicyInfo | null) {
    if (previous) {
      await this.deps.management.putPolicy(previous);
      return;
    }
    await this.deps.management.deletePolicy(name).catch((error) => {
      if (!isNotFound(error)) throw error;
    });
  }
}

/**
 * Applies the changes to the current limits. Clearing maxLength clears
 * the overflow mode too unless the call sets one, since an overflow mode
 * needs a maximum length.
 */
function mergeLimits(
  current: QueueLimits,
  changes: QueueLimitChanges,
): QueueLimits {
  const merged: QueueLimits = {
    maxLength: changes.maxLength === undefined ? current.maxLength : changes.maxLength,
    overflow: changes.overflow === undefined ? current.overflow : changes.overflow,
    messageTtlMs:
      changes.messageTtlMs === undefined
        ? current.messageTtlMs
        : changes.messageTtlMs,
    expiresMs: changes.expiresMs === undefined ? current.expiresMs : changes.expiresMs,
  };
  if (changes.maxLength === null && changes.overflow === undefined) {
    merged.overflow = null;
  }
  return merged;
}

/**
 * Fills in the overflow mode that the policy gives RabbitMQ when a
 * maximum length is set without one, so the API reports what the broker
 * applies.
 */
function withBrokerDefaults(limits: QueueLimits): QueueLimits {
  if (limits.maxLength === null || limits.overflow !== null) return limits;
  return { ...limits, overflow: "drop-head" };
}

function policyDefinition(limits: QueueLimits): Record<string, unknown> {
  const definition: Record<string, unknown> = {};
  if (limits.maxLength !== null) {
    definition["max-length"] = limits.maxLength;
    definition.overflow = limits.overflow ?? "drop-head";
  }
  if (limits.messageTtlMs !== null) {
    definition["message-ttl"] = limits.messageTtlMs;
  }
  if (limits.expiresMs !== null) definition.expires = limits.expiresMs;
  return definition;
}

function validateLimits(account: string, limits: QueueLimits): void {
  const checks: [keyof QueueLimits, number | null, number][] = [
    ["maxLength", limits.maxLength, 0],
    ["messageTtlMs", limits.messageTtlMs, 0],
    ["expiresMs", limits.expiresMs, MIN_EXPIRES_MS],
  ];
  for (const [field, value, min] of checks) {
    if (value !== null && (!Number.isInteger(value) || value < min)) {
      throw new BadInputError(
        `Invalid ${field} ${value} for account ${quote(account)}: use an ` +
          `integer of at least ${min}, or null for no limit.` +
          (field === "expiresMs"
            ? " RabbitMQ deletes every queue of the account, existing ones " +
              "included, that stays unused this long."
            : ""),
        { [field]: value },
      );
    }
  }
  if (limits.overflow !== null && !OVERFLOW_MODES.includes(limits.overflow)) {
    throw new BadInputError(
      `Invalid overflow ${quote(String(limits.overflow))}: use ` +
        `"drop-head" or "reject-publish".`,
      { overflow: limits.overflow },
    );
  }
  if (limits.overflow !== null && limits.maxLength === null) {
    throw new BadInputError(
      `Overflow ${quote(limits.overflow)} for account ${quote(account)} ` +
        `needs maxLength too; set maxLength or leave overflow null.`,
      { overflow: limits.overflow },
    );
  }
}
