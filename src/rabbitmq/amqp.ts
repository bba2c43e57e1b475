import { EventEmitter } from "node:events";

import {
  connect,
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type Options,
  type RecoveringChannelModel,
} from "amqplib";

import { redactUrl } from "../config";
import { BrokerUnavailableError } from "../errors";
import type { Logger } from "../logger";

export type AmqpState = "connecting" | "connected" | "reconnecting" | "closed";

export interface AmqpOptions {
  url: string;
  logger: Logger;
  /** First reconnect delay; doubles per attempt up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
}

export interface AmqpConnectionEvents {
  connected: [ChannelModel];
  disconnected: [Error];
}

/**
 * One AMQP connection for the whole gateway, reconnecting with exponential
 * backoff, jitter and a cap (amqplib's recovery). Emits `connected` with the
 * new connection each time it comes up, so that users re-declare what they
 * need, and `disconnected` when it drops.
 */
export class AmqpConnection extends EventEmitter<AmqpConnectionEvents> {
  private recovering?: RecoveringChannelModel;
  private model: ChannelModel | null = null;
  private publishChannel: Promise<ConfirmChannel> | null = null;
  private currentState: AmqpState = "connecting";
  private lastError: Error | null = null;
  readonly address: string;

  constructor(private readonly options: AmqpOptions) {
    super();
    this.address = redactUrl(options.url);
  }

  get state(): AmqpState {
    return this.currentState;
  }

  /** Starts connecting in the background; never throws for a down broker. */
  async start(): Promise<void> {
    const { logger } = this.options;
    this.recovering = await connect(this.options.url, {
      noDelay: true,
      recovery: {
        waitForConnect: false,
        initialDelay: this.options.initialDelayMs ?? 500,
        maxDelay: this.options.maxDelayMs ?? 30_000,
        jitter: 0.5,
      },
    });
    this.recovering.on("connect", (model) => this.onConnect(model));
    this.recovering.on("disconnect", (error) => this.onDisconnect(error));
    this.recovering.on("reconnect-scheduled", ({ attempt, delay, error }) => {
      this.lastError = error;
      logger.warn(
        { amqpUrl: this.address, attempt, delayMs: delay, err: error },
        this.describeFailure(error),
      );
    });
    this.recovering.on("error", (error) => {
      logger.error({ amqpUrl: this.address, err: error }, "AMQP error");
    });
  }

  /** Resolves once connected, or rejects after timeoutMs. */
  async waitForConnection(timeoutMs: number): Promise<ChannelModel> {
    if (this.model) return this.model;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("connected", onConnected);
        reject(this.unavailable());
      }, timeoutMs);
      timer.unref();
      const onConnected = (model: ChannelModel) => {
        clearTimeout(timer);
        resolve(model);
      };
      this.once("connected", onConnected);
    });
  }

  /** Returns the live connection, or throws BROKER_UNAVAILABLE. */
  current(): ChannelModel {
    if (!this.model) throw this.unavailable();
    return this.model;
  }

  async createChannel(): Promise<Channel> {
    return this.current().createChannel();
  }

  /**
   * Publishes on a shared confirm channel and resolves when the broker has
   * confirmed the message.
   */
  async publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: Options.Publish = {},
  ): Promise<void> {
    const channel = await this.confirmChannel();
    await new Promise<void>((resolve, reject) => {
      channel.publish(exchange, routingKey, content, options, (error) =>
        error ? reject(error) : resolve(),
      );
    });
  }

  /**
   * Removes a binding over AMQP. Used for bindings the management API
   * cannot address.
   */
  async unbindQueue(
    queue: string,
    exchange: string,
    pattern: string,
  ): Promise<void> {
    await this.withChannel((channel) =>
      channel.unbindQueue(queue, exchange, pattern),
    );
  }

  /** Removes the queue's ready messages and returns how many it removed. */
  async purgeQueue(queue: string): Promise<number> {
    const reply = await this.withChannel((channel) =>
      channel.purgeQueue(queue),
    );
    return reply.messageCount;
  }

  /**
   * Returns the queue's ready messages and consumers as the broker counts
   * them now, unlike the management API's statistics, which lag by up to
   * its collection interval.
   */
  async checkQueue(
    queue: string,
  ): Promise<{ messageCount: number; consumerCount: number }> {
    const reply = await this.withChannel((channel) =>
      channel.checkQueue(queue),
    );
    return {
      messageCount: reply.messageCount,
      consumerCount: reply.consumerCount,
    };
  }

  /**
   * Runs one operation on a channel of its own, because a refused
   * operation closes its channel.
   */
  private async withChannel<T>(
    operation: (channel: Channel) => Promise<T>,
  ): Promise<T> {
    const channel = await this.createChannel();
    // A refused operation closes the channel, and amqplib then also emits
    // `error`, which would be thrown without a listener. The operation's
    // promise rejects with the same error.
    channel.on("error", () => undefined);
    try {
      return await operation(channel);
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  private confirmChannel(): Promise<ConfirmChannel> {
    if (!this.publishChannel) {
      const opening = this.current().createConfirmChannel();
      this.publishChannel = opening;
      opening
        .then((channel) => {
          channel.on("error", (error) => {
            this.options.logger.warn({ err: error }, "publish channel error");
          });
          channel.on("close", () => {
            if (this.publishChannel === opening) this.publishChannel = null;
          });
        })
        .catch(() => {
          if (this.publishChannel === opening) this.publishChannel = null;
        });
    }
    return this.publishChannel;
  }

  async close(): Promise<void> {
    this.currentState = "closed";
    this.model = null;
    this.publishChannel = null;
    await this.recovering?.close().catch((error: unknown) => {
      this.options.logger.warn({ err: error }, "AMQP close failed");
    });
    this.options.logger.info({ amqpUrl: this.address }, "AMQP closed");
  }

  private onConnect(model: ChannelModel): void {
    const reconnected = this.currentState === "reconnecting";
    this.model = model;
    this.publishChannel = null;
    this.currentState = "connected";
    this.options.logger.info(
      { amqpUrl: this.address, reconnected },
      "AMQP connected",
    );
    this.emit("connected", model);
  }

  private onDisconnect(error: Error): void {
    if (this.currentState === "closed") return;
    this.model = null;
    this.publishChannel = null;
    this.currentState = "reconnecting";
    this.options.logger.warn(
      { amqpUrl: this.address, err: error },
      "AMQP connection lost; reconnecting",
    );
    this.emit("disconnected", error);
  }

  private describeFailure(error: Error): string {
    if (/ACCESS.REFUSED/.test(error.message)) {
      return (
        `RabbitMQ at ${this.address} refused the user and password in ` +
        `AMQP_URL; fix them there. Retrying.`
      );
    }
    return (
      `RabbitMQ is not reachable over AMQP at ${this.address}; start it ` +
      `(\`rabbitmq-server -detached\` or \`docker compose up rabbitmq\`). ` +
      `Retrying.`
    );
  }

  private unavailable(): BrokerUnavailableError {
    const message = this.lastError
      ? this.describeFailure(this.lastError).replace(/ Retrying\.$/, "")
      : `RabbitMQ is not reachable over AMQP at ${this.address}; start it ` +
        `(\`rabbitmq-server -detached\`) and try again.`;
    return new BrokerUnavailableError(message, { amqpUrl: this.address });
  }
}
