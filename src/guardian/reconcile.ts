// Reconciliation of what changed on the broker outside the gateway:
// bindings added or removed over AMQP, and RabbitMQ users deleted by hand.
// The database follows the broker; the broker is never changed here.
import type { Database } from "../db";
import type { BindingInfo } from "../rabbitmq/management";
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

const bindingKey = (b: NoticeBinding) => `${b.exchange}\u0000${b.routingKeyPattern}`;

/**
 * Makes the stored bindings of one queue match the snapshot. A stored
 * binding created after the snapshot began is kept, because the snapshot
 * could not have seen it.
 *
 * NOTE: a binding deleted through the gateway after the snapshot began is
 * still in the snapshot, so it is stored again and removed at the next
 * pass, with an event each time.
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
  const added = dedupe(brokerBindings.filter((b) => !storedKeys.has(bindingKey(b))));
  const removedRows = stored.filter(
    (row) =>
      !brokerKeys.has(bindingKey(row)) && row.createdAt < snapshotStartedAt,
  );
  if (added.length > 0) {
    await db.binding.createMany({
      data: added.map((b) => ({ queueId, ...b })),
      skipDuplicates: true,
    });
  }
  if (removedRows.length > 0) {
    await db.binding.deleteMany({
      where: { id: { in: removedRows.map((row) => row.id) } },
    });
  }
  const removedIds = new Set(removedRows.map((row) => row.id));
  const kept = stored
    .filter((row) => !removedIds.has(row.id))
    .map(({ exchange, routingKeyPattern }) => ({ exchange, routingKeyPattern }));
  const removed = removedRows.map(({ exchange, routingKeyPattern }) => ({
    exchange,
    routingKeyPattern,
  }));
  return { added, removed, current: [...kept, ...added] };
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
    select: { id: true, username: true, policy: { select: { userMissingAt: true } } },
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
