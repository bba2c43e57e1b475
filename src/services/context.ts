import type { Viewer } from "../auth";
import type { Database } from "../db";
import { ForbiddenError, NotFoundError, quote } from "../errors";
import type { Logger } from "../logger";
import type { ManagementClient } from "../rabbitmq/management";
import type { StatsPoller } from "../stats";
import { requireAccountNameLength } from "./pulse-names";

/** Dependencies of every service, built once at start-up. */
export interface ServiceDeps {
  db: Database;
  management: ManagementClient;
  stats: StatsPoller;
  logger: Logger;
  reservedAccounts: RegExp;
  gatewayAccount: string;
  quotas: Quotas;
}

/**
 * Queue operations over AMQP, as the gateway's own account, for what the
 * management API cannot do: address a binding with pattern "." or "..",
 * report the messages a purge removed, and count messages without lag.
 */
export interface AmqpQueueClient {
  unbindQueue(queue: string, exchange: string, pattern: string): Promise<void>;
  purgeQueue(queue: string): Promise<number>;
  checkQueue(
    queue: string,
  ): Promise<{ messageCount: number; consumerCount: number }>;
}

/** Per-user and per-account quotas; 0 turns one off. Admins are exempt. */
export interface Quotas {
  /** MAX_ACCOUNTS_PER_USER */
  maxAccountsPerUser: number;
  /** MAX_QUEUES_PER_ACCOUNT */
  maxQueuesPerAccount: number;
}

/**
 * Checks that the viewer may manage the account: an admin, or one of its
 * owners. Returns the account's database id, or null for an account the
 * gateway does not know, which only admins may manage.
 */
export async function authorizeAccount(
  deps: ServiceDeps,
  viewer: Viewer,
  username: string,
): Promise<number | null> {
  requireAccountNameLength(username);
  const account = await deps.db.account.findUnique({
    where: { username },
    select: { id: true, owners: { select: { user: { select: { email: true } } } } },
  });
  if (viewer.isAdmin) return account?.id ?? null;
  if (!account) {
    throw new NotFoundError(
      `Account ${quote(username)} not found among the accounts this gateway ` +
        `manages; check the name with the accounts query.`,
      { account: username },
    );
  }
  const owners = account.owners.map((owner) => owner.user.email);
  if (!owners.includes(viewer.email)) {
    throw new ForbiddenError(
      `${viewer.email} is not an owner of account ${quote(username)}; ask one ` +
        `of its owners or an admin.`,
      { account: username },
    );
  }
  return account.id;
}

/** Logs a failure to undo a broker change after the database failed. */
export function logCompensationFailure(
  logger: Logger,
  fields: object,
  error: unknown,
): void {
  logger.error(
    { ...fields, err: error },
    "failed to undo a broker change after a database error; " +
      "the guardian will reconcile it",
  );
}
