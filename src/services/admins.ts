// Admins and the names reserved by admins. An admin is a user listed in
// ADMIN_EMAILS or a user whose row has isAdmin set by another admin.
import {
  canonicalEmail,
  describeInvisibleCharacter,
  isEmail,
  type Viewer,
} from "../auth";
import {
  BadInputError,
  ConflictError,
  ForbiddenError,
  NotFoundError,
  quote,
} from "../errors";
import type { ServiceDeps } from "./context";
import { ACCOUNT_NAME_PATTERN } from "./pulse-names";

export interface UserRecord {
  email: string;
  isAdmin: boolean;
  /** True for users listed in ADMIN_EMAILS, who cannot be revoked here. */
  adminBySetting: boolean;
  /** Accounts the user owns. */
  accounts: string[];
  /** Null for an ADMIN_EMAILS user who has not used the gateway yet. */
  createdAt: Date | null;
}

export interface ReservedNameRecord {
  name: string;
  createdBy: string;
  createdAt: Date;
}

export class AdminService {
  private readonly settingAdmins: Set<string>;

  constructor(
    private readonly deps: ServiceDeps,
    adminEmails: readonly string[],
  ) {
    this.settingAdmins = new Set(adminEmails.map(canonicalEmail));
  }

  /** True when the user's row has the admin flag; ADMIN_EMAILS not read. */
  async isStoredAdmin(email: string): Promise<boolean> {
    const row = await this.deps.db.user.findUnique({
      where: { email },
      select: { isAdmin: true },
    });
    return row?.isAdmin ?? false;
  }

  /** Lists every stored user and every ADMIN_EMAILS address. */
  async listUsers(viewer: Viewer): Promise<UserRecord[]> {
    requireAdmin(viewer, "list users");
    const rows = await this.deps.db.user.findMany({
      orderBy: { email: "asc" },
      select: {
        email: true,
        isAdmin: true,
        createdAt: true,
        accounts: {
          select: { account: { select: { username: true } } },
          orderBy: { addedAt: "asc" },
        },
      },
    });
    const users: UserRecord[] = rows.map((row) => ({
      email: row.email,
      isAdmin: row.isAdmin || this.settingAdmins.has(row.email),
      adminBySetting: this.settingAdmins.has(row.email),
      accounts: row.accounts.map((owner) => owner.account.username),
      createdAt: row.createdAt,
    }));
    const known = new Set(users.map((user) => user.email));
    for (const email of this.settingAdmins) {
      if (known.has(email)) continue;
      users.push({
        email,
        isAdmin: true,
        adminBySetting: true,
        accounts: [],
        createdAt: null,
      });
    }
    return users.sort((a, b) => a.email.localeCompare(b.email));
  }

  /** Sets the admin flag of a user, creating the user's row if needed. */
  async grantAdmin(viewer: Viewer, rawEmail: string): Promise<UserRecord> {
    requireAdmin(viewer, "grant admin");
    const email = normalizeEmail(rawEmail);
    if (this.settingAdmins.has(email) || (await this.isStoredAdmin(email))) {
      throw new ConflictError(
        `${email} is already an admin; list admins with the users query.`,
        { email },
      );
    }
    await this.deps.db.user.upsert({
      where: { email },
      create: { email, isAdmin: true },
      update: { isAdmin: true },
    });
    this.deps.logger.info({ email, by: viewer.email }, "admin granted");
    return this.getUser(email);
  }

  /**
   * Clears the admin flag of a user. ADMIN_EMAILS admins stay admins, and
   * the last admin cannot be revoked, so the gateway always has one. The
   * admin rows are locked while counting, so two admins revoking each
   * other at once cannot both succeed.
   */
  async revokeAdmin(viewer: Viewer, rawEmail: string): Promise<UserRecord> {
    requireAdmin(viewer, "revoke admin");
    const email = normalizeEmail(rawEmail);
    if (this.settingAdmins.has(email)) {
      throw new BadInputError(
        `${email} is an admin through the ADMIN_EMAILS setting; remove it ` +
          `from that setting and restart the gateway instead.`,
        { email },
      );
    }
    await this.deps.db.$transaction(async (tx) => {
      const admins = await tx.$queryRaw<{ email: string }[]>`
        SELECT "email" FROM "User" WHERE "isAdmin" FOR UPDATE`;
      const stored = admins.map((row) => row.email);
      if (!stored.includes(email)) {
        throw new NotFoundError(
          `${email} is not an admin; list admins with the users query.`,
          { email },
        );
      }
      const remaining = new Set([...this.settingAdmins, ...stored]);
      remaining.delete(email);
      if (remaining.size === 0) {
        throw new ConflictError(
          `${email} is the last admin; grant admin to someone else first, ` +
            `or list admins in the ADMIN_EMAILS setting.`,
          { email },
        );
      }
      await tx.user.update({ where: { email }, data: { isAdmin: false } });
    });
    this.deps.logger.info({ email, by: viewer.email }, "admin revoked");
    return this.getUser(email);
  }

  async listReservedNames(viewer: Viewer): Promise<ReservedNameRecord[]> {
    requireAdmin(viewer, "list reserved account names");
    return this.deps.db.reservedAccountName.findMany({
      orderBy: { name: "asc" },
    });
  }

  /** Reserves an account name; accounts that already have it stay. */
  async reserveName(
    viewer: Viewer,
    rawName: string,
  ): Promise<ReservedNameRecord> {
    requireAdmin(viewer, "reserve account names");
    const name = rawName.trim().toLowerCase();
    if (!ACCOUNT_NAME_PATTERN.test(name)) {
      throw new BadInputError(
        `Invalid account name ${quote(rawName)}: it must start with a letter ` +
          `and contain only letters, digits, ".", "_" and "-".`,
        { name: rawName },
      );
    }
    try {
      const row = await this.deps.db.reservedAccountName.create({
        data: { name, createdBy: viewer.email },
      });
      this.deps.logger.info(
        { name, by: viewer.email },
        "account name reserved",
      );
      return row;
    } catch (error) {
      if ((error as { code?: string }).code !== "P2002") throw error;
      throw new ConflictError(`Account name "${name}" is already reserved.`, {
        name,
      });
    }
  }

  async unreserveName(
    viewer: Viewer,
    rawName: string,
  ): Promise<ReservedNameRecord> {
    requireAdmin(viewer, "remove reserved account names");
    const name = rawName.trim().toLowerCase();
    const row = await this.deps.db.reservedAccountName.findUnique({
      where: { name },
    });
    if (!row) {
      throw new NotFoundError(
        `Account name ${quote(name)} is not in the reserved list; see it ` +
          `with the reservedAccountNames query. Names matched by the ` +
          `RESERVED_ACCOUNTS setting can only be freed there.`,
        { name },
      );
    }
    await this.deps.db.reservedAccountName.deleteMany({ where: { name } });
    this.deps.logger.info({ name, by: viewer.email }, "account name freed");
    return row;
  }

  private async getUser(email: string): Promise<UserRecord> {
    const row = await this.deps.db.user.findUniqueOrThrow({
      where: { email },
      select: {
        email: true,
        isAdmin: true,
        createdAt: true,
        accounts: { select: { account: { select: { username: true } } } },
      },
    });
    return {
      email: row.email,
      isAdmin: row.isAdmin || this.settingAdmins.has(email),
      adminBySetting: this.settingAdmins.has(email),
      accounts: row.accounts.map((owner) => owner.account.username),
      createdAt: row.createdAt,
    };
  }
}

/** Throws FORBIDDEN unless the viewer is an admin. */
export function requireAdmin(viewer: Viewer, action: string): void {
  if (viewer.isAdmin) return;
  throw new ForbiddenError(
    `Only admins may ${action}; ${viewer.email} is not an admin.`,
    { viewer: viewer.email },
  );
}

export function normalizeEmail(raw: string): string {
  const email = canonicalEmail(raw.trim());
  if (!isEmail(email)) {
    const reason =
      describeInvisibleCharacter(email) ??
      `expected an address such as "someone@example.com"`;
    throw new BadInputError(`Invalid e-mail address ${quote(raw)}: ${reason}.`, {
      email: raw,
    });
  }
  return email;
}
