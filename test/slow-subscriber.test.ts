// A client that stops reading its socket: its events are dropped from a
// bounded buffer, the gateway's memory stays bounded, and once it has been
// behind for LIVE_MAX_BEHIND_MS its socket is closed with 4290.
import "reflect-metadata";

import WebSocket from "ws";

import { SLOW_SUBSCRIBER_CLOSE_CODE } from "../src/schema/message.resolver";
import type { Gateway } from "../src/server";
import {
  Cleanup,
  eventually,
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
    live: { prefetch: 100, bufferSize: 10, maxBehindMs: 500 },
  });
  cleanup.add(() => gateway.stop());
  const channel = await gateway.amqp.createChannel();
  await channel.assertExchange(exchange, "topic", { durable: false });
  await channel.close();
  cleanup.add(async () => {
    const channel = await gateway.amqp.createChannel();
    await channel.deleteExchange(exchange);
    await channel.close();
  });
});

afterAll(() => cleanup.run());

test("paused client is closed with 4290", async () => {
  const socket = new WebSocket(
    gateway.url.replace(/^http/, "ws"),
    "graphql-transport-ws",
  );
  await new Promise((resolve) => socket.once("open", resolve));
  const token = await tokenFor(uniqueEmail("slow"));
  socket.send(
    JSON.stringify({
      type: "connection_init",
      payload: { authorization: `Bearer ${token}` },
    }),
  );
  await new Promise((resolve) => socket.once("message", resolve));
  socket.send(
    JSON.stringify({
      id: "1",
      type: "subscribe",
      payload: {
        query: `subscription ($e: String!) {
          messages(exchange: $e, routingKeyPattern: "#") { routingKey payload }
        }`,
        variables: { e: exchange },
      },
    }),
  );
  await eventually(async () =>
    gateway.live.stats().subscribers === 1 ? true : undefined,
  );
  const closed = new Promise<number>((resolve) =>
    socket.once("close", (code) => resolve(code)),
  );
  // Stop reading, so the server's writes back up into its socket.
  (socket as unknown as { _socket: { pause(): void } })._socket.pause();

  const body = Buffer.from(JSON.stringify({ filler: "x".repeat(1024) }));
  const deadline = Date.now() + 30_000;
  while (gateway.live.stats().subscribers > 0 && Date.now() < deadline) {
    for (let i = 0; i < 500; i += 1) {
      await gateway.amqp.publish(exchange, "slow.key", body);
    }
  }
  expect(gateway.live.stats().lost).toBeGreaterThan(0);
  expect(gateway.live.stats().subscribers).toBe(0);

  (socket as unknown as { _socket: { resume(): void } })._socket.resume();
  expect(await closed).toBe(SLOW_SUBSCRIBER_CLOSE_CODE);
});
