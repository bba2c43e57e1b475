// The size and consumer checks of one queue: warning, recovery, deletion
// past the delete size and CONSUMER_GONE.
import type { Database } from "../db";
import { isNotFound, type ManagementClient } from "../rabbitmq/management";
import type { EventDispatcher, QueueCheck } from "./dispatch";

export interface QueueCheckOptions {
  db: Database;
  management: ManagementClient;
  /** Time without a consumer before CONSUMER_GONE (600000 ms). */
  consumerGoneMs?: number;
}

// Rows are changed with updateMany, which changes nothing when the row is
// gone: a client may delete a queue while a pass is checking it, and that
// must not fail the pass.
export class QueueChecks {
  constructor(
    private readonly options: QueueCheckOptions,
    private readonly dispatcher: EventDispatcher,
  ) {}

  /** Warns, records recovery or deletes; returns true if it deleted. */
  async checkSize(check: QueueCheck): Promise<boolean> {
    const { row, size, thresholds } = check;
    if (size > thresholds.deleteSize && !row.unbounded) {
      await this.deleteQueue(check);
      return true;
    }
    let warned = row.warned;
    if (size > thresholds.warnSize && !row.warned) {
      warned = true;
      await this.dispatcher.emitAboutQueue(
        check,
        "WARNED",
        thresholds.warnSize,
      );
    } else if (size <= thresholds.warnSize && row.warned) {
      warned = false;
      await this.dispatcher.emitAboutQueue(
        check,
        "RECOVERED",
        thresholds.warnSize,
      );
    }
    if (warned !== row.warned || size !== row.lastSize) {
      await this.options.db.queue.updateMany({
        where: { id: row.id },
        data: { warned, lastSize: size },
      });
    }
    return false;
  }

  private async deleteQueue(check: QueueCheck): Promise<void> {
    const { row, thresholds } = check;
    try {
      await this.options.management.deleteQueue(row.name);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    await this.options.db.queue.deleteMany({ where: { id: row.id } });
    // A burst that crossed both thresholds between two passes gets only
    // this notice, whose detail states it, and no WARNED notice first.
    const detail = row.warned
      ? null
      : `passed both the warn size (${thresholds.warnSize}) and the delete ` +
        `size (${thresholds.deleteSize}) since the previous check`;
    await this.dispatcher.emitAboutQueue(
      check,
      "DELETED",
      thresholds.deleteSize,
      detail,
    );
  }

  /**
   * Sends CONSUMER_GONE once a queue has held messages without a consumer
   * for consumerGoneMs, and rearms when a consumer comes back or the queue
   * empties.
   */
  async checkConsumers(
    check: QueueCheck,
    consumers: number | undefined,
  ): Promise<void> {
    if (consumers === undefined) return;
    const { row, size } = check;
    const now = new Date();
    if (consumers > 0 || size === 0) {
      if (row.noConsumerSince === null) return;
      await this.options.db.queue.updateMany({
        where: { id: row.id },
        data: { noConsumerSince: null, consumerGoneAt: null },
      });
      return;
    }
    const since = row.noConsumerSince ?? now;
    const limitMs = this.options.consumerGoneMs ?? 600_000;
    const due =
      row.consumerGoneAt === null && now.getTime() - since.getTime() >= limitMs;
    if (row.noConsumerSince === null || due) {
      await this.options.db.queue.updateMany({
        where: { id: row.id },
        data: { noConsumerSince: since, consumerGoneAt: due ? now : undefined },
      });
    }
    if (!due) return;
    const minutes = Math.round((now.getTime() - since.getTime()) / 60_000);
    await this.dispatcher.emitAboutQueue(
      check,
      "CONSUMER_GONE",
      null,
      `no consumer since ${since.toISOString()} (${minutes} min) while ` +
        `holding ${size} messages`,
    );
  }
}
