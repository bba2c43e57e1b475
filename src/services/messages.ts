// Messages sitting in a Pulse queue: purge them, or read the first few
// without consuming them.
import type { Viewer } from "../auth";
import { BadInputError } from "../errors";
import type { FetchedMessage } from "../rabbitmq/management";
import { parseJsonPayload, type PayloadFormat } from "../live/payload";
import {
  authorizeAccount,
  type AmqpQueueClient,
  type ServiceDeps,
} from "./context";
import { requireQueueAccount } from "./pulse-names";
import type { QueueRecord, QueueService } from "./queues";

/** Messages one peek may return. */
export const MAX_PEEK_COUNT = 50;

/** Bodies longer than this are cut before they leave the broker. */
export const PEEK_MAX_PAYLOAD_BYTES = 64 * 1024;

export type { PayloadFormat };

export interface PeekedMessage {
  exchange: string;
  routingKey: string;
  redelivered: boolean;
  /** Parsed JSON, the text, or base64 of a body that is not UTF-8. */
  payload: unknown;
  payloadFormat: PayloadFormat;
  /** Size of the whole body, before any cut. */
  payloadBytes: number;
  truncated: boolean;
  properties: Record<string, unknown>;
}

export interface PurgeRecord {
  /** Null when the number is unknown, because the purge fell back to HTTP. */
  messagesPurged: number | null;
  /** The queue after the purge. */
  queue: QueueRecord;
}

export class MessageService {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly queues: QueueService,
    private readonly amqp: AmqpQueueClient,
  ) {}

  /**
   * Removes every ready message, and returns how many it removed and the
   * queue afterwards. Unacknowledged messages stay.
   */
  async purge(viewer: Viewer, queue: string): Promise<PurgeRecord> {
    await authorizeAccount(this.deps, viewer, requireQueueAccount(queue));
    await this.queues.fetchQueue(queue);
    const messagesPurged = await this.purgeMessages(queue);
    this.deps.logger.info(
      { queue, messagesPurged, by: viewer.email },
      "queue purged",
    );
    const after = await this.queues.get(viewer, queue);
    return { messagesPurged, queue: await this.withLiveCounts(after) };
  }

  /**
   * Purges over AMQP, which reports the number removed. When RabbitMQ
   * rejects the gateway's own account (it needs read permission on the
   * queue), purges through the management API, which reports no number.
   */
  private async purgeMessages(queue: string): Promise<number | null> {
    try {
      return await this.amqp.purgeQueue(queue);
    } catch (error) {
      if ((error as { code?: unknown }).code !== 403) throw error;
      this.deps.logger.warn(
        { queue, err: error },
        "purge over AMQP rejected for the gateway's own account; " +
          "purging through the management API without a count",
      );
      await this.deps.management.purgeQueue(queue);
      return null;
    }
  }

  /**
   * Replaces the statistics of the management API, which lag by up to its
   * collection interval and so can still show the purged messages, with
   * the ready and consumer counts read over AMQP now. AMQP cannot read the
   * unacknowledged count, so that one stays from the statistics, possibly
   * stale, and `messages`, which would add it to a current count, is null.
   * When the AMQP read fails, the ready count is null too.
   */
  private async withLiveCounts(record: QueueRecord): Promise<QueueRecord> {
    const live = await this.amqp.checkQueue(record.name).catch((error) => {
      this.deps.logger.warn(
        { queue: record.name, err: error },
        "reading queue counts over AMQP failed after a purge",
      );
      return null;
    });
    if (!live) {
      return { ...record, messages: null, messagesReady: null };
    }
    return {
      ...record,
      messagesReady: live.messageCount,
      messages: null,
      consumers: live.consumerCount,
    };
  }

  /**
   * Reads up to `count` messages from the head of the queue and requeues
   * them at once, so the queue keeps the same messages; RabbitMQ marks them
   * redelivered. Only ready messages are read: those delivered to a
   * consumer and not yet acknowledged are not.
   */
  async peek(
    viewer: Viewer,
    queue: string,
    count: number,
  ): Promise<PeekedMessage[]> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_PEEK_COUNT) {
      throw new BadInputError(
        `Invalid count ${count}: peek reads 1 to ${MAX_PEEK_COUNT} messages.`,
        { count },
      );
    }
    await authorizeAccount(this.deps, viewer, requireQueueAccount(queue));
    await this.queues.fetchQueue(queue);
    const fetched = await this.deps.management.getMessages(
      queue,
      count,
      PEEK_MAX_PAYLOAD_BYTES,
    );
    return fetched.map(toPeekedMessage);
  }
}

export function toPeekedMessage(message: FetchedMessage): PeekedMessage {
  const truncated = message.payload_bytes > PEEK_MAX_PAYLOAD_BYTES;
  const decoded = decodePayload(message, truncated);
  return {
    exchange: message.exchange,
    routingKey: message.routing_key,
    redelivered: message.redelivered,
    payload: decoded.payload,
    payloadFormat: decoded.format,
    payloadBytes: message.payload_bytes,
    truncated,
    properties: message.properties ?? {},
  };
}

function decodePayload(
  message: FetchedMessage,
  truncated: boolean,
): { payload: unknown; format: PayloadFormat } {
  if (message.payload_encoding === "base64") {
    return { payload: message.payload, format: "BASE64" };
  }
  // A cut body is never whole JSON, so it is returned as text.
  if (!truncated) {
    try {
      return { payload: parseJsonPayload(message.payload), format: "JSON" };
    } catch {
      // Not JSON, or nested too deeply: returned as text below.
    }
  }
  return { payload: message.payload, format: "TEXT" };
}
