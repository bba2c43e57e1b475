import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";

import { Client } from "pg";

import type { Logger } from "../logger";
import { CONNECT_TIMEOUT_MS } from "./database";

/** Folder of the committed migrations, in Prisma's own layout. */
export const MIGRATIONS_DIR = path.resolve(__dirname, "../../prisma/migrations");

// The advisory lock key that `prisma migrate deploy` takes, so this code and
// Prisma's tool never apply migrations at the same time.
const PRISMA_MIGRATE_LOCK_KEY = 72707369;

// The bookkeeping table of `prisma migrate`, created exactly as Prisma
// creates it so that either tool can take over from the other.
const CREATE_MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

/** Reads prisma/migrations/<name>/migration.sql, in name order. */
export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  const migrations: Migration[] = [];
  for (const name of names) {
    const sql = await readFile(path.join(dir, name, "migration.sql"), "utf8");
    const checksum = createHash("sha256").update(sql).digest("hex");
    migrations.push({ name, sql, checksum });
  }
  return migrations;
}

/**
 * Applies every migration not yet recorded in _prisma_migrations, each in
 * its own transaction, and returns the names applied. Stops on a migration
 * that failed earlier, as `prisma migrate deploy` does.
 */
export async function applyMigrations(
  databaseUrl: string,
  logger: Logger,
  dir = MIGRATIONS_DIR,
): Promise<string[]> {
  const migrations = await readMigrations(dir);
  const client = new Client({
    connectionString: databaseUrl,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  });
  await client.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [
      PRISMA_MIGRATE_LOCK_KEY,
    ]);
    await client.query(CREATE_MIGRATIONS_TABLE);
    const applied = await readApplied(client);
    const pending = selectPending(migrations, applied, logger);
    for (const migration of pending) {
      await applyOne(client, migration);
      logger.info({ migration: migration.name }, "migration applied");
    }
    return pending.map((migration) => migration.name);
  } finally {
    await client
      .query("SELECT pg_advisory_unlock($1)", [PRISMA_MIGRATE_LOCK_KEY])
      .catch(() => undefined);
    await client.end();
  }
}

async function readApplied(client: Client): Promise<AppliedRow[]> {
  const result = await client.query<AppliedRow>(
    `SELECT migration_name, checksum, finished_at, rolled_back_at
       FROM "_prisma_migrations"`,
  );
  return result.rows;
}

function selectPending(
  migrations: Migration[],
  applied: AppliedRow[],
  logger: Logger,
): Migration[] {
  const failed = applied.find(
    (row) => row.finished_at === null && row.rolled_back_at === null,
  );
  if (failed) {
    throw new Error(
      `Migration ${failed.migration_name} failed earlier and is still ` +
        `recorded as started in _prisma_migrations; repair the database, ` +
        `then mark it rolled back or applied with ` +
        `\`prisma migrate resolve\` before starting again.`,
    );
  }
  const done = new Map(
    applied
      .filter((row) => row.finished_at !== null)
      .map((row) => [row.migration_name, row.checksum]),
  );
  for (const migration of migrations) {
    const checksum = done.get(migration.name);
    if (checksum && checksum !== migration.checksum) {
      logger.warn(
        { migration: migration.name },
        "applied migration was edited after it ran; its new text is ignored",
      );
    }
  }
  return migrations.filter((migration) => !done.has(migration.name));
}

async function applyOne(client: Client, migration: Migration): Promise<void> {
  const id = randomUUID();
  await client.query(
    `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at)
     VALUES ($1, $2, $3, now())`,
    [id, migration.checksum, migration.name],
  );
  try {
    await client.query("BEGIN");
    await client.query(migration.sql);
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    await client.query(
      `UPDATE "_prisma_migrations" SET logs = $2, rolled_back_at = now()
        WHERE id = $1`,
      [id, String((error as Error).message)],
    );
    throw new Error(
      `Migration ${migration.name} failed: ${(error as Error).message}`,
      { cause: error },
    );
  }
  await client.query(
    `UPDATE "_prisma_migrations"
        SET finished_at = now(), applied_steps_count = 1
      WHERE id = $1`,
    [id],
  );
}
