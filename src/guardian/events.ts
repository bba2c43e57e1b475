import { EventEmitter } from "node:events";

import type { Database, GuardianEventKind } from "../db";
import type { Logger } from "../logger";

export interface GuardianEventRecord {
  queue: string;
  account: string;
  kind: GuardianEventKind;
  /** The queue's `messages` when the event happened, if known. */
  size: number | null;
  /** The threshold that was crossed, if any. */
  threshold: number | null;
  at: Date;
}

/**
 * Stores guardian events, logs them and publishes them to in-process
 * listeners such as the guardianEvents subscription.
 * TODO: publish through PostgreSQL NOTIFY as well, so that subscribers of
 * a gateway that does not hold the guardian lock receive events live.
 */
export class GuardianEventLog extends EventEmitter<{
  event: [GuardianEventRecord];
}> {
  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
  ) {
    super();
    // Every open guardianEvents subscription adds a listener.
    this.setMaxListeners(0);
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
      },
      `guardian: queue ${event.kind.toLowerCase()}`,
    );
    this.emit("event", stored);
    return stored;
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
      at: row.at,
    }));
  }
}
