// Messages sitting in a Pulse queue: purge them, or read the first few
// without consuming them.
import type { Viewer } from "../auth";
import { BadInputError } from "../errors";
import type { FetchedMessage } from "../rabbitmq/management";
import { parseJsonPayload } from "../live/payload";
import { authorizeAccount, type ServiceDeps } from "./context";
import { requireQueueAccount } from "./pulse-names";
import type { QueueRecord, QueueService } from "./queues";

/** Messages one peek may return. */
export const MAX_PEEK_COUNT = 50;

/** Bodies longer than this are cut before they leave the broker. */
export const PEEK_MAX_PAYLOAD_BYTES = 64 * 1024;

export type PayloadFormat = "JSON" | "TEXT" | "BASE64";

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

export class MessageService {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly queues: QueueService,
  ) {}

  /** Removes every ready message; unacknowledged ones stay. */
  async purge(viewer: Viewer, queue: string): Promise<QueueRecord> {
    await authorizeAccount(this.deps, viewer, requireQueueAccount(queue));
    await this.queues.fetchQueue(queue);
    await this.deps.management.purgeQueue(queue);
    this.deps.logger.info({ queue, by: viewer.email }, "queue purged");
    return this.queues.get(viewer, queue);
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
