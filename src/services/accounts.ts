// Accounts: RabbitMQ users with Pulse permissions, and their owners.
import { randomBytes } from "node:crypto";

import {
  canonicalEmail,
  describeInvisibleCharacter,
  isEmail,
  type Viewer,
} from "../auth";
import { BadInputError, ConflictError, NotFoundError, quote } from "../errors";
import type { Prisma } from "../db";
import {
  isNotFound,
  type Permissions,
  type PolicyInfo,
  type UserInfo,
} from "../rabbitmq/management";
import {
  accountPermissions,
  queueAccount,
  validateAccountName,
} from "./pulse-names";
import {
  authorizeAccount,
  logCompensationFailure,
  type ServiceDeps,
} from "./context";
import { removeAccountPolicy, restoreAccountPolicy } from "./queue-limits";
import { enforceAccountQuota } from "./quotas";

export interface AccountRecord {
  username: string;
  owners: string[];
  createdAt: Date;
}

export interface CreateAccountInput {
  username: string;
  owners?: string[] | null;
}

const accountSelect = {
  username: true,
  createdAt: true,
  owners: {
    select: { user: { select: { email: true } } },
    orderBy: { addedAt: "asc" as const },
  },
};

type AccountRow = {
  username: string;
  createdAt: Date;
  owners: { user: { email: string } }[];
};

function toRecord(row: AccountRow): AccountRecord {
  return {
    username: row.username,
    createdAt: row.createdAt,
    owners: row.owners.map((owner) => owner.user.email),
  };
}

export class AccountService {
  constructor(private readonly deps: ServiceDeps) {}

  /** Accounts the viewer owns; every account for an admin. */
  async list(viewer: Viewer): Promise<AccountRecord[]> {
    const rows = await this.deps.db.account.findMany({
      where: viewer.isAdmin
        ? {}
        : { owners: { some: { user: { email: viewer.email } } } },
      select: accountSelect,
      orderBy: { username: "asc" },
    });
    return rows.map(toRecord);
  }

  /** Throws unless the viewer is an admin or an owner of the account. */
  async authorize(viewer: Viewer, username: string): Promise<void> {
    await authorizeAccount(this.deps, viewer, username);
  }

  async get(viewer: Viewer, username: string): Promise<AccountRecord> {
    await authorizeAccount(this.deps, viewer, username);
    const row = await this.deps.db.account.findUnique({
      where: { username },
      select: accountSelect,
    });
    if (!row) throw accountNotFound(username);
    return toRecord(row);
  }

  /**
   * Creates the RabbitMQ user, its permissions and the owner rows, and
   * removes a queue-limits policy left by an earlier account of the same
   * name. When a later step fails, the RabbitMQ user is deleted again and
   * the left-over policy put back.
   */
  async create(
    viewer: Viewer,
    input: CreateAccountInput,
  ): Promise<{ account: AccountRecord; password: string }> {
    const { username } = input;
    const owners = normalizeOwners(viewer, input.owners ?? []);
    validateAccountName(
      username,
      this.deps.reservedAccounts,
      this.deps.gatewayAccount,
    );
    await this.ensureNotReserved(username);
    await this.ensureNameFree(username);

    const password = randomBytes(24).toString("base64url");
    let brokerUserCreated = false;
    let leftOverPolicy: PolicyInfo | null = null;
    try {
      const row = await this.deps.db.$transaction(
        async (tx) => {
          if (!viewer.isAdmin) {
            await enforceAccountQuota(
              tx,
              owners,
              this.deps.quotas.maxAccountsPerUser,
              username,
            );
          }
          // The row goes in first. Its unique key makes every concurrent
          // request for the same name wait here and then fail, so only one
          // request ever touches the RabbitMQ user.
          const created = await tx.account.create({
            data: { username, owners: { create: ownerRows(owners) } },
            select: accountSelect,
          });
          await this.createBrokerUser(username, password);
          brokerUserCreated = true;
          // The policy's limits would apply to the new account's queues
          // while the API reports none.
          leftOverPolicy = await removeAccountPolicy(
            this.deps.management,
            username,
          );
          return created;
        },
        { timeout: TRANSACTION_TIMEOUT_MS },
      );
      this.deps.logger.info(
        { account: username, owners, by: viewer.email },
        "account created",
      );
      return { account: toRecord(row), password };
    } catch (error) {
      if (brokerUserCreated) {
        await this.deps.management.deleteUser(username).catch((undoError) => {
          logCompensationFailure(this.deps.logger, { account: username }, undoError);
        });
      }
      await restoreAccountPolicy(this.deps.management, leftOverPolicy).catch(
        (undoError) => {
          logCompensationFailure(
            this.deps.logger,
            { account: username },
            undoError,
          );
        },
      );
      throw await this.explainCreateFailure(username, error);
    }
  }

  /** Turns the unique-key failure of a lost race into CONFLICT. */
  private async explainCreateFailure(
    username: string,
    error: unknown,
  ): Promise<unknown> {
    if ((error as { code?: string }).code !== "P2002") return error;
    const exists = await this.deps.db.account.findUnique({
      where: { username },
      select: { id: true },
    });
    if (!exists) return error;
    return new ConflictError(
      `Account "${username}" already exists; choose another name.`,
      { account: username },
    );
  }

  /**
   * Deletes the account's queues, its queue-limits policy, its row and its
   * RabbitMQ user. The broker calls run inside the database transaction,
   * so a broker failure keeps the rows. When a later step fails, the
   * policy is put back, and a deleted user is created again with its old
   * password hash and permissions. Queues deleted before a failure stay
   * deleted.
   */
  async delete(viewer: Viewer, username: string): Promise<boolean> {
    const accountId = await authorizeAccount(this.deps, viewer, username);
    // Only accounts the gateway created are deleted, never a RabbitMQ user
    // made by other means, such as the gateway's own.
    if (accountId === null) throw accountNotFound(username);
    const { management } = this.deps;
    const user = await management.getUser(username);
    const permissions = user ? await this.readPermissions(username) : null;
    let queues: string[] = [];
    // Queues gone from the broker; their rows must go even if the rest fails.
    const deletedQueues: string[] = [];
    let removedPolicy: PolicyInfo | null = null;
    let userMayBeDeleted = false;
    try {
      await this.deps.db.$transaction(
        async (tx) => {
          // Locked before listing, so a createQueue that holds the row
          // finishes first and its queue is on the list.
          await tx.$queryRaw`
            SELECT "id" FROM "Account" WHERE "id" = ${accountId} FOR UPDATE`;
          queues = (await management.listQueues())
            .map((queue) => queue.name)
            .filter((name) => queueAccount(name) === username);
          await tx.queue.deleteMany({ where: { accountName: username } });
          await tx.account.deleteMany({ where: { username } });
          for (const name of queues) {
            await management.deleteQueue(name).catch((error: unknown) => {
              if (!isNotFound(error)) throw error;
            });
            deletedQueues.push(name);
          }
          removedPolicy = await removeAccountPolicy(management, username);
          if (user) {
            // Set first, because a failed response does not prove that
            // the broker kept the user.
            userMayBeDeleted = true;
            await management.deleteUser(username);
          }
        },
        { timeout: TRANSACTION_TIMEOUT_MS },
      );
    } catch (error) {
      if (user && userMayBeDeleted) {
        await this.restoreBrokerUser(user, permissions);
      }
      await restoreAccountPolicy(management, removedPolicy).catch(
        (undoError) => {
          logCompensationFailure(
            this.deps.logger,
            { account: username },
            undoError,
          );
        },
      );
      // A deleted queue cannot be brought back, so the rolled-back rows of
      // the queues already gone are removed; the account keeps the rest.
      await this.deps.db.queue
        .deleteMany({ where: { name: { in: deletedQueues } } })
        .catch((undoError: unknown) => {
          logCompensationFailure(
            this.deps.logger,
            { account: username, queues: deletedQueues },
            undoError,
          );
        });
      throw error;
    }
    this.deps.logger.info(
      { account: username, queues, by: viewer.email },
      "account deleted with its queues",
    );
    return true;
  }

  /** Returns the user's permissions on the vhost, or null when it has none. */
  private async readPermissions(username: string): Promise<Permissions | null> {
    try {
      return await this.deps.management.getPermissions(username);
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  /** Undoes the deletion of a RabbitMQ user whose account row stayed. */
  private async restoreBrokerUser(
    user: UserInfo,
    permissions: Permissions | null,
  ): Promise<void> {
    const { management, logger } = this.deps;
    try {
      await management.restoreUser(user);
      if (permissions) {
        await management.setPermissions(user.name, {
          configure: permissions.configure,
          write: permissions.write,
          read: permissions.read,
        });
      }
      logger.warn(
        { account: user.name },
        "account deletion failed in the database; its RabbitMQ user was " +
          "restored with its old password",
      );
    } catch (undoError) {
      logCompensationFailure(logger, { account: user.name }, undoError);
    }
  }

  /**
   * Adds an owner. The account row is locked while the owners are counted,
   * so concurrent additions cannot pass MAX_OWNERS. Unless the caller is
   * an admin, the new owner must own fewer than MAX_ACCOUNTS_PER_USER
   * accounts, so that a user cannot pass the quota by handing accounts on.
   */
  async addOwner(
    viewer: Viewer,
    username: string,
    rawEmail: string,
  ): Promise<AccountRecord> {
    const email = normalizeOwner(rawEmail);
    await this.requireManagedAccount(viewer, username);
    await this.deps.db.$transaction(async (tx) => {
      const owners = await lockOwners(tx, username);
      if (owners.includes(email)) {
        throw new ConflictError(
          `${email} is already an owner of account "${username}".`,
          { account: username, owner: email },
        );
      }
      if (owners.length >= MAX_OWNERS) {
        throw new BadInputError(
          `Account "${username}" already has ${owners.length} owners, the ` +
            `maximum; remove one before adding ${email}.`,
          { account: username, owner: email },
        );
      }
      if (!viewer.isAdmin) {
        await enforceAccountQuota(
          tx,
          [email],
          this.deps.quotas.maxAccountsPerUser,
          username,
        );
      }
      await tx.account.update({
        where: { username },
        data: { owners: { create: ownerRows([email]) } },
      });
    });
    this.deps.logger.info(
      { account: username, owner: email, by: viewer.email },
      "account owner added",
    );
    return this.get(viewer, username);
  }

  /**
   * Removes an owner, who may be the caller. The last owner cannot be
   * removed: an account always has someone to warn and to manage it.
   */
  async removeOwner(
    viewer: Viewer,
    username: string,
    rawEmail: string,
  ): Promise<AccountRecord> {
    const email = normalizeOwner(rawEmail);
    const accountId = await this.requireManagedAccount(viewer, username);
    await this.deps.db.$transaction(async (tx) => {
      const owners = await lockOwners(tx, username);
      if (!owners.includes(email)) {
        throw new NotFoundError(
          `${email} is not an owner of account "${username}"; its owners ` +
            `are listed by the account query.`,
          { account: username, owner: email },
        );
      }
      if (owners.length === 1) {
        throw new ConflictError(
          `${email} is the last owner of account "${username}"; add another ` +
            `owner first, or delete the account.`,
          { account: username, owner: email },
        );
      }
      await tx.accountOwner.deleteMany({
        where: { accountId, user: { email } },
      });
    });
    this.deps.logger.info(
      { account: username, owner: email, by: viewer.email },
      "account owner removed",
    );
    // The caller may have just removed themself, so read without checking.
    const row = await this.deps.db.account.findUniqueOrThrow({
      where: { username },
      select: accountSelect,
    });
    return toRecord(row);
  }

  /**
   * Gives the RabbitMQ user a new generated password and returns it once.
   * RabbitMQ checks a password only when a connection opens, so clients
   * connected with the old one keep running until they reconnect. When the
   * change fails, the old password is restored.
   */
  async rotatePassword(
    viewer: Viewer,
    username: string,
  ): Promise<{ account: AccountRecord; password: string }> {
    await this.requireManagedAccount(viewer, username);
    const user = await this.deps.management.getUser(username);
    if (!user) {
      throw new NotFoundError(
        `Account "${username}" has no RabbitMQ user on the broker; an admin ` +
          `must delete the account and create it again.`,
        { account: username },
      );
    }
    const password = randomBytes(24).toString("base64url");
    try {
      await this.deps.management.changePassword(username, password);
    } catch (error) {
      // The broker may have changed the password although the response
      // failed, so the old one is put back from its hash.
      await this.deps.management.restoreUser(user).catch((undoError) => {
        logCompensationFailure(
          this.deps.logger,
          { account: username },
          undoError,
        );
      });
      throw error;
    }
    this.deps.logger.info(
      { account: username, by: viewer.email },
      "account password rotated",
    );
    return { account: await this.get(viewer, username), password };
  }

  /** Authorizes the viewer and returns the id of an account row. */
  private async requireManagedAccount(
    viewer: Viewer,
    username: string,
  ): Promise<number> {
    const accountId = await authorizeAccount(this.deps, viewer, username);
    if (accountId === null) throw accountNotFound(username);
    return accountId;
  }

  private async ensureNotReserved(username: string): Promise<void> {
    const reserved = await this.deps.db.reservedAccountName.findUnique({
      where: { name: username.toLowerCase() },
      select: { name: true },
    });
    if (reserved) {
      throw new BadInputError(
        `Account name ${quote(username)} is reserved by an admin; choose ` +
          `another name.`,
        { username },
      );
    }
  }

  private async ensureNameFree(username: string): Promise<void> {
    const inDatabase = await this.deps.db.account.findUnique({
      where: { username },
      select: { id: true },
    });
    if (inDatabase) {
      throw new ConflictError(
        `Account "${username}" already exists; choose another name.`,
        { account: username },
      );
    }
    if (await this.deps.management.userExists(username)) {
      throw new ConflictError(
        `A RabbitMQ user "${username}" already exists, created outside ` +
          `this gateway; choose another name, or ask an admin about it.`,
        { account: username },
      );
    }
  }

  /**
   * Creates the user and its permissions, or deletes the user again when
   * a step fails. The caller has checked that no such user existed.
   */
  private async createBrokerUser(
    username: string,
    password: string,
  ): Promise<void> {
    try {
      // A failed response does not prove that the broker created nothing.
      await this.deps.management.createUser(username, password);
      await this.deps.management.setPermissions(
        username,
        accountPermissions(username),
      );
    } catch (error) {
      await this.deps.management.deleteUser(username).catch((undoError) => {
        if (isNotFound(undoError)) return;
        logCompensationFailure(
          this.deps.logger,
          { account: username },
          undoError,
        );
      });
      throw error;
    }
  }
}

/** Owners per account, the creator included. */
export const MAX_OWNERS = 20;

/** Long enough for the broker calls made inside a transaction. */
const TRANSACTION_TIMEOUT_MS = 20_000;

function ownerRows(owners: string[]) {
  return owners.map((email) => ({
    user: { connectOrCreate: { where: { email }, create: { email } } },
  }));
}

/**
 * Locks the account row until the transaction ends and returns its owners,
 * so that owner changes on one account run one at a time.
 *
 * The owners are read by a second statement. Under PostgreSQL's default
 * Read Committed level each statement takes its own snapshot, and a
 * statement that waited for the lock still reads other tables as of its
 * start. Joined into the locking statement, the owners could miss a
 * removal committed during the wait, and two removals could both pass.
 */
async function lockOwners(
  tx: Prisma.TransactionClient,
  username: string,
): Promise<string[]> {
  const locked = await tx.$queryRaw<{ id: number }[]>`
    SELECT "id" FROM "Account" WHERE "username" = ${username} FOR UPDATE`;
  if (locked.length === 0) throw accountNotFound(username);
  const rows = await tx.$queryRaw<{ email: string }[]>`
    SELECT u."email" FROM "AccountOwner" o
      JOIN "User" u ON u."id" = o."userId"
     WHERE o."accountId" = ${locked[0].id}`;
  return rows.map((row) => row.email);
}

function normalizeOwner(raw: string): string {
  const email = canonicalEmail(raw.trim());
  if (!isEmail(email)) throw invalidOwner(raw, email);
  return email;
}

function normalizeOwners(viewer: Viewer, owners: string[]): string[] {
  if (owners.length >= MAX_OWNERS) {
    throw new BadInputError(
      `Too many owners (${owners.length}): an account has at most ` +
        `${MAX_OWNERS}, the creator included.`,
      { owners: owners.length },
    );
  }
  const all = [
    viewer.email,
    ...owners.map((email) => canonicalEmail(email.trim())),
  ];
  for (const email of all) {
    if (!isEmail(email)) throw invalidOwner(email, email);
  }
  return [...new Set(all)];
}

function invalidOwner(raw: string, normalized: string): BadInputError {
  const reason =
    describeInvisibleCharacter(normalized) ??
    `owners are e-mail addresses such as "someone@example.com"`;
  return new BadInputError(`Invalid owner ${quote(raw)}: ${reason}.`, {
    owner: raw,
  });
}

function accountNotFound(username: string): NotFoundError {
  return new NotFoundError(
    `Account "${username}" not found among the accounts this gateway ` +
      `manages; check the name with the accounts query.`,
    {
      account: username,
    },
  );
}
