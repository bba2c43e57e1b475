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
   * Returns entries, newest first. Admins see every entry; other callers
   * see the entries of the accounts they own, and FORBIDDEN for an
   * account they do not own.
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
      } else {
        where.account = { in: await this.ownedAccounts(viewer) };
      }
      // NOTE: entries match by account name, so the owners of an account
      // re-created under a deleted account's name also see the old entries.
    }
    return this.deps.db.auditEntry.findMany({
      where,
      orderBy: { id: "desc" },
      take: limit,
    });
  }

  private async ownedAccounts(viewer: Viewer): Promise<string[]> {
    const rows = await this.deps.db.account.findMany({
      where: { owners: { some: { user: { email: viewer.email } } } },
      select: { username: true },
    });
    return rows.map((row) => row.username);
  }
}
