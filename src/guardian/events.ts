import { EventEmitter } from "node:events";

import { Client } from "pg";

import {
  CONNECT_TIMEOUT_MS,
  type Database,
  type GuardianEventKind,
  type Prisma,
} from "../db";
import { RateLimitedLog, type Logger } from "../logger";

/** PostgreSQL channel on which every guardian announces its events. */
export const GUARDIAN_EVENTS_CHANNEL = "pulse_guardian_events";

/** First delay before the listening connection is opened again. */
const LISTEN_RETRY_MS = 500;
/**
 * Maximum delay between attempts. A connection attempt is cheap, and a
 * short cap shortens the time during which announcements are missed.
 */
const LISTEN_MAX_RETRY_MS = 5000;

/** An account name and the time its current account was created. */
export interface AccountLifetime {
  account: string;
  since: Date;
}

export interface GuardianEventRecord {
  queue: string;
  account: string;
  kind: GuardianEventKind;
  /** The queue's `messages` when the event happened, if known. */
  size: number | null;
  /** The threshold that was crossed, if any. */
  threshold: number | null;
  /** Facts beyond size and threshold, such as a binding or an error. */
  detail: string | null;
  at: Date;
}

/**
 * Stores guardian events, logs them and publishes them to in-process
 * listeners such as the guardianEvents subscription. Each event is also
 * announced with PostgreSQL NOTIFY, and a log that listens (see `listen`)
 * publishes what any guardian on the same database announces, so every
 * gateway's subscribers see the events of the one guardian that acts.
 */
export class GuardianEventLog extends EventEmitter<{
  event: [GuardianEventRecord];
}> {
  private listener: Client | null = null;
  private listening = false;
  private closed = false;
  private databaseUrl: string | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly listenErrors: RateLimitedLog;

  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
  ) {
    super();
    // Every open guardianEvents subscription adds a listener.
    this.setMaxListeners(0);
    this.listenErrors = new RateLimitedLog(logger);
  }

  /**
   * Listens for events announced on the database, until `close`. When the
   * listening connection fails or drops, it is opened again with backoff.
   * Until then this log publishes its own events only, and announcements
   * made during the gap are lost.
   */
  async listen(databaseUrl: string): Promise<void> {
    this.databaseUrl = databaseUrl;
    await this.connectListener(0);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const client = this.listener;
    this.listener = null;
    this.listening = false;
    await client?.end().catch(() => undefined);
  }

  private async connectListener(attempt: number): Promise<void> {
    if (this.closed || !this.databaseUrl) return;
    const client = new Client({
      connectionString: this.databaseUrl,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    client.on("notification", (message) =>
      this.onNotification(message.payload),
    );
    client.on("error", (error) => this.onListenerError(client, error));
    try {
      await client.connect();
      await client.query(`LISTEN ${GUARDIAN_EVENTS_CHANNEL}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      this.retryListen(attempt + 1, error);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.listener = client;
    this.listening = true;
    this.listenErrors.clear("listen");
    if (attempt > 0) {
      this.logger.info({ attempt }, "guardian event listener connected again");
    }
  }

  private onListenerError(client: Client, error: Error): void {
    if (this.listener !== client) return;
    this.listener = null;
    this.listening = false;
    void client.end().catch(() => undefined);
    this.retryListen(1, error);
  }

  /** Logs the failure (rate-limited) and tries again after a backoff. */
  private retryListen(attempt: number, error: unknown): void {
    if (this.closed) return;
    const delayMs = Math.min(
      LISTEN_RETRY_MS * 2 ** (attempt - 1),
      LISTEN_MAX_RETRY_MS,
    );
    this.listenErrors.warn(
      "listen",
      { err: error, attempt, retryInMs: delayMs },
      "guardian event listener has no database connection; until it " +
        "reconnects, only this gateway's own guardian events are published",
    );
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connectListener(attempt);
    }, delayMs);
    this.retryTimer.unref();
  }

  async record(
    event: Omit<GuardianEventRecord, "at">,
  ): Promise<GuardianEventRecord> {
    const row = await this.db.guardianEvent.create({
      data: {
        queueName: event.queue,
        accountName: event.account,
        kind: event.kind,
        size: event.size,
        threshold: event.threshold,
        detail: event.detail,
      },
    });
    const stored: GuardianEventRecord = { ...event, at: row.at };
    this.logger.info(
      {
        queue: event.queue,
        account: event.account,
        kind: event.kind,
        size: event.size,
        threshold: event.threshold,
        detail: event.detail,
      },
      `guardian event ${event.kind}`,
    );
    await this.announce(stored);
    return stored;
  }

  private async announce(event: GuardianEventRecord): Promise<void> {
    try {
      await this.db.$executeRaw`SELECT pg_notify(${GUARDIAN_EVENTS_CHANNEL}, ${JSON.stringify(event)})`;
    } catch (error) {
      this.logger.warn(
        { err: error, queue: event.queue },
        "announcing a guardian event failed; publishing it here only",
      );
      this.emit("event", event);
      return;
    }
    // A listening log receives its own announcement as a notification.
    if (!this.listening) this.emit("event", event);
  }

  private onNotification(payload: string | undefined): void {
    try {
      const event = JSON.parse(payload ?? "") as GuardianEventRecord;
      this.emit("event", { ...event, at: new Date(event.at) });
    } catch (error) {
      this.logger.warn({ err: error }, "unreadable guardian event notice");
    }
  }

  /**
   * Newest first, optionally for one queue. With `lifetimes`, only events
   * of those accounts at or after each one's start are listed.
   */
  async list(
    queue: string | null | undefined,
    limit: number,
    lifetimes?: AccountLifetime[],
  ): Promise<GuardianEventRecord[]> {
    const where: Prisma.GuardianEventWhereInput = queue
      ? { queueName: queue }
      : {};
    if (lifetimes) {
      if (lifetimes.length === 0) return [];
      where.OR = lifetimes.map((lifetime) => ({
        accountName: lifetime.account,
        at: { gte: lifetime.since },
      }));
    }
    const rows = await this.db.guardianEvent.findMany({
      where,
      orderBy: [{ at: "desc" }, { id: "desc" }],
      take: limit,
    });
    return rows.map((row) => ({
      queue: row.queueName,
      account: row.accountName,
      kind: row.kind,
      size: row.size,
      threshold: row.threshold,
      detail: row.detail,
      at: row.at,
    }));
  }
}
