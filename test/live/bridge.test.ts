import { randomUUID } from "node:crypto";
import { once } from "node:events";
import type { Socket } from "node:net";
import { setTimeout as delay } from "node:timers/promises";

import type { Channel, Options } from "amqplib";

import { NotFoundError } from "../../src/errors";
import {
  AmqpLiveSource,
  LiveBridge,
  SlowSubscriberError,
  matchesTopic,
  type BindingKey,
  type LiveMessage,
  type LiveSource,
  type LiveSubscription,
  type SourceHandle,
} from "../../src/live";
import { createLogger } from "../../src/logger";
import { AmqpConnection } from "../../src/rabbitmq/amqp";

const AMQP_URL = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const MANAGEMENT_URL =
  process.env.RABBITMQ_MANAGEMENT_URL ?? "http://guest:guest@127.0.0.1:15672";
const VHOST = encodeURIComponent(process.env.RABBITMQ_VHOST ?? "/");
const ACCOUNT = decodeURIComponent(new URL(AMQP_URL).username || "guest");
const LIVE_QUEUE_PREFIX = `queue/${ACCOUNT}/live/`;

const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

/** Reads the next message, failing the test if none comes in time. */
async function nextMessage(
  subscription: LiveSubscription,
  timeoutMs = 5000,
): Promise<LiveMessage> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no live message within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    const result = await Promise.race([subscription.next(), timeout]);
    if (result.done) throw new Error("live subscription ended early");
    return result.value;
  } finally {
    clearTimeout(timer);
  }
}

/** Calls `read` until `done` is true or time runs out; returns the last. */
async function pollUntil<T>(
  read: () => Promise<T> | T,
  done: (value: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() >= deadline) return value;
    await delay(100);
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

interface FakeBinding {
  key: BindingKey;
  onMessage: (message: LiveMessage) => void;
  onEnd: (error: Error) => void;
  closed: boolean;
}

/** An in-memory LiveSource that routes like a topic exchange. */
class FakeSource implements LiveSource {
  opens = 0;
  closes = 0;
  gate: Promise<void> = Promise.resolve();
  failure: Error | null = null;
  private readonly bindings: FakeBinding[] = [];

  async open(
    key: BindingKey,
    onMessage: (message: LiveMessage) => void,
    onEnd: (error: Error) => void,
  ): Promise<SourceHandle> {
    this.opens += 1;
    await this.gate;
    if (this.failure) throw this.failure;
    const binding: FakeBinding = { key, onMessage, onEnd, closed: false };
    this.bindings.push(binding);
    return {
      close: async () => {
        binding.closed = true;
        this.closes += 1;
      },
    };
  }

  get openBindings(): number {
    return this.bindings.filter((binding) => !binding.closed).length;
  }

  /** Delivers to matching bindings; returns the last acknowledgement hold. */
  publish(
    exchange: string,
    routingKey: string,
    payload: unknown,
  ): Promise<void> | void {
    let held: Promise<void> | void = undefined;
    for (const binding of this.bindings) {
      const { key } = binding;
      if (binding.closed || key.exchange !== exchange) continue;
      if (!matchesTopic(key.routingKeyPattern, routingKey)) continue;
      held = binding.onMessage({
        exchange,
        routingKey,
        ccRoutingKeys: [],
        payload,
        payloadFormat: "JSON",
        redelivered: false,
      });
    }
    return held;
  }

  end(error: Error): void {
    for (const binding of this.bindings) {
      if (!binding.closed) binding.onEnd(error);
    }
  }
}

describe("LiveBridge core", () => {
  const key: BindingKey = {
    exchange: "exchange/fake",
    routingKeyPattern: "a.#",
  };
  const bridges: LiveBridge[] = [];

  function createBridge(source: LiveSource, bufferSize = 10): LiveBridge {
    const bridge = new LiveBridge({ source, bufferSize, logger });
    bridges.push(bridge);
    return bridge;
  }

  afterEach(async () => {
    await Promise.all(bridges.splice(0).map((bridge) => bridge.close()));
  });

  test("concurrent subscribes share one open", async () => {
    const source = new FakeSource();
    const gate = deferred();
    source.gate = gate.promise;
    const bridge = createBridge(source);

    const subscribing = [1, 2, 3].map(() => bridge.subscribe(key));
    gate.resolve();
    const subscriptions = await Promise.all(subscribing);

    expect(source.opens).toBe(1);
    expect(bridge.stats()).toEqual({ bindings: 1, subscribers: 3, lost: 0 });
    source.publish(key.exchange, "a.b", { n: 1 });
    for (const subscription of subscriptions) {
      expect((await nextMessage(subscription)).payload).toEqual({ n: 1 });
    }
  });

  test("full buffer drops oldest message", async () => {
    const source = new FakeSource();
    const bridge = createBridge(source, 3);
    const fast = await bridge.subscribe(key);
    const slow = await bridge.subscribe(key);

    for (let n = 1; n <= 5; n += 1) {
      source.publish(key.exchange, "a.b", n);
      expect((await nextMessage(fast)).payload).toBe(n);
    }

    const lostNotice = await nextMessage(slow);
    expect(lostNotice.notice).toEqual({ kind: "LOST", lost: 2 });
    expect(lostNotice.payload).toBeNull();
    const received = [];
    for (let i = 0; i < 3; i += 1) {
      received.push((await nextMessage(slow)).payload);
    }
    expect(received).toEqual([3, 4, 5]);
    expect(slow.stats()).toEqual({ buffered: 0, lost: 2 });
    expect(fast.stats()).toEqual({ buffered: 0, lost: 0 });
    expect(bridge.stats().lost).toBe(2);
  });

  test("subscriber behind too long is ended", async () => {
    const source = new FakeSource();
    const bridge = new LiveBridge({
      source,
      bufferSize: 2,
      maxBehindMs: 50,
      logger,
    });
    bridges.push(bridge);
    const slow = await bridge.subscribe(key);
    for (let n = 1; n <= 3; n += 1) source.publish(key.exchange, "a.b", n);
    await new Promise((resolve) => setTimeout(resolve, 80));
    source.publish(key.exchange, "a.b", 4);

    await expect(slow.next()).rejects.toBeInstanceOf(SlowSubscriberError);
    expect(bridge.stats().subscribers).toBe(0);
    expect(bridge.stats().bindings).toBe(0);
  });

  test("reader that catches up stays", async () => {
    const source = new FakeSource();
    const bridge = new LiveBridge({
      source,
      bufferSize: 2,
      maxBehindMs: 50,
      logger,
    });
    bridges.push(bridge);
    const reader = await bridge.subscribe(key);
    for (let n = 1; n <= 3; n += 1) source.publish(key.exchange, "a.b", n);
    const first = [];
    for (let i = 0; i < 3; i += 1) first.push((await reader.next()).value);
    expect(first.map((message) => message?.payload)).toEqual([1, 2, 3]);
    await new Promise((resolve) => setTimeout(resolve, 80));
    source.publish(key.exchange, "a.b", 4);
    expect((await reader.next()).value?.payload).toBe(4);
  });

  test("lone slow reader holds the acknowledgement", async () => {
    const source = new FakeSource();
    const bridge = createBridge(source, 2);
    const reader = await bridge.subscribe(key);
    source.publish(key.exchange, "a.b", 1);
    source.publish(key.exchange, "a.b", 2);
    const held = source.publish(key.exchange, "a.b", 3);
    expect(held).toBeInstanceOf(Promise);
    let released = false;
    void (held as Promise<void>).then(() => {
      released = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(released).toBe(false);

    // Three messages in a buffer of two: one read leaves it still full.
    expect((await reader.next()).value?.payload).toBe(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(released).toBe(false);
    expect((await reader.next()).value?.payload).toBe(2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(released).toBe(true);
    expect(reader.stats().lost).toBe(0);
  });

  test("open failure rejects every waiter", async () => {
    const source = new FakeSource();
    const gate = deferred();
    source.gate = gate.promise;
    const failure = new NotFoundError("no such exchange");
    source.failure = failure;
    const bridge = createBridge(source);

    const first = bridge.subscribe(key);
    const second = bridge.subscribe(key);
    gate.resolve();
    await expect(first).rejects.toBe(failure);
    await expect(second).rejects.toBe(failure);
    expect(bridge.stats()).toEqual({ bindings: 0, subscribers: 0, lost: 0 });

    source.failure = null;
    await bridge.subscribe(key);
    expect(source.opens).toBe(2);
  });

  test("source end fails every subscriber", async () => {
    const source = new FakeSource();
    const bridge = createBridge(source);
    const first = await bridge.subscribe(key);
    const second = await bridge.subscribe(key);
    const failure = new Error("queue deleted");

    source.end(failure);

    await expect(first.next()).rejects.toBe(failure);
    await expect(second.next()).rejects.toBe(failure);
    await expect(first.next()).resolves.toEqual({ done: true });
    expect(bridge.stats().bindings).toBe(0);
    expect(source.openBindings).toBe(0);
  });

  test("return ends a pending next", async () => {
    const source = new FakeSource();
    const bridge = createBridge(source);
    const subscription = await bridge.subscribe(key);

    const pending = subscription.next();
    await subscription.return();

    await expect(pending).resolves.toEqual({ done: true });
    expect(bridge.stats().bindings).toBe(0);
    expect(source.openBindings).toBe(0);
  });

  test("remaining subscriber keeps the binding", async () => {
    const source = new FakeSource();
    const bridge = createBridge(source);
    const leaving = await bridge.subscribe(key);
    const staying = await bridge.subscribe(key);

    await leaving.return();
    expect(bridge.stats()).toEqual({ bindings: 1, subscribers: 1, lost: 0 });
    expect(source.openBindings).toBe(1);
    source.publish(key.exchange, "a.c", "still here");
    expect((await nextMessage(staying)).payload).toBe("still here");

    await staying.return();
    expect(source.openBindings).toBe(0);
  });

  test("abort during open closes handle", async () => {
    const source = new FakeSource();
    const gate = deferred();
    source.gate = gate.promise;
    const bridge = createBridge(source);
    const controller = new AbortController();

    const subscribing = bridge.subscribe(key, { signal: controller.signal });
    controller.abort();
    await expect(subscribing).rejects.toMatchObject({ name: "AbortError" });
    expect(bridge.stats().bindings).toBe(0);

    gate.resolve();
    await pollUntil(
      () => source.closes,
      (closes) => closes === 1,
      1000,
    );
    expect(source.closes).toBe(1);
    expect(source.openBindings).toBe(0);
  });

  test("invalid key rejects as bad input", async () => {
    const source = new FakeSource();
    const bridge = createBridge(source);

    await expect(
      bridge.subscribe({ exchange: "exchange/x", routingKeyPattern: "a.b*" }),
    ).rejects.toMatchObject({ code: "BAD_USER_INPUT" });
    await expect(
      bridge.subscribe({ exchange: "", routingKeyPattern: "#" }),
    ).rejects.toMatchObject({ code: "BAD_USER_INPUT" });
    expect(source.opens).toBe(0);
  });

  test("close ends every subscription", async () => {
    const source = new FakeSource();
    const bridge = createBridge(source);
    const subscription = await bridge.subscribe(key);
    const pending = subscription.next();

    await bridge.close();

    await expect(pending).resolves.toEqual({ done: true });
    expect(source.openBindings).toBe(0);
    await expect(bridge.subscribe(key)).rejects.toThrow("closed");
  });
});

describe("LiveBridge with RabbitMQ", () => {
  const management = new URL(MANAGEMENT_URL);
  const authorization =
    "Basic " +
    Buffer.from(
      `${decodeURIComponent(management.username)}:` +
        decodeURIComponent(management.password),
    ).toString("base64");
  const managementBase =
    management.origin + management.pathname.replace(/\/$/, "") + "/api/";

  const exchange = `exchange/test-live-${randomUUID()}`;
  const extraExchanges: string[] = [];
  const subscriptions: LiveSubscription[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  let connection: AmqpConnection;
  let channel: Channel;
  let source: AmqpLiveSource;
  let bridge: LiveBridge;

  async function managementGet(path: string): Promise<Response> {
    return fetch(managementBase + path, { headers: { authorization } });
  }

  /** Live queues bound to `on` with exactly `pattern`. */
  async function liveQueuesBound(pattern: string, on = exchange) {
    const response = await managementGet(
      `exchanges/${VHOST}/${encodeURIComponent(on)}/bindings/source`,
    );
    expect(response.status).toBe(200);
    const bindings = (await response.json()) as Array<{
      destination: string;
      destination_type: string;
      routing_key: string;
    }>;
    return bindings
      .filter((binding) => binding.destination_type === "queue")
      .filter((binding) => binding.routing_key === pattern)
      .filter((binding) => binding.destination.startsWith(LIVE_QUEUE_PREFIX))
      .map((binding) => binding.destination);
  }

  async function queueExists(queue: string): Promise<boolean> {
    const response = await managementGet(
      `queues/${VHOST}/${encodeURIComponent(queue)}`,
    );
    await response.body?.cancel();
    return response.status === 200;
  }

  async function liveQueueNames(): Promise<string[]> {
    const response = await managementGet(`queues/${VHOST}?columns=name`);
    const queues = (await response.json()) as Array<{ name: string }>;
    return queues
      .map((queue) => queue.name)
      .filter((name) => name.startsWith(LIVE_QUEUE_PREFIX));
  }

  async function subscribe(
    routingKeyPattern: string,
    via = bridge,
    on = exchange,
  ): Promise<LiveSubscription> {
    const subscription = await via.subscribe({
      exchange: on,
      routingKeyPattern,
    });
    subscriptions.push(subscription);
    return subscription;
  }

  async function publish(
    routingKey: string,
    payload: unknown,
    options: Options.Publish = {},
  ): Promise<void> {
    const body = Buffer.from(JSON.stringify(payload));
    await connection.publish(exchange, routingKey, body, options);
  }

  async function createExchange(): Promise<string> {
    const name = `exchange/test-live-${randomUUID()}`;
    extraExchanges.push(name);
    await channel.assertExchange(name, "topic", {
      durable: false,
      autoDelete: false,
    });
    return name;
  }

  /** Creates a second source and bridge, closed after the test. */
  function createPair(
    over: AmqpConnection,
    rebindIntervalMs?: number,
  ): { source: AmqpLiveSource; bridge: LiveBridge } {
    const pairSource = new AmqpLiveSource({
      connection: over,
      gatewayAccount: ACCOUNT,
      prefetch: 10,
      logger,
      rebindIntervalMs,
    });
    const pairBridge = new LiveBridge({
      source: pairSource,
      bufferSize: 100,
      logger,
    });
    cleanups.push(async () => {
      await pairBridge.close();
      await pairSource.close();
    });
    return { source: pairSource, bridge: pairBridge };
  }

  beforeAll(async () => {
    connection = new AmqpConnection({ url: AMQP_URL, logger });
    await connection.start();
    await connection.waitForConnection(10_000);
    channel = await connection.createChannel();
    await channel.assertExchange(exchange, "topic", {
      durable: false,
      autoDelete: false,
    });
    source = new AmqpLiveSource({
      connection,
      gatewayAccount: ACCOUNT,
      prefetch: 10,
      logger,
    });
    bridge = new LiveBridge({ source, bufferSize: 100, logger });
  });

  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((s) => s.return()));
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  afterAll(async () => {
    await bridge?.close();
    await source?.close();
    for (const name of [exchange, ...extraExchanges]) {
      await channel?.deleteExchange(name);
    }
    await channel?.close();
    await connection?.close();
  });

  test("two subscribers share one queue", async () => {
    const [first, second] = await Promise.all([
      subscribe("share.#"),
      subscribe("share.#"),
    ]);

    expect(source.stats().bindings).toBe(1);
    const queues = await pollUntil(
      () => liveQueuesBound("share.#"),
      (names) => names.length > 0,
    );
    expect(queues).toHaveLength(1);

    await publish("share.one", { n: 1 });
    expect((await nextMessage(first)).payload).toEqual({ n: 1 });
    expect((await nextMessage(second)).payload).toEqual({ n: 1 });
  });

  test("held and batched acknowledgements mix safely", async () => {
    // Buffers of 100 with a prefetch of 10: the slow reader's buffer fills,
    // so deliveries are held back while the fast reader also lags, then
    // released and acknowledged one by one amid batched acknowledgements.
    const fast = await subscribe("mix.#");
    const slow = await subscribe("mix.#");
    const count = 600;
    for (let n = 0; n < count; n += 1) await publish("mix.n", { n });

    const received: unknown[] = [];
    for (let n = 0; n < count; n += 1) {
      received.push((await nextMessage(fast)).payload);
    }
    expect(received).toEqual(
      Array.from({ length: count }, (_, n) => ({ n })),
    );
    // Every message reached the slow reader or was counted as lost.
    let accounted = 0;
    while (accounted < count) {
      const message = await nextMessage(slow);
      accounted += message.notice ? message.notice.lost : 1;
    }
    expect(accounted).toBe(count);
    expect(slow.stats().lost).toBeGreaterThan(0);
    expect(bridge.stats().bindings).toBe(1);
  });

  test("acknowledgements reach the broker in batches", async () => {
    // Prefetch 10: batches of five are acknowledged at once, and the last
    // two of 27 messages by the timer.
    const reader = await subscribe("batch.#");
    const [queue] = await pollUntil(
      () => liveQueuesBound("batch.#"),
      (names) => names.length > 0,
    );
    const count = 27;
    for (let n = 0; n < count; n += 1) await publish("batch.n", { n });
    for (let n = 0; n < count; n += 1) {
      expect((await nextMessage(reader)).payload).toEqual({ n });
    }

    // The management API's statistics lag by up to five seconds, so the
    // check waits for a reading taken after every delivery.
    type QueueStats = {
      messages_unacknowledged?: number;
      message_stats?: { deliver_get?: number };
    };
    const stats = await pollUntil(
      async () => {
        const response = await managementGet(
          `queues/${VHOST}/${encodeURIComponent(queue)}` +
            "?columns=messages_unacknowledged,message_stats.deliver_get",
        );
        return (await response.json()) as QueueStats;
      },
      (value) =>
        (value.message_stats?.deliver_get ?? 0) >= count &&
        value.messages_unacknowledged === 0,
      20_000,
    );
    expect(stats.message_stats?.deliver_get).toBe(count);
    expect(stats.messages_unacknowledged).toBe(0);
  });

  test("publish right after subscribe arrives", async () => {
    const subscription = await subscribe("now.*");
    await publish("now.a", { at: "once" });

    const message = await nextMessage(subscription);
    expect(message).toEqual({
      exchange,
      routingKey: "now.a",
      ccRoutingKeys: [],
      payload: { at: "once" },
      payloadFormat: "JSON",
      redelivered: false,
      timestamp: expect.any(Date),
      binding: { exchange, routingKeyPattern: "now.*" },
    });
  });

  test("CC key reaches CC-only binding", async () => {
    const subscription = await subscribe("cc.target");
    await publish(
      "cc.primary",
      { via: "cc" },
      { headers: { CC: ["cc.target", "cc.other"] } },
    );

    const message = await nextMessage(subscription);
    expect(message.routingKey).toBe("cc.primary");
    expect(message.ccRoutingKeys).toEqual(["cc.target", "cc.other"]);
    expect(message.payload).toEqual({ via: "cc" });
  });

  test("patterns on one exchange stay apart", async () => {
    const left = await subscribe("left.*");
    const right = await subscribe("right.*");

    await publish("right.1", "right 1");
    await publish("left.1", "left 1");
    await publish("right.2", "right 2");
    await publish("left.2", "left 2");

    expect((await nextMessage(left)).routingKey).toBe("left.1");
    expect((await nextMessage(left)).routingKey).toBe("left.2");
    expect((await nextMessage(right)).routingKey).toBe("right.1");
    expect((await nextMessage(right)).routingKey).toBe("right.2");
    expect(left.stats().buffered).toBe(0);
    expect(right.stats().buffered).toBe(0);
  });

  test("last subscriber leaving deletes queue", async () => {
    const first = await subscribe("leave.#");
    const second = await subscribe("leave.#");
    const [queue] = await pollUntil(
      () => liveQueuesBound("leave.#"),
      (names) => names.length > 0,
    );
    expect(queue).toBeDefined();

    await first.return();
    expect(source.stats().bindings).toBe(1);
    expect(await queueExists(queue)).toBe(true);

    await second.return();
    expect(source.stats().bindings).toBe(0);
    const exists = await pollUntil(
      () => queueExists(queue),
      (found) => !found,
    );
    expect(exists).toBe(false);
  });

  test("unknown exchange rejects as not found", async () => {
    const missing = `exchange/test-live-missing-${randomUUID()}`;
    const before = await liveQueueNames();

    const subscribing = bridge.subscribe({
      exchange: missing,
      routingKeyPattern: "#",
    });

    await expect(subscribing).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(subscribing).rejects.toThrow(missing);
    expect(bridge.stats().bindings).toBe(0);
    expect(source.stats().bindings).toBe(0);
    const created = (await liveQueueNames()).filter(
      (name) => !before.includes(name),
    );
    expect(created).toEqual([]);
  });

  test("abort during open leaves no queue", async () => {
    const controller = new AbortController();
    const subscribing = bridge.subscribe(
      { exchange, routingKeyPattern: "abort.#" },
      { signal: controller.signal },
    );
    expect(source.stats().bindings).toBe(1);
    controller.abort();

    await expect(subscribing).rejects.toMatchObject({ name: "AbortError" });
    const bindings = await pollUntil(
      () => source.stats().bindings,
      (count) => count === 0,
    );
    expect(bindings).toBe(0);
    const queues = await pollUntil(
      () => liveQueuesBound("abort.#"),
      (names) => names.length === 0,
    );
    expect(queues).toEqual([]);
  });

  test("body that is not JSON arrives as text", async () => {
    const subscription = await subscribe("text.*");
    await connection.publish(exchange, "text.a", Buffer.from("not json {"));

    expect((await nextMessage(subscription)).payload).toBe("not json {");
  });

  test("deleted queue fails subscribers", async () => {
    const subscription = await subscribe("gone.#");
    const [queue] = await pollUntil(
      () => liveQueuesBound("gone.#"),
      (names) => names.length > 0,
    );

    // The queue is exclusive, so only its own connection may delete it.
    await channel.deleteQueue(queue);

    await expect(nextMessage(subscription)).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    expect(bridge.stats().bindings).toBe(0);
  });

  test("deleted exchange fails subscribers", async () => {
    const doomed = await createExchange();
    const pair = createPair(connection, 100);
    const subscription = await subscribe("#", pair.bridge, doomed);

    await channel.deleteExchange(doomed);

    await expect(nextMessage(subscription)).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    expect(pair.bridge.stats().bindings).toBe(0);
  });

  test("reconnect restores the binding", async () => {
    const dropping = new AmqpConnection({
      url: AMQP_URL,
      logger,
      initialDelayMs: 50,
    });
    cleanups.push(() => dropping.close());
    await dropping.start();
    const model = await dropping.waitForConnection(10_000);
    const pair = createPair(dropping);
    const subscription = await subscribe("again.#", pair.bridge);
    const [before] = await pollUntil(
      () => liveQueuesBound("again.#"),
      (names) => names.length > 0,
    );

    const reconnected = once(dropping, "connected");
    // Simulates a network failure on the consumer's connection only.
    const socket = (model.connection as unknown as { stream: Socket }).stream;
    socket.destroy(new Error("simulated network failure"));
    await reconnected;
    const after = await pollUntil(
      () => liveQueuesBound("again.#"),
      (names) => names.length === 1 && names[0] !== before,
    );
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(before);
    expect(pair.source.stats()).toEqual({ bindings: 1, suspended: 0 });

    const gap = await nextMessage(subscription);
    expect(gap.notice).toEqual({ kind: "GAP", lost: 0 });

    await publish("again.1", { after: "reconnect" });
    expect((await nextMessage(subscription)).payload).toEqual({
      after: "reconnect",
    });
  });
});
