// The messages subscription over graphql-ws: shared broker queues, bad
// arguments, and clean-up when a client leaves, even without a goodbye.
import WebSocket from "ws";

import type { Gateway } from "../src/server";
import {
  brokerAdmin,
  Cleanup,
  Collected,
  eventually,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
  wsClient,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let token: string;
const exchange = `exchange/${uniqueName("test-subscriptions")}/v1`;

const MESSAGES = `subscription ($exchange: String!, $pattern: String!) {
  messages(exchange: $exchange, routingKeyPattern: $pattern) {
    exchange routingKey ccRoutingKeys payload redelivered
  }
}`;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  token = await tokenFor(uniqueEmail("watcher"));
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

async function liveQueues(): Promise<string[]> {
  const prefix = `queue/${gateway.config.gatewayAccount}/live/`;
  const bindings = await brokerAdmin().listBindings();
  return bindings
    .filter((b) => b.source === exchange && b.destination.startsWith(prefix))
    .map((b) => b.destination);
}

async function publish(routingKey: string, payload: unknown, cc?: string[]) {
  await gateway.amqp.publish(
    exchange,
    routingKey,
    Buffer.from(JSON.stringify(payload)),
    cc ? { CC: cc } : {},
  );
}

test("subscribers of one binding share a queue", async () => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const first = new Collected(client, MESSAGES, { exchange, pattern: "a.#" });
  const second = new Collected(client, MESSAGES, { exchange, pattern: "a.#" });
  await eventually(async () =>
    gateway.live.stats().subscribers >= 2 ? true : undefined,
  );
  expect(await liveQueues()).toHaveLength(1);

  await publish("a.b", { hello: "world" }, ["route.x"]);
  await first.until(() => first.events.length === 1);
  await second.until(() => second.events.length === 1);
  expect(first.events[0]).toEqual({
    messages: {
      exchange,
      routingKey: "a.b",
      ccRoutingKeys: ["route.x"],
      payload: { hello: "world" },
      redelivered: false,
    },
  });
  first.stop();
  second.stop();
  await eventually(async () =>
    (await liveQueues()).length === 0 ? true : undefined,
  );
});

test("other patterns receive nothing", async () => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const matching = new Collected(client, MESSAGES, { exchange, pattern: "x.*" });
  const other = new Collected(client, MESSAGES, { exchange, pattern: "y.*" });
  await eventually(async () =>
    gateway.live.stats().bindings >= 2 ? true : undefined,
  );
  await publish("x.1", { n: 1 });
  await matching.until(() => matching.events.length === 1);
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(other.events).toEqual([]);
  matching.stop();
  other.stop();
});

test("dropped socket removes the live queue", async () => {
  const socket = new WebSocket(
    gateway.url.replace(/^http/, "ws"),
    "graphql-transport-ws",
  );
  await new Promise((resolve) => socket.once("open", resolve));
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
      payload: { query: MESSAGES, variables: { exchange, pattern: "drop.#" } },
    }),
  );
  await eventually(async () =>
    (await liveQueues()).length === 1 ? true : undefined,
  );

  socket.terminate();

  await eventually(async () =>
    gateway.live.stats().subscribers === 0 ? true : undefined,
  );
  await eventually(async () =>
    (await liveQueues()).length === 0 ? true : undefined,
  );
});

test("unknown exchange fails with NOT_FOUND", async () => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const missing = `exchange/${uniqueName("missing")}/v1`;
  const feed = new Collected(client, MESSAGES, { exchange: missing, pattern: "#" });
  await feed.until(() => feed.errors.length > 0);
  expect(feed.errors[0]).toMatchObject({ extensions: { code: "NOT_FOUND" } });
  expect(gateway.live.stats().bindings).toBe(0);
});

test.each([
  ["non-Pulse exchange", "amq.topic", "#"],
  ["malformed pattern", exchange, "a.b*"],
])("%s fails with BAD_USER_INPUT", async (_case, name, pattern) => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const feed = new Collected(client, MESSAGES, { exchange: name, pattern });
  await feed.until(() => feed.errors.length > 0);
  expect(feed.errors[0]).toMatchObject({
    extensions: { code: "BAD_USER_INPUT" },
  });
});
