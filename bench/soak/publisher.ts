// The soak's publisher: recorded Taskcluster messages, republished on the
// soak's own exchanges at a fixed rate over a confirm channel. It counts
// only messages the broker confirmed, and reconnects when the broker
// restarts.
import path from "node:path";

import { connect, type ChannelModel, type ConfirmChannel } from "amqplib";

import { readRecording, type RecordedMessage } from "../../src/replay";
import { sleep } from "./http-client";

/** This file is compiled to dist/bench/bench/soak/. */
const SAMPLES = path.resolve(__dirname, "../../../../samples");
const RECORDING = path.join(SAMPLES, "taskcluster_pulse_messages.json");

const RECONNECT_DELAY_MS = 1_000;
const CONFIRM_TIMEOUT_MS = 10_000;

export interface PublisherSummary {
  /** Confirmed messages by exchange. */
  confirmed: Record<string, number>;
  /** Messages the broker did not confirm, or that could not be sent. */
  failed: number;
  reconnects: number;
}

export class Publisher {
  readonly confirmed = new Map<string, number>();
  failed = 0;
  reconnects = 0;
  private connection: ChannelModel | null = null;
  private channel: ConfirmChannel | null = null;
  private stopped = false;

  private constructor(
    private readonly amqpUrl: string,
    readonly exchanges: readonly string[],
    private readonly messages: RecordedMessage[],
  ) {
    for (const exchange of exchanges) this.confirmed.set(exchange, 0);
  }

  /** Reads the recording and declares the exchanges, durable like Pulse's. */
  static async open(amqpUrl: string, exchanges: string[]): Promise<Publisher> {
    const publisher = new Publisher(amqpUrl, exchanges, await readRecording(RECORDING));
    await publisher.connect();
    return publisher;
  }

  /** Publishes at `ratePerSecond`, cycling over the exchanges, until `until`. */
  async run(until: number, ratePerSecond: number): Promise<void> {
    const intervalMs = 1000 / ratePerSecond;
    for (let i = 0; Date.now() < until && !this.stopped; i += 1) {
      const started = Date.now();
      const exchange = this.exchanges[i % this.exchanges.length];
      await this.publishOne(exchange, this.messages[i % this.messages.length]);
      await sleep(Math.max(0, intervalMs - (Date.now() - started)));
    }
  }

  summary(): PublisherSummary {
    return {
      confirmed: Object.fromEntries(this.confirmed),
      failed: this.failed,
      reconnects: this.reconnects,
    };
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.connection?.close().catch(() => undefined);
  }

  private async publishOne(exchange: string, message: RecordedMessage): Promise<void> {
    const channel = this.channel ?? (await this.reconnect());
    if (!channel) return;
    const body = Buffer.from(JSON.stringify(message.payload));
    const sent = await new Promise<boolean>((resolve) => {
      // A confirm lost with its connection counts as a failure.
      setTimeout(() => resolve(false), CONFIRM_TIMEOUT_MS).unref();
      try {
        channel.publish(exchange, message.routingKey, body, {
          contentType: "application/json",
          timestamp: Math.floor(Date.now() / 1000),
          headers: message.ccRoutingKeys.length ? { CC: message.ccRoutingKeys } : {},
        }, (error) => resolve(!error));
      } catch {
        resolve(false);
      }
    });
    if (sent) this.confirmed.set(exchange, this.confirmed.get(exchange)! + 1);
    else this.failed += 1;
  }

  private async reconnect(): Promise<ConfirmChannel | null> {
    try {
      await this.connect();
      this.reconnects += 1;
      return this.channel;
    } catch {
      await sleep(RECONNECT_DELAY_MS);
      return null;
    }
  }

  private async connect(): Promise<void> {
    const connection = await connect(this.amqpUrl);
    const forget = () => {
      if (this.connection === connection) {
        this.connection = null;
        this.channel = null;
      }
    };
    connection.on("error", forget);
    connection.on("close", forget);
    const channel = await connection.createConfirmChannel();
    channel.on("error", forget);
    channel.on("close", forget);
    for (const exchange of this.exchanges) {
      await channel.assertExchange(exchange, "topic", { durable: true });
    }
    this.connection = connection;
    this.channel = channel;
  }
}
