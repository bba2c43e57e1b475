// Child process of the benchmark: publishes 1 KiB JSON messages to a
// topic exchange on request, in bursts or at a fixed rate, on its own
// AMQP connection with Nagle's algorithm off.
import { once } from "node:events";

import { connect, type Channel } from "amqplib";

import { send, serveControl } from "./child-control";
import type { PublishRequest, PublishResult } from "./ipc";
import { encodePayload, nowUs } from "./payload";
import { AMQP_URL } from "./settings";

/** Extra time a paced publish may take beyond count / rate. */
const PACING_SLACK_MS = 10_000;

let nextSeq = 0;

async function publish(
  channel: Channel,
  request: PublishRequest,
): Promise<PublishResult> {
  const { exchange, routingKey, count, ratePerSecond, probe } = request;
  const startMs = performance.now();
  const deadlineMs =
    ratePerSecond > 0
      ? startMs + (count / ratePerSecond) * 1000 + PACING_SLACK_MS
      : Number.POSITIVE_INFINITY;
  let firstUs = 0;
  let lastUs = 0;
  let sent = 0;
  while (sent < count) {
    const due =
      ratePerSecond > 0
        ? Math.min(
            count,
            Math.floor(((performance.now() - startMs) * ratePerSecond) / 1000) + 1,
          )
        : count;
    while (sent < due) {
      const sentUs = nowUs();
      if (sent === 0) firstUs = sentUs;
      lastUs = sentUs;
      const body = encodePayload(nextSeq, sentUs, probe);
      nextSeq += 1;
      sent += 1;
      const accepted = channel.publish(exchange, routingKey, body, {
        contentType: "application/json",
        deliveryMode: 1,
      });
      // Waits for the socket to drain rather than buffering without limit.
      if (!accepted) await once(channel, "drain");
    }
    if (sent >= count) break;
    if (performance.now() > deadlineMs) {
      throw new Error(
        `Publishing ${count} messages at ${ratePerSecond}/s did not finish ` +
          `in time; ${sent} were sent.`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return { count: sent, firstUs, lastUs };
}

async function main(): Promise<void> {
  const model = await connect(AMQP_URL, { noDelay: true });
  model.on("error", (error: Error) => {
    process.stderr.write(`publisher connection error: ${error.message}\n`);
  });
  const channel = await model.createChannel();
  channel.on("error", (error: Error) => {
    process.stderr.write(`publisher channel error: ${error.message}\n`);
  });
  serveControl(
    async () => {
      await model.close();
    },
    async (request) => {
      if (request.type !== "publish") {
        throw new Error(`The publisher cannot handle "${request.type}".`);
      }
      return publish(channel, request);
    },
  );
  send({ type: "ready", url: "" });
}

if (require.main === module) {
  main().catch((error: unknown) => {
    send({ type: "failed", error: (error as Error).stack ?? String(error) });
    process.exit(1);
  });
}
