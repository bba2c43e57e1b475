// Reconciliation of what changed on the broker outside the gateway:
// bindings added or removed over AMQP, and RabbitMQ users deleted by hand.
// The database follows the broker; the broker is never changed here.
import type { Database } from "../db";
import type { Logger } from "../logger";
import {
  isNotFound,
  type BindingInfo,
  type ManagementClient,
} from "../rabbitmq/management";
import { policyAccount } from "../services/queue-limits";
import type { StatsSnapshot } from "../stats";
import type { EventDispatcher, QueueRow } from "./dispatch";
import type { NoticeBinding } from "./notices";

export interface BindingRow {
  id: number;
  exchange: string;
  routingKeyPattern: string;
  createdAt: Date;
}

export interface BindingChanges {
  added: NoticeBinding[];
  removed: NoticeBinding[];
  /** The queue's bindings as stored after the changes. */
  current: NoticeBinding[];
}

const bindingKey = (b: NoticeBinding) =>
  `${b.exchange}\u0000${b.routingKeyPattern}`;

/**
 * Makes the stored bindings of one queue match the broker's list. A stored
 * binding created after the list was read is kept, because the list could
 * not have seen it.
 */
export async function reconcileBindings(
  db: Database,
  queueId: number,
  stored: BindingRow[],
  onBroker: BindingInfo[],
  snapshotStartedAt: Date,
): Promise<BindingChanges> {
  const brokerBindings = onBroker.map((b) => ({
    exchange: b.source,
    routingKeyPattern: b.routing_key,
  }));
  const brokerKeys = new Set(brokerBindings.map(bindingKey));
  const storedKeys = new Set(stored.map(bindingKey));
  const added = dedupe(
    brokerBindings.filter((b) => !storedKeys.has(bindingKey(b))),
  );
  const removedRows = stored.filter(
    (row) =>
      !brokerKeys.has(bindingKey(row)) && row.createdAt < snapshotStartedAt,
  );
  if (added.length > 0) {
    try {
      await db.binding.createMany({
        data: added.map((b) => ({ queueId, ...b })),
        skipDuplicates: true,
      });
    } catch (error) {
      // A client deleted the queue since the pass read it: its row and
      // bindings are gone, so there is nothing left to reconcile.
      if ((error as { code?: string }).code !== "P2003") throw error;
      return { added: [], removed: [], current: [] };
    }
  }
  if (removedRows.length > 0) {
    await db.binding.deleteMany({
      where: { id: { in: removedRows.map((row) => row.id) } },
    });
  }
  const removedIds = new Set(removedRows.map((row) => row.id));
  const kept = stored
    .filter((row) => !removedIds.has(row.id))
    .map(({ exchange, routingKeyPattern }) => ({
      exchange,
      routingKeyPattern,
    }));
  const removed = removedRows.map(({ exchange, routingKeyPattern }) => ({
    exchange,
    routingKeyPattern,
  }));
  return { added, removed, current: [...kept, ...added] };
}

/** Returns whether the stored bindings and the broker's differ. */
function differ(stored: BindingRow[], onBroker: BindingInfo[]): boolean {
  const storedKeys = new Set(stored.map(bindingKey));
  const brokerKeys = new Set(
    onBroker.map((b) =>
      bindingKey({ exchange: b.source, routingKeyPattern: b.routing_key }),
    ),
  );
  if (storedKeys.size !== brokerKeys.size) return true;
  return [...storedKeys].some((key) => !brokerKeys.has(key));
}

function dedupe(bindings: NoticeBinding[]): NoticeBinding[] {
  const byKey = new Map(bindings.map((b) => [bindingKey(b), b]));
  return [...byKey.values()];
}

export interface UserChanges {
  /** Accounts whose RabbitMQ user is newly missing. */
  missing: string[];
  /** Accounts whose RabbitMQ user is back. */
  returned: string[];
}

/**
 * Marks accounts whose RabbitMQ user no longer exists, and clears the mark
 * of those whose user is back. Accounts created after `since` are skipped,
 * because the user list was read before them.
 */
export async function reconcileUsers(
  db: Database,
  userNames: string[],
  since: Date,
): Promise<UserChanges> {
  const users = new Set(userNames);
  const accounts = await db.account.findMany({
    where: { createdAt: { lt: since } },
    select: {
      id: true,
      username: true,
      policy: { select: { userMissingAt: true } },
    },
  });
  const changes: UserChanges = { missing: [], returned: [] };
  for (const account of accounts) {
    const markedMissing = account.policy?.userMissingAt != null;
    const exists = users.has(account.username);
    if (!exists && !markedMissing) {
      const userMissingAt = new Date();
      await db.accountPolicy.upsert({
        where: { accountId: account.id },
        create: { accountId: account.id, userMissingAt },
        update: { userMissingAt },
      });
      changes.missing.push(account.username);
    } else if (exists && markedMissing) {
      await db.accountPolicy.update({
        where: { accountId: account.id },
        data: { userMissingAt: null },
      });
      changes.returned.push(account.username);
    }
  }
  return changes;
}

export interface ReconcilerOptions {
  db: Database;
  management: ManagementClient;
  logger: Logger;
}

/** Reconciliation steps of a guardian pass, each change as an event. */
export class Reconciler {
  constructor(
    private readonly options: ReconcilerOptions,
    private readonly dispatcher: EventDispatcher,
  ) {}

  async syncBindings(
    row: QueueRow,
    snapshot: StatsSnapshot,
  ): Promise<NoticeBinding[]> {
    let onBroker = snapshot.bindings.get(row.name) ?? [];
    let readAt = snapshot.startedAt;
    if (differ(row.bindings, onBroker)) {
      // The snapshot may be seconds old, and a client may have changed the
      // bindings through the gateway since. Only a fresh list shows which
      // changes were made outside it.
      readAt = new Date();
      try {
        onBroker = (
          await this.options.management.listQueueBindings(row.name)
        ).filter((binding) => binding.source !== "");
      } catch (error) {
        if (!isNotFound(error)) throw error;
        return row.bindings;
      }
    }
    const changes = await reconcileBindings(
      this.options.db,
      row.id,
      row.bindings,
      onBroker,
      readAt,
    );
    const base = {
      queue: row.name,
      account: row.accountName,
      size: null,
      threshold: null,
    };
    for (const binding of changes.added) {
      await this.dispatcher.emit(
        { ...base, kind: "BINDING_ADDED", detail: describeBinding(binding) },
        null,
      );
    }
    for (const binding of changes.removed) {
      await this.dispatcher.emit(
        { ...base, kind: "BINDING_REMOVED", detail: describeBinding(binding) },
        null,
      );
    }
    return changes.current;
  }

  /** Reports each queue outside the convention once; never deletes it. */
  async reportMisnamed(names: string[]): Promise<void> {
    if (names.length === 0) return;
    const reported = await this.options.db.guardianEvent.findMany({
      where: { kind: "MISNAMED_QUEUE", queueName: { in: names } },
      select: { queueName: true },
      distinct: ["queueName"],
    });
    const done = new Set(reported.map((event) => event.queueName));
    for (const name of names) {
      if (done.has(name)) continue;
      await this.dispatcher.emit(
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
  async reconcileAccounts(): Promise<void> {
    await this.removeOrphanPolicies();
    const { db, management } = this.options;
    if ((await db.account.count()) === 0) return;
    const since = new Date();
    const users = await management.listUserNames();
    const changes = await reconcileUsers(db, users, since);
    for (const account of changes.missing) {
      await this.dispatcher.emit(
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
}

function describeBinding(binding: NoticeBinding): string {
  return `exchange ${binding.exchange}, pattern ${binding.routingKeyPattern}`;
}
