// The audit log: one row per mutation request, whatever its outcome.
import type { Viewer } from "../auth";
import type { Prisma } from "../db";
import { BadInputError } from "../errors";
import { authorizeAccount, type ServiceDeps } from "./context";

export interface AuditRecord {
  id: number;
  actor: string | null;
  mutation: string;
  account: string | null;
  object: string | null;
  arguments: unknown;
  outcome: string;
  error: string | null;
  at: Date;
}

export type NewAuditEntry = Omit<AuditRecord, "id" | "at">;

export interface AuditQuery {
  account?: string | null;
  object?: string | null;
  limit?: number | null;
  /** Only entries with an id below this, to page back in time. */
  before?: number | null;
}

export const DEFAULT_AUDIT_LIMIT = 50;
export const MAX_AUDIT_LIMIT = 500;

/** Outcome stored for a mutation that returned without an error. */
export const AUDIT_OK = "ok";

export class AuditLog {
  constructor(private readonly deps: ServiceDeps) {}

  async record(entry: NewAuditEntry): Promise<void> {
    await this.deps.db.auditEntry.create({
      data: { ...entry, arguments: entry.arguments as Prisma.InputJsonValue },
    });
  }

  /**
   * Returns entries, newest first. Admins see every entry. Other callers
   * see the entries of the accounts they own, and FORBIDDEN for an
   * account they do not own. They see only entries written by signed-in
   * callers since the account was created, so neither requests without a
   * token nor the owners of an earlier account of the same name show up.
   */
  async list(viewer: Viewer, query: AuditQuery): Promise<AuditRecord[]> {
    const limit = query.limit ?? DEFAULT_AUDIT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_LIMIT) {
      throw new BadInputError(
        `Invalid limit ${limit}: use 1 to ${MAX_AUDIT_LIMIT}, and page back ` +
          `with \`before\` set to the last id returned.`,
        { limit },
      );
    }
    const where: Prisma.AuditEntryWhereInput = {};
    if (query.account) where.account = query.account;
    if (query.object) where.object = query.object;
    if (query.before != null) where.id = { lt: query.before };
    if (!viewer.isAdmin) {
      if (query.account) {
        await authorizeAccount(this.deps, viewer, query.account);
      }
      where.actor = { not: null };
      where.OR = await this.ownedLifetimes(viewer, query.account ?? null);
    }
    return this.deps.db.auditEntry.findMany({
      where,
      orderBy: { id: "desc" },
      take: limit,
    });
  }

  /**
   * Returns one condition per account the viewer owns (only `account`
   * when given): entries of that account written at or after its
   * creation.
   */
  private async ownedLifetimes(
    viewer: Viewer,
    account: string | null,
  ): Promise<Prisma.AuditEntryWhereInput[]> {
    const rows = await this.deps.db.account.findMany({
      where: {
        owners: { some: { user: { email: viewer.email } } },
        ...(account === null ? {} : { username: account }),
      },
      select: { username: true, createdAt: true },
    });
    // An empty OR matches no row in Prisma 7.10, which the stranger test in
    // test/audit.test.ts checks, so a caller who owns no account sees none.
    return rows.map((row) => ({
      account: row.username,
      at: { gte: row.createdAt },
    }));
  }
}
