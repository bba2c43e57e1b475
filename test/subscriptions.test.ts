// The messages subscription over graphql-ws: shared broker queues, bad
// arguments, and clean-up when a client leaves, even without a goodbye.
import WebSocket from "ws";

import type { Gateway } from "../src/server";
import {
  ADMIN_EMAIL,
  brokerAdmin,
  Cleanup,
  declareTestExchange,
  Collected,
  createTestAccount,
  errorCodes,
  eventually,
  gql,
  rawSubscription,
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
  await declareTestExchange(gateway, cleanup, exchange);
});

// Each test starts with no live subscriber, so counts compare cleanly.
afterEach(async () => {
  await eventually(async () =>
    gateway.live.stats().subscribers === 0 ? true : undefined,
  );
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

test("deeply nested body arrives as text", async () => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const watcher = new Collected(client, MESSAGES, { exchange, pattern: "deep.#" });
  await eventually(async () =>
    (await liveQueues()).length === 1 ? true : undefined,
  );

  // JSON.stringify overflows the stack on this body once parsed.
  const deep = `{"deep":${"[".repeat(5000)}${"]".repeat(5000)}}`;
  await gateway.amqp.publish(exchange, "deep.1", Buffer.from(deep), {});
  await publish("deep.2", { after: true });

  await watcher.until(() => watcher.events.length === 2);
  expect(watcher.events[0].messages.payload).toBe(deep);
  expect(watcher.events[1].messages.payload).toEqual({ after: true });
  watcher.stop();
});

test("out-of-range timestamp falls back to now", async () => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const watcher = new Collected(
    client,
    `subscription ($exchange: String!) {
      messages(exchange: $exchange, routingKeyPattern: "stamp.#") {
        routingKey timestamp
      }
    }`,
    { exchange },
  );
  await eventually(async () =>
    (await liveQueues()).length === 1 ? true : undefined,
  );

  const before = Date.now();
  const body = Buffer.from("{}");
  for (const [key, timestamp] of [
    ["stamp.huge", 99_999_999_999_999],
    ["stamp.year-10000", 253_402_300_800],
    ["stamp.valid", 1_700_000_000],
  ] as const) {
    await gateway.amqp.publish(exchange, key, body, { timestamp });
  }

  await watcher.until(() => watcher.events.length === 3);
  expect(watcher.errors).toEqual([]);
  const stamps = watcher.events.map((event) => event.messages);
  expect(stamps[0].routingKey).toBe("stamp.huge");
  expect(Date.parse(stamps[0].timestamp)).toBeGreaterThanOrEqual(before - 1000);
  expect(Date.parse(stamps[1].timestamp)).toBeGreaterThanOrEqual(before - 1000);
  expect(stamps[2].timestamp).toBe("2023-11-14T22:13:20.000Z");
  watcher.stop();
});

test("payload formats match peekMessages", async () => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const watcher = new Collected(
    client,
    `subscription ($exchange: String!) {
      messages(exchange: $exchange, routingKeyPattern: "format.#") {
        routingKey payload payloadFormat
      }
    }`,
    { exchange },
  );
  await eventually(async () =>
    (await liveQueues()).length === 1 ? true : undefined,
  );

  const binary = Buffer.from([0xff, 0xfe, 0x00, 0x01]);
  await gateway.amqp.publish(exchange, "format.json", Buffer.from('{"a":1}'));
  await gateway.amqp.publish(exchange, "format.text", Buffer.from("héllo"));
  await gateway.amqp.publish(exchange, "format.binary", binary);

  await watcher.until(() => watcher.events.length === 3);
  const [json, text, bytes] = watcher.events.map((event) => event.messages);
  expect(json).toEqual({
    routingKey: "format.json",
    payload: { a: 1 },
    payloadFormat: "JSON",
  });
  expect(text).toEqual({
    routingKey: "format.text",
    payload: "héllo",
    payloadFormat: "TEXT",
  });
  expect(bytes.payloadFormat).toBe("BASE64");
  expect(Buffer.from(bytes.payload, "base64")).toEqual(binary);
  watcher.stop();
});

test("dropped socket removes the live queue", async () => {
  const socket = await rawSubscription(gateway, token, MESSAGES, {
    exchange,
    pattern: "drop.#",
  });
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
  const { message } = feed.errors[0] as { message: string };
  expect(message).toContain("its publisher must declare it");
  expect(message).not.toContain("publish to it first");
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

const MULTI = `subscription ($bindings: [LiveBindingInput!], $filter: [PayloadCondition!]) {
  messages(bindings: $bindings, filter: $filter) {
    routingKey payload binding { exchange routingKeyPattern } notice { kind }
  }
}`;

test("several bindings tag their messages", async () => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const bindings = [
    { exchange, routingKeyPattern: "m.a.*" },
    { exchange, routingKeyPattern: "m.b.*" },
  ];
  const before = gateway.live.stats().subscribers;
  const feed = new Collected(client, MULTI, { bindings });
  await eventually(async () =>
    gateway.live.stats().subscribers >= before + 2 ? true : undefined,
  );
  await publish("m.a.1", { n: 1 });
  await publish("m.c.1", { n: 2 });
  await publish("m.b.1", { n: 3 });
  await feed.until(() => feed.events.length === 2);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const received = feed.events.map((e: any) => [
    e.messages.routingKey,
    e.messages.binding.routingKeyPattern,
  ]);
  expect(received.sort()).toEqual([
    ["m.a.1", "m.a.*"],
    ["m.b.1", "m.b.*"],
  ]);
  feed.stop();
});

test("payload filter selects on the server", async () => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const before = gateway.live.stats().subscribers;
  const feed = new Collected(client, MULTI, {
    bindings: [{ exchange, routingKeyPattern: "f.#" }],
    filter: [
      { path: "status.state", equals: "failed" },
      { path: "status.workerType", in: ["linux", "mac"] },
      { path: "status.retried", exists: false },
    ],
  });
  await eventually(async () => {
    if (feed.errors.length > 0) throw new Error(JSON.stringify(feed.errors));
    return gateway.live.stats().subscribers > before ? true : undefined;
  });
  const payloads = [
    { id: 1, status: { state: "failed", workerType: "linux" } },
    { id: 2, status: { state: "completed", workerType: "linux" } },
    { id: 3, status: { state: "failed", workerType: "windows" } },
    { id: 4, status: { state: "failed", workerType: "mac", retried: true } },
    { id: 5, status: { state: "failed", workerType: "mac" } },
    { id: 6, note: "no status" },
  ];
  for (const payload of payloads) await publish("f.x", payload);
  await feed.until(() => feed.events.length >= 2);
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(feed.events.map((e: any) => e.messages.payload.id)).toEqual([1, 5]);
  feed.stop();
});

test("filter needs exactly one operator", async () => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const feed = new Collected(client, MULTI, {
    bindings: [{ exchange, routingKeyPattern: "#" }],
    filter: [{ path: "a", equals: 1, exists: true }],
  });
  const before = gateway.live.stats().bindings;
  await feed.until(() => feed.errors.length > 0);
  expect(feed.errors[0]).toMatchObject({
    extensions: { code: "BAD_USER_INPUT" },
  });
  expect(gateway.live.stats().bindings).toBe(before);
});

test("empty in list rejected", async () => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const feed = new Collected(client, MULTI, {
    bindings: [{ exchange, routingKeyPattern: "#" }],
    filter: [{ path: "x", in: [] }],
  });
  const before = gateway.live.stats().bindings;
  await feed.until(() => feed.errors.length > 0);
  expect(feed.errors[0]).toMatchObject({
    extensions: { code: "BAD_USER_INPUT" },
  });
  expect((feed.errors[0] as { message: string }).message).toContain('"x"');
  expect(gateway.live.stats().bindings).toBe(before);
});

test("exchange and bindings together rejected", async () => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const feed = new Collected(
    client,
    `subscription ($exchange: String, $bindings: [LiveBindingInput!]) {
       messages(exchange: $exchange, bindings: $bindings) { routingKey }
     }`,
    { exchange, bindings: [{ exchange, routingKeyPattern: "#" }] },
  );
  await feed.until(() => feed.errors.length > 0);
  expect(feed.errors[0]).toMatchObject({
    extensions: { code: "BAD_USER_INPUT" },
  });
});

describe("queueStats", () => {
  const account = uniqueName("stats");
  const queue = `queue/${account}/watched`;
  let owner: string;

  beforeAll(async () => {
    owner = await tokenFor(uniqueEmail("stats-owner"));
    await gql(
      gateway,
      `mutation ($u: String!) { createAccount(input: { username: $u }) { password } }`,
      { u: account },
      owner,
    );
    cleanup.add(() => brokerAdmin().deleteUser(account).catch(() => undefined));
    await gql(
      gateway,
      `mutation ($a: String!) { createQueue(input: { account: $a, name: "watched" }) { name } }`,
      { a: account },
      owner,
    );
    cleanup.add(() => brokerAdmin().deleteQueue(queue).catch(() => undefined));
  });

  const STATS = `subscription ($names: [String!]) {
    queueStats(names: $names) { name messages consumers }
  }`;

  test("pushes the selected queues each poll", async () => {
    const client = wsClient(gateway, owner);
    cleanup.add(() => client.dispose());
    const feed = new Collected(client, STATS, { names: [queue] });
    await gateway.stats.refresh();
    await feed.until(() => feed.events.length >= 1);
    await gateway.stats.refresh();
    await feed.until(() => feed.events.length >= 2);
    const latest = feed.events.at(-1) as any;
    expect(latest.queueStats.map((q: any) => q.name)).toEqual([queue]);
    feed.stop();
  });

  test("removed owner stops receiving", async () => {
    const formerEmail = uniqueEmail("former-owner");
    const added = await gql(
      gateway,
      `mutation ($u: String!, $e: String!) {
        addAccountOwner(username: $u, email: $e) { username }
      }`,
      { u: account, e: formerEmail },
      owner,
    );
    expect(added.errors).toBeUndefined();
    const client = wsClient(gateway, await tokenFor(formerEmail));
    cleanup.add(() => client.dispose());
    const feed = new Collected(client, STATS, { names: [queue] });
    await gateway.stats.refresh();
    await feed.until(() => feed.events.length >= 1);

    const removed = await gql(
      gateway,
      `mutation ($u: String!, $e: String!) {
        removeAccountOwner(username: $u, email: $e) { username }
      }`,
      { u: account, e: formerEmail },
      owner,
    );
    expect(removed.errors).toBeUndefined();
    await gateway.stats.refresh();

    await feed.until(() => feed.errors.length > 0);
    expect(feed.errors[0]).toMatchObject({ extensions: { code: "FORBIDDEN" } });
  });

  test("missing queue name not found", async () => {
    const missing = `queue/${account}/${uniqueName("typo")}`;
    const client = wsClient(gateway, owner);
    cleanup.add(() => client.dispose());
    const feed = new Collected(client, STATS, { names: [queue, missing] });
    await feed.until(() => feed.errors.length > 0);
    expect(feed.events).toEqual([]);
    const error = feed.errors[0] as { message: string; extensions: any };
    expect(error.extensions.code).toBe("NOT_FOUND");
    expect(error.message).toContain(missing);
    expect(error.message).not.toContain(`"${queue}"`);
  });

  test("admin's missing queue name not found", async () => {
    const missing = `queue/${uniqueName("nobody")}/q`;
    const client = wsClient(gateway, await tokenFor(ADMIN_EMAIL));
    cleanup.add(() => client.dispose());
    const feed = new Collected(client, STATS, { names: [missing] });
    await feed.until(() => feed.errors.length > 0);
    expect(feed.errors[0]).toMatchObject({ extensions: { code: "NOT_FOUND" } });
  });

  test("name outside account rejected", async () => {
    const client = wsClient(gateway, await tokenFor(ADMIN_EMAIL));
    cleanup.add(() => client.dispose());
    const other = `queue/${uniqueName("other")}/q`;
    const feed = new Collected(
      client,
      `subscription ($a: String, $names: [String!]) {
        queueStats(account: $a, names: $names) { name }
      }`,
      { a: account, names: [queue, other] },
    );
    await feed.until(() => feed.errors.length > 0);
    const error = feed.errors[0] as { message: string; extensions: any };
    expect(error.extensions.code).toBe("BAD_USER_INPUT");
    expect(error.message).toContain(other);
  });

  test("name of another's account forbidden", async () => {
    const foreign = uniqueName("foreign");
    const stranger = await tokenFor(uniqueEmail("stranger"));
    await createTestAccount(gateway, cleanup, foreign, stranger);
    const client = wsClient(gateway, owner);
    cleanup.add(() => client.dispose());
    const other = `queue/${foreign}/q`;
    const feed = new Collected(
      client,
      `subscription ($a: String, $names: [String!]) {
        queueStats(account: $a, names: $names) { name }
      }`,
      { a: account, names: [queue, other] },
    );
    await feed.until(() => feed.errors.length > 0);
    expect(feed.errors[0]).toMatchObject({ extensions: { code: "FORBIDDEN" } });
  });

  test("removed owner's guardianEvents ends", async () => {
    const formerEmail = uniqueEmail("former-watcher");
    const added = await gql(
      gateway,
      `mutation ($u: String!, $e: String!) {
        addAccountOwner(username: $u, email: $e) { username }
      }`,
      { u: account, e: formerEmail },
      owner,
    );
    expect(added.errors).toBeUndefined();
    const client = wsClient(gateway, await tokenFor(formerEmail));
    cleanup.add(() => client.dispose());
    const feed = new Collected(
      client,
      `subscription ($q: String!) { guardianEvents(queue: $q) { kind } }`,
      { q: queue },
    );
    await gateway.stats.refresh();

    const removed = await gql(
      gateway,
      `mutation ($u: String!, $e: String!) {
        removeAccountOwner(username: $u, email: $e) { username }
      }`,
      { u: account, e: formerEmail },
      owner,
    );
    expect(removed.errors).toBeUndefined();
    await gateway.stats.refresh();

    await feed.until(() => feed.errors.length > 0);
    expect(feed.errors[0]).toMatchObject({ extensions: { code: "FORBIDDEN" } });
  });

  test("stranger's queue is forbidden", async () => {
    const stranger = await tokenFor(uniqueEmail("stranger"));
    const client = wsClient(gateway, stranger);
    cleanup.add(() => client.dispose());
    const feed = new Collected(client, STATS, { names: [queue] });
    await feed.until(() => feed.errors.length > 0);
    expect(feed.errors[0]).toMatchObject({ extensions: { code: "FORBIDDEN" } });
  });
});

describe("anonymous subscriptions", () => {
  let open: Gateway;

  beforeAll(async () => {
    open = await startGateway({ allowAnonymousSubscriptions: true });
    cleanup.add(() => open.stop());
  });

  test("messages allowed without token", async () => {
    const client = wsClient(open, null);
    cleanup.add(() => client.dispose());
    const feed = new Collected(client, MESSAGES, { exchange, pattern: "anon.#" });
    await eventually(async () =>
      open.live.stats().subscribers >= 1 ? true : undefined,
    );
    await open.amqp.publish(exchange, "anon.1", Buffer.from('{"ok":true}'));
    await feed.until(() => feed.events.length === 1);
    feed.stop();
  });

  test("guardianEvents still needs a token", async () => {
    const client = wsClient(open, null);
    cleanup.add(() => client.dispose());
    const feed = new Collected(client, "subscription { guardianEvents { kind } }");
    await feed.until(() => feed.errors.length > 0);
    expect(feed.errors[0]).toMatchObject({
      extensions: { code: "UNAUTHENTICATED" },
    });
  });

  test("off by default", async () => {
    const response = await new Promise<number>((resolve) => {
      const client = wsClient(gateway, null);
      client.subscribe(
        { query: MESSAGES, variables: { exchange, pattern: "#" } },
        {
          next: () => undefined,
          error: (error) => {
            resolve((error as { code: number }).code);
            void client.dispose();
          },
          complete: () => resolve(-1),
        },
      );
    });
    expect(response).toBe(4403);
  });
});

describe("teardown", () => {
  async function metric(name: string): Promise<number> {
    const text = await (
      await fetch(gateway.url.replace(/\/graphql$/, "/metrics"))
    ).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    return Number(line?.split(" ")[1]);
  }

  function rawSubscribe(pattern: string): Promise<WebSocket> {
    return rawSubscription(gateway, token, MESSAGES, { exchange, pattern });
  }

  test("socket dropped while declaring leaves nothing", async () => {
    for (let i = 0; i < 5; i += 1) {
      const socket = await rawSubscribe(`declaring.${i}.#`);
      socket.terminate();
    }
    await eventually(async () =>
      gateway.live.stats().bindings === 0 ? true : undefined,
    );
    await eventually(async () =>
      (await liveQueues()).length === 0 ? true : undefined,
    );
  });

  test("metrics return to their start", async () => {
    const names = [
      "pulse_gateway_live_bindings",
      "pulse_gateway_live_subscribers",
      "pulse_gateway_live_queues",
      "pulse_gateway_websocket_connections",
    ];
    const start = await Promise.all(names.map(metric));

    const sockets = await Promise.all(
      ["t.1", "t.1", "t.2", "t.#"].map((pattern) => rawSubscribe(pattern)),
    );
    await eventually(async () =>
      (await metric("pulse_gateway_live_subscribers")) === start[1] + 4
        ? true
        : undefined,
    );
    expect(await metric("pulse_gateway_live_queues")).toBe(start[2] + 3);
    sockets[0].close();
    sockets[1].terminate();
    sockets[2].close();
    sockets[3].terminate();

    const end = await eventually(async () => {
      const values = await Promise.all(names.map(metric));
      return values.every((value, i) => value === start[i]) ? values : undefined;
    });
    expect(end).toEqual(start);
  });

  test("metrics report process memory", async () => {
    const rss = await metric("process_resident_memory_bytes");
    const heapUsed = await metric("nodejs_heap_size_used_bytes");
    const heapTotal = await metric("nodejs_heap_size_total_bytes");
    expect(rss).toBeGreaterThan(0);
    expect(heapUsed).toBeGreaterThan(0);
    expect(heapTotal).toBeGreaterThanOrEqual(heapUsed);
  });
});

test("deleted live queue ends only its subscription", async () => {
  const client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const doomed = new Collected(client, MESSAGES, { exchange, pattern: "doomed.#" });
  const survivor = new Collected(client, MESSAGES, { exchange, pattern: "kept.#" });
  await eventually(async () =>
    gateway.live.stats().bindings >= 2 ? true : undefined,
  );
  const prefix = `queue/${gateway.config.gatewayAccount}/live/`;
  const bindings = await brokerAdmin().listBindings();
  const queue = bindings.find(
    (b) => b.destination.startsWith(prefix) && b.routing_key === "doomed.#",
  )!.destination;

  // Exclusive queues can only be deleted on the connection that owns them.
  const channel = await gateway.amqp.createChannel();
  await channel.deleteQueue(queue);
  await channel.close();

  await doomed.until(() => doomed.errors.length > 0);
  expect(doomed.errors[0]).toMatchObject({ extensions: { code: "NOT_FOUND" } });
  await publish("kept.1", { still: "here" });
  await survivor.until(() => survivor.events.length === 1);
  survivor.stop();
});
