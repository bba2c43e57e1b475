// Queue history: one raw sample per queue and poll, merged later into
// coarser buckets so that storage stays bounded. Raw samples are kept for
// an hour, 5-minute buckets for a day and hourly buckets for the retention
// period. A bucket keeps the maximum of each count (the peak is what the
// guardian acts on) and the mean of each rate.
import type { Database } from "../db";
import type { QueueInfo } from "../rabbitmq/management";

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** Each level: samples of `from` older than `afterMs` merge into `to`. */
export const DOWNSAMPLE_LEVELS = [
  { from: 0, to: 300, afterMs: HOUR_MS },
  { from: 300, to: 3600, afterMs: DAY_MS },
] as const;

export interface QueueSamplePoint {
  at: Date;
  resolutionSeconds: number;
  messages: number;
  messagesReady: number | null;
  messagesUnacknowledged: number | null;
  consumers: number | null;
  publishRate: number | null;
  deliverRate: number | null;
}

export class QueueHistory {
  constructor(
    private readonly db: Database,
    private readonly retentionDays: number,
  ) {}

  /** Stores a raw sample of each queue that reports its size. */
  async record(at: Date, queues: QueueInfo[]): Promise<number> {
    const data = queues
      .filter((queue) => queue.messages !== undefined)
      .map((queue) => ({
        queueName: queue.name,
        at,
        resolutionSeconds: 0,
        messages: queue.messages!,
        messagesReady: queue.messages_ready ?? null,
        messagesUnacknowledged: queue.messages_unacknowledged ?? null,
        consumers: queue.consumers ?? null,
        publishRate: queue.message_stats?.publish_details?.rate ?? null,
        deliverRate: queue.message_stats?.deliver_get_details?.rate ?? null,
      }));
    if (data.length === 0) return 0;
    const { count } = await this.db.queueSample.createMany({
      data,
      skipDuplicates: true,
    });
    return count;
  }

  /**
   * Merges old samples into coarser buckets and drops samples older than
   * the retention period. Only whole buckets older than a level's age are
   * merged, so a bucket is written once unless samples arrive late.
   */
  async downsample(now = new Date()): Promise<void> {
    for (const level of DOWNSAMPLE_LEVELS) {
      const bucketMs = level.to * 1000;
      const cutoff = new Date(
        Math.floor((now.getTime() - level.afterMs) / bucketMs) * bucketMs,
      );
      await this.db.$transaction([
        this.db.$executeRaw`
          INSERT INTO "QueueSample" ("queueName", "at", "resolutionSeconds",
            "messages", "messagesReady", "messagesUnacknowledged",
            "consumers", "publishRate", "deliverRate")
          SELECT "queueName",
            to_timestamp(floor(extract(epoch FROM "at") / ${level.to}) * ${level.to})
              AT TIME ZONE 'UTC',
            ${level.to}, max("messages"), max("messagesReady"),
            max("messagesUnacknowledged"), max("consumers"),
            avg("publishRate"), avg("deliverRate")
          FROM "QueueSample"
          WHERE "resolutionSeconds" = ${level.from} AND "at" < ${cutoff}
          GROUP BY 1, 2
          ON CONFLICT ("queueName", "resolutionSeconds", "at") DO UPDATE SET
            "messages" = GREATEST("QueueSample"."messages", EXCLUDED."messages"),
            "messagesReady" = GREATEST("QueueSample"."messagesReady", EXCLUDED."messagesReady"),
            "messagesUnacknowledged" = GREATEST("QueueSample"."messagesUnacknowledged", EXCLUDED."messagesUnacknowledged"),
            "consumers" = GREATEST("QueueSample"."consumers", EXCLUDED."consumers"),
            "publishRate" = (COALESCE("QueueSample"."publishRate", EXCLUDED."publishRate") + COALESCE(EXCLUDED."publishRate", "QueueSample"."publishRate")) / 2,
            "deliverRate" = (COALESCE("QueueSample"."deliverRate", EXCLUDED."deliverRate") + COALESCE(EXCLUDED."deliverRate", "QueueSample"."deliverRate")) / 2`,
        this.db.queueSample.deleteMany({
          where: { resolutionSeconds: level.from, at: { lt: cutoff } },
        }),
      ]);
    }
    const oldest = new Date(now.getTime() - this.retentionDays * DAY_MS);
    await this.db.queueSample.deleteMany({ where: { at: { lt: oldest } } });
  }

  /** Samples of one queue from `from` to `to`, oldest first. */
  async points(
    queue: string,
    from: Date,
    to: Date,
  ): Promise<QueueSamplePoint[]> {
    const rows = await this.db.queueSample.findMany({
      where: { queueName: queue, at: { gte: from, lte: to } },
      orderBy: [{ at: "asc" }, { resolutionSeconds: "desc" }],
    });
    return rows.map((row) => ({
      at: row.at,
      resolutionSeconds: row.resolutionSeconds,
      messages: row.messages,
      messagesReady: row.messagesReady,
      messagesUnacknowledged: row.messagesUnacknowledged,
      consumers: row.consumers,
      publishRate: row.publishRate,
      deliverRate: row.deliverRate,
    }));
  }
}
