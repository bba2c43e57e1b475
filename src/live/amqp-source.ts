import { randomUUID } from "node:crypto";

import {
  IllegalOperationError,
  type Channel,
  type ChannelModel,
  type ConsumeMessage,
  type MessagePropertyHeaders,
} from "amqplib";

import {
  BrokerUnavailableError,
  ErrorCode,
  ForbiddenError,
  GatewayError,
  NotFoundError,
  isGatewayError,
  type ErrorDetails,
} from "../errors";
import type { Logger } from "../logger";
import type { AmqpConnection } from "../rabbitmq/amqp";
import { decodeUtf8, parseJsonPayload, type PayloadFormat } from "./payload";
import type {
  BindingKey,
  LiveMessage,
  LiveSource,
  SourceHandle,
} from "./bridge";

export interface AmqpLiveSourceOptions {
  connection: AmqpConnection;
  /** RabbitMQ user of the gateway; live queue names start with its prefix. */
  gatewayAccount: string;
  /** Unacknowledged deliveries per live queue (0 to 65535, 0 = no limit). */
  prefetch: number;
  logger: Logger;
  /**
   * Milliseconds between re-binds of every live queue (default 30000, 0
   * turns them off). RabbitMQ (checked on 3.10) does not tell consumers
   * when an exchange is deleted, so a failing re-bind is how a binding finds
   * out. A successful one restores a binding lost when the exchange was
   * re-declared.
   */
  rebindIntervalMs?: number;
}

export interface AmqpLiveSourceStats {
  /** Live queues open, including ones waiting for a reconnect. */
  bindings: number;
  /** Live queues lost with the connection and waiting for a reconnect. */
  suspended: number;
}

type OnMessage = (message: LiveMessage) => Promise<void> | void;
type OnEnd = (error: Error) => void;
type OnGap = () => void;

type ConsumerState =
  | "starting"
  | "consuming"
  | "suspended"
  | "ended"
  | "closed";

/**
 * A LiveSource on RabbitMQ: one exclusive, auto-delete queue and one channel
 * per binding, so a channel error ends only that binding. After the
 * connection comes back, every binding gets a new queue and consumer.
 */
export class AmqpLiveSource implements LiveSource {
  private readonly consumers = new Set<LiveConsumer>();
  private readonly rebindIntervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly options: AmqpLiveSourceOptions) {
    const { prefetch } = options;
    if (!Number.isInteger(prefetch) || prefetch < 0 || prefetch > 65535) {
      throw new RangeError(
        `AmqpLiveSource prefetch is ${prefetch}; expected an integer from ` +
          `0 to 65535.`,
      );
    }
    this.rebindIntervalMs = options.rebindIntervalMs ?? 30_000;
    options.connection.on("connected", this.onConnected);
  }

  async open(
    key: BindingKey,
    onMessage: OnMessage,
    onEnd: OnEnd,
    onGap: OnGap = () => undefined,
  ): Promise<SourceHandle> {
    if (this.closed) throw new Error("AmqpLiveSource is closed.");
    const model = this.options.connection.current();
    const consumer = new LiveConsumer(
      key,
      this.options,
      onMessage,
      onEnd,
      onGap,
    );
    // Added before it starts, so a reconnect during start can resume it.
    this.consumers.add(consumer);
    try {
      await consumer.start(model);
    } catch (error) {
      this.consumers.delete(consumer);
      this.updateTimer();
      throw this.openError(key, model, error);
    }
    this.updateTimer();
    this.options.logger.info(
      { ...key, queue: consumer.queueName },
      "live queue consuming",
    );
    return { close: () => this.release(consumer) };
  }

  stats(): AmqpLiveSourceStats {
    let suspended = 0;
    for (const consumer of this.consumers) {
      if (consumer.suspended) suspended += 1;
    }
    return { bindings: this.consumers.size, suspended };
  }

  /** Closes every live queue and stops following the connection. */
  async close(): Promise<void> {
    this.closed = true;
    this.options.connection.off("connected", this.onConnected);
    const consumers = [...this.consumers];
    this.consumers.clear();
    this.updateTimer();
    await Promise.all(consumers.map((consumer) => consumer.close()));
  }

  private readonly onConnected = (model: ChannelModel): void => {
    for (const consumer of this.consumers) {
      if (consumer.suspended) void consumer.resume(model);
    }
  };

  private async release(consumer: LiveConsumer): Promise<void> {
    this.consumers.delete(consumer);
    this.updateTimer();
    await consumer.close();
  }

  /** Runs the re-bind timer only while there are live queues. */
  private updateTimer(): void {
    if (this.consumers.size === 0 || this.rebindIntervalMs <= 0) {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      return;
    }
    if (this.timer) return;
    this.timer = setInterval(() => {
      for (const consumer of this.consumers) consumer.rebind();
    }, this.rebindIntervalMs);
    this.timer.unref();
  }

  private openError(
    key: BindingKey,
    model: ChannelModel,
    error: unknown,
  ): GatewayError {
    if (isGatewayError(error)) return error;
    if (!isCurrentModel(this.options.connection, model)) {
      return new BrokerUnavailableError(
        `The AMQP connection was lost while opening the live binding of ` +
          `exchange "${key.exchange}" with pattern ` +
          `"${key.routingKeyPattern}"; try again.`,
        { ...key },
        error,
      );
    }
    return bindingError(key, error, "could not be opened");
  }
}

/** Maximum time a delivery waits for its batched acknowledgement. */
export const ACK_DELAY_MS = 20;

/** Batch size, doubled, for acknowledgements when prefetch is unlimited. */
const UNLIMITED_ACK_WINDOW = 100;

/** One binding's queue, channel and consumer, re-created after reconnects. */
class LiveConsumer {
  private state: ConsumerState = "starting";
  private channel: Channel | null = null;
  private ackBatch: {
    channel: Channel;
    last: ConsumeMessage;
    count: number;
  } | null = null;
  private ackTimer: NodeJS.Timeout | null = null;
  private heldAcks = 0;
  private queue = "";
  private consumerTag = "";
  private starting: Promise<void> | null = null;
  private invalidJsonCount = 0;
  private readonly logger: Logger;

  constructor(
    private readonly key: BindingKey,
    private readonly options: AmqpLiveSourceOptions,
    private readonly onMessage: OnMessage,
    private readonly onEnd: OnEnd,
    private readonly onGap: OnGap,
  ) {
    this.logger = options.logger.child({
      exchange: key.exchange,
      routingKeyPattern: key.routingKeyPattern,
    });
  }

  get suspended(): boolean {
    return this.state === "suspended";
  }

  get queueName(): string {
    return this.queue;
  }

  /** Checks the exchange, then declares, binds and consumes a new queue. */
  async start(model: ChannelModel): Promise<void> {
    this.state = "starting";
    const starting = this.declareAndConsume(model);
    this.starting = starting;
    try {
      await starting;
    } finally {
      if (this.starting === starting) this.starting = null;
    }
    if (this.state === "starting") this.state = "consuming";
  }

  /** Starts again on a new connection after the old one dropped. */
  async resume(model: ChannelModel): Promise<void> {
    if (this.state !== "suspended") return;
    try {
      await this.start(model);
    } catch (error) {
      this.onResumeFailed(model, error);
      return;
    }
    this.logger.info(
      { queue: this.queue },
      "live binding restored after the AMQP connection came back",
    );
    this.onGap();
  }

  /** Binds the queue again; see AmqpLiveSourceOptions.rebindIntervalMs. */
  rebind(): void {
    const channel = this.channel;
    if (this.state !== "consuming" || !channel) return;
    const { exchange, routingKeyPattern } = this.key;
    channel
      .bindQueue(this.queue, exchange, routingKeyPattern)
      .catch((error: unknown) => {
        // A channel error also closes the channel, and onChannelClose then
        // ends the binding with that error.
        this.logger.debug(
          { queue: this.queue, err: error },
          "re-binding the live queue failed",
        );
      });
  }

  /** Cancels the consumer, deletes the queue and closes the channel. */
  async close(): Promise<void> {
    if (this.state === "closed") return;
    this.state = "closed";
    // The caller of start() handles its failure; close only waits for it.
    await this.starting?.catch(() => undefined);
    if (this.invalidJsonCount > 1) {
      this.logger.info(
        { queue: this.queue, count: this.invalidJsonCount },
        "live queue received bodies that are not JSON",
      );
    }
    const channel = this.channel;
    this.channel = null;
    if (!channel) return;
    const { queue, consumerTag } = this;
    await this.quietly("cancel", queue, () => channel.cancel(consumerTag));
    await this.quietly("delete", queue, () => channel.deleteQueue(queue));
    await this.quietly("close channel", queue, () => channel.close());
  }

  private async declareAndConsume(model: ChannelModel): Promise<void> {
    const { exchange, routingKeyPattern } = this.key;
    await checkExchange(model, exchange);

    const channel = await model.createChannel();
    const status: { closed: boolean; error: Error | null } = {
      closed: false,
      error: null,
    };
    channel.on("error", (error: Error) => {
      status.error = error;
    });
    channel.on("close", () => {
      status.closed = true;
      this.onChannelClose(channel, status.error);
    });

    const queue = `queue/${this.options.gatewayAccount}/live/${randomUUID()}`;
    try {
      await channel.prefetch(this.options.prefetch);
      await channel.assertQueue(queue, {
        exclusive: true,
        autoDelete: true,
        durable: false,
      });
      await channel.bindQueue(queue, exchange, routingKeyPattern);
      const reply = await channel.consume(queue, (message) =>
        this.onDelivery(channel, queue, message),
      );
      if (status.closed) {
        throw (
          status.error ??
          new Error("The channel of the live queue closed while opening.")
        );
      }
      this.consumerTag = reply.consumerTag;
    } catch (error) {
      await this.discardQueue(model, status.closed ? null : channel, queue);
      throw error;
    }
    this.channel = channel;
    this.queue = queue;
  }

  private onDelivery(
    channel: Channel,
    queue: string,
    message: ConsumeMessage | null,
  ): void {
    if (message === null) {
      this.end(
        new NotFoundError(
          `RabbitMQ cancelled the consumer of live queue "${queue}" for ` +
            `exchange "${this.key.exchange}" and pattern ` +
            `"${this.key.routingKeyPattern}", usually because the queue ` +
            `was deleted; subscribe again.`,
          { ...this.key, queue },
        ),
      );
      return;
    }
    // The queue is being deleted, so there is no one left to deliver to.
    if (this.state === "closed" || this.state === "ended") return;
    const held = this.onMessage(this.toLiveMessage(message, queue));
    if (!held) {
      this.acknowledge(channel, message);
      return;
    }
    // Every subscriber is behind: acknowledging later keeps the backlog in
    // the broker, which stops delivering at the prefetch count. The batch
    // goes first, because a later `multiple` acknowledgement would cover
    // this delivery too.
    this.flushAcks();
    this.heldAcks += 1;
    void held.then(() => {
      this.heldAcks -= 1;
      this.ackLater(channel, message);
    });
  }

  /**
   * Acknowledges deliveries in batches: the last one with `multiple` set,
   * once half the prefetch window is waiting or ACK_DELAY_MS after the
   * first. At 1,000 messages per second that is one acknowledgement per
   * 20 deliveries instead of one per socket read. While some delivery is
   * held back, each is acknowledged on its own instead.
   */
  private acknowledge(channel: Channel, message: ConsumeMessage): void {
    if (this.heldAcks > 0) {
      channel.ack(message);
      return;
    }
    if (this.ackBatch && this.ackBatch.channel !== channel) this.flushAcks();
    const count = (this.ackBatch?.count ?? 0) + 1;
    this.ackBatch = { channel, last: message, count };
    // Acknowledging at half the window keeps the broker sending while the
    // rest of the batch is read.
    const { prefetch } = this.options;
    const window = prefetch === 0 ? UNLIMITED_ACK_WINDOW : prefetch;
    if (count >= Math.max(1, Math.floor(window / 2))) {
      this.flushAcks();
      return;
    }
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      this.flushAcks();
    }, ACK_DELAY_MS);
    this.ackTimer.unref();
  }

  private flushAcks(): void {
    const batch = this.ackBatch;
    if (!batch) return;
    this.ackBatch = null;
    try {
      batch.channel.ack(batch.last, true);
    } catch (error) {
      // The channel closed meanwhile; the broker requeues what it held.
      this.logger.debug({ err: error }, "batched acknowledgement skipped");
    }
  }

  private ackLater(channel: Channel, message: ConsumeMessage): void {
    if (this.state === "closed" || this.state === "ended") return;
    try {
      channel.ack(message);
    } catch (error) {
      // The channel closed meanwhile; the broker requeues unacknowledged
      // messages of a closed channel by itself.
      this.logger.debug({ err: error }, "late acknowledgement skipped");
    }
  }

  private toLiveMessage(message: ConsumeMessage, queue: string): LiveMessage {
    return {
      exchange: message.fields.exchange,
      routingKey: message.fields.routingKey,
      ccRoutingKeys: readCcHeader(message.properties.headers),
      ...this.decodeBody(message, queue),
      redelivered: message.fields.redelivered,
      timestamp: readTimestamp(message.properties.timestamp),
    };
  }

  /** Decodes a body as peekMessages does: JSON, else text, else base64. */
  private decodeBody(
    message: ConsumeMessage,
    queue: string,
  ): { payload: unknown; payloadFormat: PayloadFormat } {
    const text = decodeUtf8(message.content);
    if (text === null) {
      return {
        payload: message.content.toString("base64"),
        payloadFormat: "BASE64",
      };
    }
    try {
      return { payload: parseJsonPayload(text), payloadFormat: "JSON" };
    } catch (error) {
      this.invalidJsonCount += 1;
      if (this.invalidJsonCount === 1) {
        this.logger.warn(
          { queue, routingKey: message.fields.routingKey, err: error },
          "live message body is not JSON or nested too deeply; " +
            "delivering it as text " +
            "(logged once per binding)",
        );
      }
      return { payload: text, payloadFormat: "TEXT" };
    }
  }

  private onChannelClose(channel: Channel, error: Error | null): void {
    // Channels closed here, or still starting, are not the current one.
    if (channel !== this.channel) return;
    this.channel = null;
    if (this.state !== "consuming") return;
    if (error) {
      this.end(bindingError(this.key, error, "ended"));
      return;
    }
    // amqplib (2.3.1) closes channels without an error event when the
    // connection drops.
    this.state = "suspended";
    this.logger.info(
      { queue: this.queue },
      "live binding suspended until the AMQP connection comes back",
    );
  }

  private onResumeFailed(model: ChannelModel, error: unknown): void {
    if (this.state !== "starting") {
      this.logger.debug(
        { err: error },
        "live binding closed while it was being restored",
      );
      return;
    }
    if (!isCurrentModel(this.options.connection, model)) {
      this.state = "suspended";
      this.logger.info(
        { err: error },
        "restoring the live binding failed because the AMQP connection " +
          "dropped again; retrying on the next connection",
      );
      return;
    }
    this.end(
      isGatewayError(error)
        ? error
        : bindingError(this.key, error, "could not be restored"),
    );
  }

  private end(error: Error): void {
    if (this.state === "ended" || this.state === "closed") return;
    this.state = "ended";
    this.logger.info({ queue: this.queue, err: error }, "live binding ended");
    this.onEnd(error);
  }

  /** Deletes a queue left by a failed start; its channel may be dead. */
  private async discardQueue(
    model: ChannelModel,
    openChannel: Channel | null,
    queue: string,
  ): Promise<void> {
    let channel = openChannel;
    if (!channel) {
      if (!isCurrentModel(this.options.connection, model)) return;
      try {
        channel = await model.createChannel();
      } catch (error) {
        this.logger.debug(
          { queue, err: error },
          "no channel to delete the queue of a failed live binding",
        );
        return;
      }
      channel.on("error", (error: Error) => {
        this.logger.debug({ queue, err: error }, "cleanup channel error");
      });
    }
    const cleanup = channel;
    await this.quietly("delete", queue, () => cleanup.deleteQueue(queue));
    await this.quietly("close channel", queue, () => cleanup.close());
  }

  /**
   * Runs a cleanup step and logs its failure: at debug when the channel or
   * connection is already closed, because RabbitMQ then deletes the queue
   * itself (exclusive, or auto-delete once its consumer is gone), and at
   * warn otherwise.
   */
  private async quietly(
    step: string,
    queue: string,
    operation: () => Promise<unknown>,
  ): Promise<void> {
    try {
      await operation();
    } catch (error) {
      const channelClosed =
        error instanceof IllegalOperationError ||
        this.options.connection.state !== "connected";
      const fields = { queue, step, err: error };
      if (channelClosed) {
        this.logger.debug(
          fields,
          "live queue cleanup failed on a closed channel or connection",
        );
      } else {
        this.logger.warn(fields, "live queue cleanup failed");
      }
    }
  }
}

/**
 * Rejects with NotFoundError if the exchange does not exist. Uses its own
 * channel because a failed passive declare closes the channel with 404.
 */
async function checkExchange(
  model: ChannelModel,
  exchange: string,
): Promise<void> {
  const channel = await model.createChannel();
  // The same error rejects checkExchange below, which handles it.
  channel.on("error", () => undefined);
  try {
    await channel.checkExchange(exchange);
  } catch (error) {
    if (amqpReplyCode(error) === 404) {
      throw new NotFoundError(
        `Exchange "${exchange}" not found; check the name. Publishing does ` +
          `not create an exchange: its publisher must declare it first.`,
        { exchange },
      );
    }
    throw error;
  }
  await channel.close();
}

/** Reads RabbitMQ's `CC` header, an array of extra routing keys. */
function readCcHeader(headers: MessagePropertyHeaders | undefined): string[] {
  const cc: unknown = headers?.CC;
  if (!Array.isArray(cc)) return [];
  const keys: string[] = [];
  for (const value of cc) {
    if (typeof value === "string") keys.push(value);
    else if (Buffer.isBuffer(value)) keys.push(value.toString("utf8"));
  }
  return keys;
}

function isCurrentModel(connection: AmqpConnection, model: ChannelModel) {
  return connection.state === "connected" && connection.current() === model;
}

/** Returns the AMQP reply code that amqplib sets on broker errors. */
function amqpReplyCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/** Wraps a broker error on a binding in the matching domain error. */
function bindingError(
  key: BindingKey,
  error: unknown,
  outcome: string,
): GatewayError {
  const reason = error instanceof Error ? error.message : String(error);
  const message =
    `Live binding of exchange "${key.exchange}" with pattern ` +
    `"${key.routingKeyPattern}" ${outcome}: ${reason}`;
  const code = amqpReplyCode(error);
  const details: ErrorDetails = { ...key, amqpReplyCode: code };
  switch (code) {
    case 404:
      return new NotFoundError(message, details);
    case 403:
      return new ForbiddenError(message, details);
    default:
      return new GatewayError(
        ErrorCode.INTERNAL_SERVER_ERROR,
        message,
        details,
        { cause: error },
      );
  }
}

/** 9999-12-31T23:59:59Z, the last second RFC 3339 (DateTimeISO) can write. */
const MAX_TIMESTAMP_SECONDS = 253_402_300_799;

/**
 * Converts an AMQP timestamp (seconds since the epoch) to a Date. A missing
 * timestamp, or one outside 1970 to 9999, means "now": the DateTimeISO
 * scalar cannot write such dates, and a publisher's bad value must not
 * turn the event into an error for every subscriber.
 */
export function readTimestamp(seconds: unknown): Date {
  const valid =
    typeof seconds === "number" &&
    Number.isFinite(seconds) &&
    seconds >= 0 &&
    seconds <= MAX_TIMESTAMP_SECONDS;
  return valid ? new Date(seconds * 1000) : new Date();
}
