// Queues: creation and deletion on the broker with their database rows, and
// views that join live statistics with what the gateway stores.
import type { Viewer } from "../auth";
import type { Queue as QueueRow } from "../db";
import type { StatsSnapshot } from "../stats";
import {
  BadInputError,
  ConflictError,
  ForbiddenError,
  NotFoundError,
  quote,
} from "../errors";
import {
  isNotFound,
  type BindingInfo,
  type QueueInfo,
} from "../rabbitmq/management";
import {
  authorizeAccount,
  logCompensationFailure,
  type ServiceDeps,
} from "./context";
import {
  buildQueueName,
  queueAccount,
  requireQueueAccount,
} from "./pulse-names";
import { enforceQueueQuota } from "./quotas";

/** Maximum time a queue creation may hold its account row locked. */
const QUEUE_TRANSACTION_TIMEOUT_MS = 20_000;

export interface BindingRecord {
  queue: string;
  exchange: string;
  routingKeyPattern: string;
}

export interface QueueRecord {
  name: string;
  account: string;
  durable: boolean;
  /** Null while the broker has not yet reported statistics for the queue. */
  messages: number | null;
  messagesReady: number | null;
  messagesUnacknowledged: number | null;
  consumers: number | null;
  bindings: BindingRecord[];
  unbounded: boolean;
  warned: boolean;
}

/** Selection of queues for a list or a statistics stream. */
export interface QueueSelection {
  accounts: string[] | "all";
  /** Only these queue names, when set. */
  names: string[] | null;
}

export interface CreateQueueInput {
  account: string;
  name: string;
  durable?: boolean | null;
}

export class QueueService {
  constructor(private readonly deps: ServiceDeps) {}

  /** Queues of one account, or of every account the viewer owns. */
  async list(viewer: Viewer, account?: string | null): Promise<QueueRecord[]> {
    const selection = await this.authorizeSelection(viewer, { account });
    let snapshot =
      this.deps.stats.latest() ?? (await this.deps.stats.refresh());
    if (await this.createdSince(snapshot, selection)) {
      snapshot = await this.deps.stats.refresh();
    }
    return this.fromSnapshot(snapshot, selection);
  }

  /**
   * Tells whether a selected account has a queue created after the
   * snapshot began, which the snapshot cannot list. Its row's lastSeenAt
   * is set after the broker declared it. A queue deleted since is still
   * listed until the next poll.
   */
  private async createdSince(
    snapshot: StatsSnapshot,
    selection: QueueSelection,
  ): Promise<boolean> {
    const fresh = await this.deps.db.queue.findMany({
      where: {
        lastSeenAt: { gte: snapshot.startedAt },
        ...(selection.accounts === "all"
          ? {}
          : { accountName: { in: selection.accounts } }),
      },
      select: { name: true },
    });
    return fresh.some((row) => !snapshot.queues.has(row.name));
  }

  /**
   * Checks that the viewer may see the queues selected by name or account
   * (by default, those of every account the viewer owns).
   */
  async authorizeSelection(
    viewer: Viewer,
    wanted: { account?: string | null; names?: string[] | null },
  ): Promise<QueueSelection> {
    const names = wanted.names?.length ? [...new Set(wanted.names)] : null;
    if (names) {
      const accounts = new Set(names.map(requireQueueAccount));
      for (const account of accounts) {
        await authorizeAccount(this.deps, viewer, account);
      }
    }
    if (wanted.account) {
      await authorizeAccount(this.deps, viewer, wanted.account);
      return { accounts: [wanted.account], names };
    }
    if (names) return { accounts: "all", names };
    return { accounts: await this.viewerAccounts(viewer), names: null };
  }

  /**
   * Checks that queues selected by name exist and belong to the selected
   * account, if any, so that a mistyped name is an error rather than a
   * queue silently missing from the results. Call it after
   * authorizeSelection, so that callers learn nothing about queues of
   * accounts they do not own.
   */
  async requireSelectedQueues(wanted: {
    account?: string | null;
    names?: string[] | null;
  }): Promise<void> {
    const names = [...new Set(wanted.names ?? [])];
    const { account } = wanted;
    if (account) {
      const others = names.filter((name) => queueAccount(name) !== account);
      if (others.length > 0) {
        const list = others.map((name) => quote(name)).join(", ");
        throw new BadInputError(
          `Queues ${list} do not belong to account ${quote(account)}; ` +
            `leave out account, or name only ` +
            `queue/${account}/ queues.`,
          { account, names: others },
        );
      }
    }
    const snapshot = this.deps.stats.latest();
    const missing: string[] = [];
    for (const name of names) {
      // The snapshot can be one poll old, so the broker decides.
      if (snapshot?.queues.has(name)) continue;
      if (!(await this.exists(name))) missing.push(name);
    }
    if (missing.length > 0) {
      const list = missing.map((name) => quote(name)).join(", ");
      throw new NotFoundError(
        `Queues ${list} not found on the broker; check the names with the ` +
          `queues query.`,
        { names: missing },
      );
    }
  }

  /** The selected queues of a stats snapshot, joined with their rows. */
  async fromSnapshot(
    snapshot: StatsSnapshot,
    selection: QueueSelection,
  ): Promise<QueueRecord[]> {
    const { accounts, names: only } = selection;
    const wanted = (name: string) => {
      const owner = queueAccount(name);
      if (owner === null) return false;
      if (only && !only.includes(name)) return false;
      return accounts === "all" || accounts.includes(owner);
    };
    const names = [...snapshot.queues.keys()].filter(wanted).sort();
    const rows = await this.deps.db.queue.findMany({
      where: { name: { in: names } },
    });
    const rowByName = new Map(rows.map((row) => [row.name, row]));
    return names.map((name) =>
      toRecord(
        snapshot.queues.get(name)!,
        snapshot.bindings.get(name) ?? [],
        rowByName.get(name),
      ),
    );
  }

  /** Returns one queue, with statistics read from the broker now. */
  async get(viewer: Viewer, name: string): Promise<QueueRecord> {
    const account = requireQueueAccount(name);
    await authorizeAccount(this.deps, viewer, account);
    const info = await this.fetchQueue(name);
    const [bindings, row] = await Promise.all([
      this.deps.management.listQueueBindings(name),
      this.deps.db.queue.findUnique({ where: { name } }),
    ]);
    return toRecord(info, bindings, row ?? undefined);
  }

  /** Declares queue/<account>/<name> and records it. */
  async create(viewer: Viewer, input: CreateQueueInput): Promise<QueueRecord> {
    const accountId = await authorizeAccount(this.deps, viewer, input.account);
    const name = buildQueueName(input.account, input.name);
    const durable = input.durable ?? true;
    if (await this.exists(name)) {
      throw new ConflictError(
        `Queue "${name}" already exists; pick another name, or use the ` +
          `existing queue (queue(name: "${name}") shows it).`,
        { queue: name },
      );
    }
    // The account row stays locked until the queue's row is in, and
    // deleteAccount locks it FOR UPDATE before it lists the account's
    // queues, so a queue is never created behind a deletion. The lock is
    // FOR UPDATE here too, so that concurrent creations on one account
    // count its queues one at a time and cannot pass the quota together.
    let declared = false;
    try {
      await this.deps.db.$transaction(
        async (tx) => {
          if (accountId !== null) {
            const locked = await tx.$queryRaw<{ id: number }[]>`
              SELECT "id" FROM "Account" WHERE "id" = ${accountId} FOR UPDATE`;
            if (locked.length === 0) {
              throw new NotFoundError(
                `Account "${input.account}" was deleted while queue ` +
                  `"${name}" was being created; create the account again.`,
                { account: input.account },
              );
            }
          }
          if (!viewer.isAdmin) {
            await enforceQueueQuota(
              tx,
              input.account,
              name,
              this.deps.quotas.maxQueuesPerAccount,
            );
          }
          // Set first, because a failed reply does not prove that the
          // broker declared nothing, and the queue did not exist before.
          declared = true;
          await this.deps.management.declareQueue(name, { durable });
          // lastSeenAt is taken after the declare, not at the start of the
          // transaction: a guardian pass whose snapshot began before the
          // declare must not take the new queue for one that vanished.
          const lastSeenAt = new Date();
          await tx.queue.upsert({
            where: { name },
            create: {
              name,
              accountName: input.account,
              accountId,
              durable,
              lastSeenAt,
            },
            update: { accountId, durable, lastSeenAt },
          });
        },
        { timeout: QUEUE_TRANSACTION_TIMEOUT_MS },
      );
    } catch (error) {
      if (declared) {
        await this.deps.management.deleteQueue(name).catch((undoError) => {
          if (!isNotFound(undoError)) {
            logCompensationFailure(this.deps.logger, { queue: name }, undoError);
          }
        });
      }
      throw error;
    }
    this.deps.logger.info({ queue: name, by: viewer.email }, "queue created");
    return this.get(viewer, name);
  }

  /**
   * Deletes the queue on the broker and its row in one transaction, so a
   * broker failure keeps the row.
   * NOTE: a commit that fails after the broker deleted the queue keeps the
   * row of a queue that is gone. The guardian removes it on its next pass.
   */
  async delete(viewer: Viewer, name: string): Promise<boolean> {
    const account = requireQueueAccount(name);
    await authorizeAccount(this.deps, viewer, account);
    await this.fetchQueue(name);
    await this.deps.db.$transaction(async (tx) => {
      await tx.queue.deleteMany({ where: { name } });
      try {
        await this.deps.management.deleteQueue(name);
      } catch (error) {
        // Another request deleted it since fetchQueue found it.
        if (isNotFound(error)) throw queueNotFound(name);
        throw error;
      }
    });
    this.deps.logger.info({ queue: name, by: viewer.email }, "queue deleted");
    return true;
  }

  /** Exempts a queue from the guardian's deletion, or ends the exemption. */
  async setUnbounded(
    viewer: Viewer,
    name: string,
    unbounded: boolean,
  ): Promise<QueueRecord> {
    if (!viewer.isAdmin) {
      throw new ForbiddenError(
        `Only admins may change whether queue "${name}" is unbounded; ` +
          `ask an admin.`,
        { queue: name },
      );
    }
    const account = requireQueueAccount(name);
    await this.fetchQueue(name);
    const known = await this.deps.db.account.findUnique({
      where: { username: account },
      select: { id: true },
    });
    await this.deps.db.queue.upsert({
      where: { name },
      create: { name, accountName: account, accountId: known?.id, unbounded },
      update: { unbounded },
    });
    this.deps.logger.info(
      { queue: name, unbounded, by: viewer.email },
      "queue unbounded flag set",
    );
    return this.get(viewer, name);
  }

  async fetchQueue(name: string): Promise<QueueInfo> {
    try {
      return await this.deps.management.getQueue(name);
    } catch (error) {
      if (isNotFound(error)) throw queueNotFound(name);
      throw error;
    }
  }

  private async exists(name: string): Promise<boolean> {
    try {
      await this.deps.management.getQueue(name);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  private async viewerAccounts(viewer: Viewer): Promise<string[] | "all"> {
    if (viewer.isAdmin) return "all";
    const rows = await this.deps.db.account.findMany({
      where: { owners: { some: { user: { email: viewer.email } } } },
      select: { username: true },
    });
    return rows.map((row) => row.username);
  }
}

function queueNotFound(name: string): NotFoundError {
  return new NotFoundError(
    `Queue "${name}" not found on the broker; check the name with the ` +
      `queues query.`,
    { queue: name },
  );
}

export function toBindingRecords(bindings: BindingInfo[]): BindingRecord[] {
  return bindings
    .filter((b) => b.destination_type === "queue" && b.source !== "")
    .map((b) => ({
      queue: b.destination,
      exchange: b.source,
      routingKeyPattern: b.routing_key,
    }));
}

function toRecord(
  info: QueueInfo,
  bindings: BindingInfo[],
  row: QueueRow | undefined,
): QueueRecord {
  return {
    name: info.name,
    account: queueAccount(info.name) ?? "",
    durable: info.durable,
    messages: info.messages ?? null,
    messagesReady: info.messages_ready ?? null,
    messagesUnacknowledged: info.messages_unacknowledged ?? null,
    consumers: info.consumers ?? null,
    bindings: toBindingRecords(bindings),
    unbounded: row?.unbounded ?? false,
    warned: row?.warned ?? false,
  };
}
