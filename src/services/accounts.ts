// Accounts: RabbitMQ users with Pulse permissions, and their owners.
import { randomBytes } from "node:crypto";

import { isEmail, type Viewer } from "../auth";
import { BadInputError, ConflictError, NotFoundError, quote } from "../errors";
import {
  accountPermissions,
  validateAccountName,
} from "./pulse-names";
import {
  authorizeAccount,
  logCompensationFailure,
  type ServiceDeps,
} from "./context";

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
   * Creates the RabbitMQ user, its permissions and the owner rows. When the
   * database write fails, the RabbitMQ user is deleted again.
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
    await this.ensureNameFree(username);

    const password = randomBytes(24).toString("base64url");
    await this.createBrokerUser(username, password);
    try {
      const row = await this.deps.db.account.create({
        data: {
          username,
          owners: {
            create: owners.map((email) => ({
              user: {
                connectOrCreate: { where: { email }, create: { email } },
              },
            })),
          },
        },
        select: accountSelect,
      });
      this.deps.logger.info(
        { account: username, owners, by: viewer.email },
        "account created",
      );
      return { account: toRecord(row), password };
    } catch (error) {
      await this.deps.management.deleteUser(username).catch((undoError) => {
        logCompensationFailure(this.deps.logger, { account: username }, undoError);
      });
      throw error;
    }
  }

  /**
   * Deletes the database row and the RabbitMQ user in one transaction, so a
   * broker failure leaves the row in place. Queues stay on the broker.
   */
  async delete(viewer: Viewer, username: string): Promise<boolean> {
    const accountId = await authorizeAccount(this.deps, viewer, username);
    // Only accounts the gateway created are deleted, never a RabbitMQ user
    // made by other means, such as the gateway's own.
    if (accountId === null) throw accountNotFound(username);
    const exists = await this.deps.management.userExists(username);
    await this.deps.db.$transaction(async (tx) => {
      await tx.account.deleteMany({ where: { username } });
      if (exists) await this.deps.management.deleteUser(username);
    });
    this.deps.logger.info(
      { account: username, by: viewer.email },
      "account deleted",
    );
    return true;
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

  private async createBrokerUser(
    username: string,
    password: string,
  ): Promise<void> {
    await this.deps.management.createUser(username, password);
    try {
      await this.deps.management.setPermissions(
        username,
        accountPermissions(username),
      );
    } catch (error) {
      await this.deps.management.deleteUser(username).catch((undoError) => {
        logCompensationFailure(this.deps.logger, { account: username }, undoError);
      });
      throw error;
    }
  }
}

/** Owners per account, the creator included. */
export const MAX_OWNERS = 20;

function normalizeOwners(viewer: Viewer, owners: string[]): string[] {
  if (owners.length >= MAX_OWNERS) {
    throw new BadInputError(
      `Too many owners (${owners.length}): an account has at most ` +
        `${MAX_OWNERS}, the creator included.`,
      { owners: owners.length },
    );
  }
  const all = [viewer.email, ...owners.map((email) => email.trim().toLowerCase())];
  for (const email of all) {
    if (!isEmail(email)) {
      throw new BadInputError(
        `Invalid owner ${quote(email)}: owners are e-mail addresses such as ` +
          `"someone@example.com".`,
        { owner: email },
      );
    }
  }
  return [...new Set(all)];
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
