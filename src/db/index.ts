// PostgreSQL access: the Prisma client over the pg driver adapter, database
// creation and the start-up migration runner.
import { PrismaPg } from "@prisma/adapter-pg";

import { CONNECT_TIMEOUT_MS } from "./database";
import { PrismaClient } from "./generated/client";

export { applyMigrations, readMigrations, MIGRATIONS_DIR } from "./migrate";
export {
  CONNECT_TIMEOUT_MS,
  describeDatabase,
  ensureDatabase,
} from "./database";
export { isDatabaseUnavailable, socketErrorCode } from "./unavailable";
export { PrismaClient, Prisma } from "./generated/client";
export type {
  Account,
  Binding,
  GuardianEvent,
  Queue,
  User,
} from "./generated/client";
export { GuardianEventKind } from "./generated/enums";

export type Database = PrismaClient;

/** Creates a Prisma client that talks to PostgreSQL through `pg`. */
export function createDatabase(databaseUrl: string): Database {
  const adapter = new PrismaPg({
    connectionString: databaseUrl,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  });
  return new PrismaClient({ adapter });
}
