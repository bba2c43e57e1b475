import { Client } from "pg";

import type { Logger } from "../logger";

/**
 * Time allowed to open a connection, handshake included. pg waits for
 * ever by default, so a server that accepts connections and never replies
 * would hang every request instead of failing it.
 */
export const CONNECT_TIMEOUT_MS = 5000;

/** Database name and the address of its server, from a connection URL. */
export function describeDatabase(databaseUrl: string) {
  const url = new URL(databaseUrl);
  return {
    name: decodeURIComponent(url.pathname.replace(/^\//, "")) || "postgres",
    address: `${url.hostname}:${url.port || "5432"}`,
  };
}

/**
 * Creates the database named in the URL when it does not exist, connecting
 * to the server's `postgres` database to do so. Returns true if created.
 */
export async function ensureDatabase(
  databaseUrl: string,
  logger: Logger,
): Promise<boolean> {
  const { name } = describeDatabase(databaseUrl);
  const adminUrl = new URL(databaseUrl);
  adminUrl.pathname = "/postgres";
  const client = new Client({
    connectionString: adminUrl.toString(),
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  });
  await client.connect();
  try {
    const found = await client.query(
      "SELECT 1 FROM pg_database WHERE datname = $1",
      [name],
    );
    if (found.rowCount) return false;
    await client.query(`CREATE DATABASE ${quoteIdentifier(name)}`);
    logger.info({ database: name }, "database created");
    return true;
  } catch (error) {
    // Another instance may have created it between the check and CREATE.
    if ((error as { code?: string }).code === "42P04") return false;
    throw error;
  } finally {
    await client.end();
  }
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
