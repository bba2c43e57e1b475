import { Client } from "pg";

import { CONNECT_TIMEOUT_MS } from "../db";
import type { Logger } from "../logger";

// Key of the PostgreSQL advisory lock that the acting guardian holds:
// the ASCII bytes of "puls".
const GUARDIAN_LOCK_KEY = 0x70756c73;

/**
 * Session-level advisory lock on its own connection, so that among several
 * gateway instances against one database only one guardian acts. The lock
 * goes when the connection does, letting another instance take over.
 */
export class GuardianLock {
  private client: Client | null = null;
  private held = false;
  /** Error of the last attempt to take the lock, if it failed. */
  lastError: Error | null = null;

  constructor(
    private readonly databaseUrl: string,
    private readonly logger: Logger,
  ) {}

  /** Tries to take the lock; returns true while this instance holds it. */
  async acquire(): Promise<boolean> {
    if (this.held) return true;
    this.lastError = null;
    try {
      const client = await this.connect();
      const result = await client.query<{ locked: boolean }>(
        "SELECT pg_try_advisory_lock($1) AS locked",
        [GUARDIAN_LOCK_KEY],
      );
      this.held = result.rows[0].locked;
      if (this.held) this.logger.info("guardian lock acquired");
    } catch (error) {
      this.logger.warn({ err: error }, "guardian lock query failed");
      this.lastError = error as Error;
      await this.release();
    }
    return this.held;
  }

  async release(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.held = false;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<Client> {
    if (this.client) return this.client;
    const client = new Client({
      connectionString: this.databaseUrl,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    client.on("error", (error) => {
      this.logger.warn({ err: error }, "guardian lock connection lost");
      if (this.client === client) {
        this.client = null;
        this.held = false;
      }
    });
    await client.connect();
    this.client = client;
    return client;
  }
}
