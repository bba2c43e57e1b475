// A client that stops reading its socket: the gateway keeps at most its
// buffer and the prefetch count, the backlog waits in the broker, and once
// the client has been behind for LIVE_MAX_BEHIND_MS its socket is closed
// with 4290.
import "reflect-metadata";

import { SlowSubscriberError } from "../src/live";
import { SLOW_SUBSCRIBER_CLOSE_CODE } from "../src/schema/message.resolver";
import type { Gateway } from "../src/server";
import {
  brokerAdmin,
  Cleanup,
  declareTestExchange,
  eventually,
  rawSubscription,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
const exchange = `exchange/${uniqueName("test-slow")}/v1`;

beforeAll(async () => {
  gateway = await startGateway({
    // Below graphql-ws's 12 s keep-alive, which would drop the paused
    // socket first.
    live: { prefetch: 50, bufferSize: 10, maxBehindMs: 10_000 },
  });
  cleanup.add(() => gateway.stop());
  await declareTestExchange(gateway, cleanup, exchange);
});

afterAll(() => cleanup.run());

test("paused client is closed with 4290", async () => {
  const socket = await rawSubscription(
    gateway,
    await tokenFor(uniqueEmail("slow")),
    `subscription ($e: String!) {
       messages(exchange: $e, routingKeyPattern: "#") { routingKey payload }
     }`,
    { e: exchange },
  );
  await eventually(async () =>
    gateway.live.stats().subscribers === 1 ? true : undefined,
  );
  // The subscriber is counted before its queue is bound on the broker.
  const queue = await eventually(liveQueue);
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.once("close", (code, reason) =>
      resolve({ code, reason: reason.toString() }),
    ),
  );
  // Stop reading, so the server's writes back up into its socket.
  (socket as unknown as { _socket: { pause(): void } })._socket.pause();

  // Enough 32 KiB messages to fill the loopback socket buffers several
  // times over, after which the gateway's writes stall and its subscriber
  // buffer fills up. Few large messages publish in a second or two, well
  // within the 10 s limit even on a busy machine.
  const body = Buffer.from(JSON.stringify({ filler: "x".repeat(32 * 1024) }));
  const published = 2_000;
  for (let i = 0; i < published; i += 1) {
    await gateway.amqp.publish(exchange, "slow.key", body);
  }
  const backlog = await readyMessages(queue);
  expect(backlog).toBeGreaterThan(published / 4);
  expect(gateway.live.stats().lost).toBe(0);

  await eventually(
    async () => (gateway.live.stats().subscribers === 0 ? true : undefined),
    60_000,
  );
  (socket as unknown as { _socket: { resume(): void } })._socket.resume();
  const { code, reason } = await closed;
  expect(code).toBe(SLOW_SUBSCRIBER_CLOSE_CODE);
  expect(reason).toMatch(/^Fell behind for \d+ ms, over LIVE_MAX_BEHIND_MS/);
  expect(reason.endsWith(SlowSubscriberError.action)).toBe(true);
  expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(123);
});

/** Returns the live queue bound to the test exchange, once there is one. */
async function liveQueue(): Promise<string | undefined> {
  const prefix = `queue/${gateway.config.gatewayAccount}/live/`;
  const bindings = await brokerAdmin().listBindings();
  return bindings.find(
    (b) => b.source === exchange && b.destination.startsWith(prefix),
  )?.destination;
}

/** Ready messages in a queue, read now over AMQP, not from statistics. */
async function readyMessages(queue: string): Promise<number> {
  // The live queue is exclusive to the gateway's connection, so only a
  // channel on that connection may inspect it.
  const channel = await gateway.amqp.createChannel();
  try {
    return (await channel.checkQueue(queue)).messageCount;
  } finally {
    await channel.close();
  }
}
