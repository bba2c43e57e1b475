import { EventEmitter } from "node:events";

import { Client } from "pg";

import type { Database, GuardianEventKind } from "../db";
import type { Logger } from "../logger";

/** PostgreSQL channel on which every guardian announces its events. */
export const GUARDIAN_EVENTS_CHANNEL = "pulse_guardian_events";

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

  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
  ) {
    super();
    // Every open guardianEvents subscription adds a listener.
    this.setMaxListeners(0);
  }

  /**
   * Listens for events announced on the database, until `close`. While the
   * listening connection is down, this log publishes its own events only.
   */
  async listen(databaseUrl: string): Promise<void> {
    const client = new Client({ connectionString: databaseUrl });
    client.on("notification", (message) => this.onNotification(message.payload));
    client.on("error", (error) => {
      this.listening = false;
      this.logger.warn(
        { err: error },
        "guardian event listener lost its database connection; events " +
          "from other gateways will not be published here until restart",
      );
    });
    await client.connect();
    await client.query(`LISTEN ${GUARDIAN_EVENTS_CHANNEL}`);
    this.listener = client;
    this.listening = true;
  }

  async close(): Promise<void> {
    const client = this.listener;
    this.listener = null;
    this.listening = false;
    await client?.end().catch(() => undefined);
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

  /** Newest first, optionally for one queue. */
  async list(
    queue: string | null | undefined,
    limit: number,
  ): Promise<GuardianEventRecord[]> {
    const rows = await this.db.guardianEvent.findMany({
      where: queue ? { queueName: queue } : {},
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
