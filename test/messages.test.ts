// Messages and bindings of a queue: peek leaves every message in place,
// purge empties the queue, updateBinding and replaceBindings change
// bindings without a gap, and a stranger's attempts change nothing.
import type { Channel } from "amqplib";

import type { Gateway } from "../src/server";
import { MAX_PEEK_COUNT, PEEK_MAX_PAYLOAD_BYTES } from "../src/services";
import {
  brokerAdmin,
  Cleanup,
  createTestAccount,
  declareTestExchange,
  errorCodes,
  eventually,
  gql,
  startGateway,
  testConfig,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let owner: string;
let stranger: string;
let channel: Channel;
const account = uniqueName("messages");
const exchange = `exchange/${uniqueName("test-messages")}/v1`;
const otherExchange = `exchange/${uniqueName("test-messages")}/v2`;

const PEEK = `query ($q: String!, $n: Int!) {
  peekMessages(queue: $q, count: $n) {
    exchange routingKey redelivered payload payloadFormat payloadBytes
    truncated properties
  }
}`;
const PURGE = `mutation ($q: String!) {
  purgeQueue(name: $q) {
    messagesPurged
    queue { name messages messagesReady messagesUnacknowledged }
  }
}`;
const UPDATE = `mutation ($input: BindingInput!, $to: BindingTargetInput!) {
  updateBinding(input: $input, to: $to) { queue exchange routingKeyPattern }
}`;
const REPLACE = `mutation ($q: String!, $b: [BindingTargetInput!]!) {
  replaceBindings(queue: $q, bindings: $b) { exchange routingKeyPattern }
}`;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  owner = await tokenFor(uniqueEmail("owner"));
  stranger = await tokenFor(uniqueEmail("stranger"));
  await createTestAccount(gateway, cleanup, account, owner);
  await declareTestExchange(gateway, cleanup, exchange);
  await declareTestExchange(gateway, cleanup, otherExchange);
  channel = await gateway.amqp.createChannel();
  cleanup.add(() => channel.close());
});

afterAll(() => cleanup.run());

/** Creates queue/<account>/<name> through the API and returns its name. */
async function createQueue(name: string): Promise<string> {
  const queue = `queue/${account}/${name}`;
  cleanup.add(() => brokerAdmin().deleteQueue(queue).catch(() => undefined));
  const response = await gql(
    gateway,
    `mutation ($a: String!, $n: String!) {
      createQueue(input: { account: $a, name: $n, durable: false }) { name }
    }`,
    { a: account, n: name },
    owner,
  );
  expect(response.errors).toBeUndefined();
  return queue;
}

/** Publishes each body through the default exchange, with confirms. */
async function fill(queue: string, bodies: (string | Buffer)[]) {
  for (const body of bodies) {
    await gateway.amqp.publish("", queue, Buffer.from(body), {
      contentType: "application/json",
    });
  }
}

/** Ready messages in the queue, read from the queue itself. */
async function readyCount(queue: string): Promise<number> {
  return (await channel.checkQueue(queue)).messageCount;
}

async function brokerBindings(queue: string): Promise<string[]> {
  const bindings = await brokerAdmin().listQueueBindings(queue);
  return bindings
    .filter((b) => b.source !== "")
    .map((b) => `${b.source} ${b.routing_key}`)
    .sort();
}

describe("peek", () => {
  test("peek leaves the count unchanged", async () => {
    const queue = await createQueue("peeked");
    await fill(queue, [1, 2, 3, 4, 5].map((i) => JSON.stringify({ i })));
    expect(await readyCount(queue)).toBe(5);
    const response = await gql(gateway, PEEK, { q: queue, n: 3 }, owner);
    expect(response.errors).toBeUndefined();
    expect(response.data!.peekMessages).toHaveLength(3);
    expect(await readyCount(queue)).toBe(5);
  });

  test("peek decodes JSON in order", async () => {
    const queue = await createQueue("ordered");
    await fill(queue, [1, 2, 3].map((i) => JSON.stringify({ i })));
    const response = await gql(gateway, PEEK, { q: queue, n: 3 }, owner);
    const messages = response.data!.peekMessages;
    expect(messages.map((m: { payload: unknown }) => m.payload)).toEqual([
      { i: 1 },
      { i: 2 },
      { i: 3 },
    ]);
    expect(messages[0]).toMatchObject({
      exchange: "",
      routingKey: queue,
      payloadFormat: "JSON",
      payloadBytes: 7,
      truncated: false,
      properties: { content_type: "application/json" },
    });
  });

  test("second peek sees same messages", async () => {
    const queue = await createQueue("twice");
    await fill(queue, ['{"first":true}', '{"second":true}']);
    const first = await gql(gateway, PEEK, { q: queue, n: 1 }, owner);
    const second = await gql(gateway, PEEK, { q: queue, n: 1 }, owner);
    expect(first.data!.peekMessages[0].payload).toEqual({ first: true });
    expect(second.data!.peekMessages[0].payload).toEqual({ first: true });
    expect(second.data!.peekMessages[0].redelivered).toBe(true);
  });

  test("peek returns at most the queue", async () => {
    const queue = await createQueue("short");
    await fill(queue, ['{"only":1}']);
    const response = await gql(gateway, PEEK, { q: queue, n: 10 }, owner);
    expect(response.data!.peekMessages).toHaveLength(1);
  });

  test("text and binary payloads", async () => {
    const queue = await createQueue("formats");
    await fill(queue, ["plain text", Buffer.from([0xff, 0xfe, 0x00, 0x01])]);
    const response = await gql(gateway, PEEK, { q: queue, n: 2 }, owner);
    const [text, binary] = response.data!.peekMessages;
    expect(text).toMatchObject({ payload: "plain text", payloadFormat: "TEXT" });
    expect(binary.payloadFormat).toBe("BASE64");
    expect(Buffer.from(binary.payload, "base64")).toEqual(
      Buffer.from([0xff, 0xfe, 0x00, 0x01]),
    );
  });

  test("out-of-range timestamp kept as number", async () => {
    const queue = await createQueue("stamped");
    await gateway.amqp.publish("", queue, Buffer.from("{}"), {
      timestamp: 99_999_999_999_999,
    });
    const response = await gql(gateway, PEEK, { q: queue, n: 1 }, owner);
    expect(response.errors).toBeUndefined();
    const [message] = response.data!.peekMessages;
    expect(message.properties.timestamp).toBe(99_999_999_999_999);
  });

  test("large payload is truncated", async () => {
    const queue = await createQueue("large");
    const body = JSON.stringify({ data: "x".repeat(PEEK_MAX_PAYLOAD_BYTES) });
    await fill(queue, [body]);
    const response = await gql(gateway, PEEK, { q: queue, n: 1 }, owner);
    const [message] = response.data!.peekMessages;
    expect(message.truncated).toBe(true);
    expect(message.payloadFormat).toBe("TEXT");
    expect(message.payloadBytes).toBe(Buffer.byteLength(body));
    expect(message.payload.length).toBeLessThan(body.length);
    expect(await readyCount(queue)).toBe(1);
  });

  test.each([0, -1, MAX_PEEK_COUNT + 1])("count %i rejected", async (n) => {
    const queue = await createQueue(uniqueName("count"));
    const response = await gql(gateway, PEEK, { q: queue, n }, owner);
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors![0].message).toContain(String(n));
  });

  test("stranger cannot peek", async () => {
    const queue = await createQueue("private");
    await fill(queue, ['{"secret":1}']);
    const response = await gql(gateway, PEEK, { q: queue, n: 1 }, stranger);
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
    expect(JSON.stringify(response)).not.toContain("secret");
    expect(await readyCount(queue)).toBe(1);
  });

  test("unknown queue not found", async () => {
    const queue = `queue/${account}/${uniqueName("ghost")}`;
    const response = await gql(gateway, PEEK, { q: queue, n: 1 }, owner);
    expect(errorCodes(response)).toEqual(["NOT_FOUND"]);
  });
});

describe("purge", () => {
  test("purge empties the queue", async () => {
    const queue = await createQueue("purged");
    await fill(queue, ["{}", "{}", "{}"]);
    // Waits for the management API's statistics to show the messages, so
    // that a count taken from them after the purge would still be 3.
    await eventually(async () =>
      (await brokerAdmin().getQueue(queue)).messages === 3 ? true : undefined,
    );

    const response = await gql(gateway, PURGE, { q: queue }, owner);

    expect(response.errors).toBeUndefined();
    expect(response.data?.purgeQueue).toEqual({
      messagesPurged: 3,
      queue: {
        name: queue,
        messages: null,
        messagesReady: 0,
        messagesUnacknowledged: 0,
      },
    });
    expect(await readyCount(queue)).toBe(0);
  });

  test("purge with unacked messages reports no sum", async () => {
    const queue = await createQueue("held");
    await fill(queue, Array.from({ length: 10 }, () => "{}"));
    const consumer = await gateway.amqp.createChannel();
    cleanup.add(() => consumer.close().catch(() => undefined));
    await consumer.prefetch(3);
    let held = 0;
    await consumer.consume(queue, () => void (held += 1), { noAck: false });
    await eventually(async () => (held === 3 ? true : undefined));

    const response = await gql(
      gateway,
      `mutation ($q: String!) {
        purgeQueue(name: $q) {
          messagesPurged queue { messages messagesReady consumers }
        }
      }`,
      { q: queue },
      owner,
    );

    expect(response.errors).toBeUndefined();
    expect(response.data?.purgeQueue).toEqual({
      messagesPurged: 7,
      queue: { messages: null, messagesReady: 0, consumers: 1 },
    });
  });

  test("purge of empty queue reports zero", async () => {
    const queue = await createQueue("already-empty");

    const response = await gql(gateway, PURGE, { q: queue }, owner);

    expect(response.errors).toBeUndefined();
    expect(response.data?.purgeQueue.messagesPurged).toBe(0);
    expect(response.data?.purgeQueue.queue.messagesReady).toBe(0);
  });

  test("purge without AMQP read permission", async () => {
    // A gateway whose own account has Pulse permissions may not purge
    // another account's queue over AMQP, so it purges over HTTP.
    const limitedUser = uniqueName("limited.gateway");
    const admin = brokerAdmin();
    await admin.createUser(limitedUser, "limited-password");
    cleanup.add(() => admin.deleteUser(limitedUser).catch(() => undefined));
    await admin.setPermissions(limitedUser, {
      configure: `^(queue/${limitedUser}/.*)`,
      write: `^(queue/${limitedUser}/.*)`,
      read: `^(queue/${limitedUser}/.*|exchange/.*)`,
    });
    const amqpUrl = new URL(testConfig().amqpUrl);
    amqpUrl.username = limitedUser;
    amqpUrl.password = "limited-password";
    const limited = await startGateway({ amqpUrl: amqpUrl.toString() });
    cleanup.add(() => limited.stop());
    const queue = await createQueue("purged-over-http");
    await fill(queue, ["{}", "{}"]);

    const response = await gql(limited, PURGE, { q: queue }, owner);

    expect(response.errors).toBeUndefined();
    expect(response.data?.purgeQueue.messagesPurged).toBeNull();
    expect(await readyCount(queue)).toBe(0);
  });

  test("stranger cannot purge", async () => {
    const queue = await createQueue("kept");
    await fill(queue, ["{}", "{}"]);
    const response = await gql(gateway, PURGE, { q: queue }, stranger);
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
    expect(await readyCount(queue)).toBe(2);
  });

  test("unknown queue not found", async () => {
    const queue = `queue/${account}/${uniqueName("ghost")}`;
    const response = await gql(gateway, PURGE, { q: queue }, owner);
    expect(errorCodes(response)).toEqual(["NOT_FOUND"]);
  });
});

describe("replaceBindings", () => {
  async function boundQueue(name: string, patterns: string[]) {
    const queue = await createQueue(name);
    for (const routingKeyPattern of patterns) {
      await gateway.management.bindQueue(exchange, queue, routingKeyPattern);
    }
    return queue;
  }

  test("replace swaps the binding set", async () => {
    const queue = await boundQueue("swapped", ["a.#", "b.#"]);
    const response = await gql(
      gateway,
      REPLACE,
      {
        q: queue,
        b: [
          { exchange, routingKeyPattern: "b.#" },
          { exchange: otherExchange, routingKeyPattern: "c.*" },
        ],
      },
      owner,
    );
    expect(response.errors).toBeUndefined();
    expect(response.data!.replaceBindings).toHaveLength(2);
    expect(await brokerBindings(queue)).toEqual(
      [`${exchange} b.#`, `${otherExchange} c.*`].sort(),
    );
    const rows = await gateway.db.binding.findMany({
      where: { queue: { name: queue } },
    });
    expect(rows.map((row) => row.routingKeyPattern).sort()).toEqual([
      "b.#",
      "c.*",
    ]);
  });

  test("empty list removes every binding", async () => {
    const queue = await boundQueue("cleared", ["a.#"]);
    const response = await gql(gateway, REPLACE, { q: queue, b: [] }, owner);
    expect(response.data?.replaceBindings).toEqual([]);
    expect(await brokerBindings(queue)).toEqual([]);
  });

  test("replaced set routes messages", async () => {
    const queue = await boundQueue("flowing", ["old.#"]);
    await gql(
      gateway,
      REPLACE,
      {
        q: queue,
        b: [{ exchange, routingKeyPattern: "#" }],
      },
      owner,
    );
    await gateway.amqp.publish(exchange, "old.key", Buffer.from("{}"));
    await gateway.amqp.publish(exchange, "other.key", Buffer.from("{}"));
    expect(await readyCount(queue)).toBe(2);
  });

  test("unknown exchange leaves bindings", async () => {
    const queue = await boundQueue("unchanged", ["a.#"]);
    const missing = `exchange/${uniqueName("missing")}/v1`;
    const response = await gql(
      gateway,
      REPLACE,
      {
        q: queue,
        b: [
          { exchange, routingKeyPattern: "new.#" },
          { exchange: missing, routingKeyPattern: "#" },
        ],
      },
      owner,
    );
    expect(errorCodes(response)).toEqual(["NOT_FOUND"]);
    expect(response.errors![0].message).toContain(missing);
    expect(await brokerBindings(queue)).toEqual([`${exchange} a.#`]);
  });

  test("malformed pattern leaves bindings", async () => {
    const queue = await boundQueue("malformed", ["a.#"]);
    const response = await gql(
      gateway,
      REPLACE,
      { q: queue, b: [{ exchange, routingKeyPattern: "a.b*" }] },
      owner,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(await brokerBindings(queue)).toEqual([`${exchange} a.#`]);
  });

  test("stranger cannot replace", async () => {
    const queue = await boundQueue("guarded", ["a.#"]);
    const response = await gql(
      gateway,
      REPLACE,
      { q: queue, b: [{ exchange, routingKeyPattern: "#" }] },
      stranger,
    );
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
    expect(await brokerBindings(queue)).toEqual([`${exchange} a.#`]);
  });

  test("too many bindings rejected", async () => {
    const queue = await boundQueue("crowded", ["a.#"]);
    const bindings = Array.from({ length: 101 }, (_, i) => ({
      exchange,
      routingKeyPattern: `k${i}.#`,
    }));
    const response = await gql(gateway, REPLACE, { q: queue, b: bindings }, owner);
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(await brokerBindings(queue)).toEqual([`${exchange} a.#`]);
  });
});

describe("updateBinding", () => {
  async function boundQueue(name: string, pattern: string) {
    const queue = await createQueue(name);
    await gateway.management.bindQueue(exchange, queue, pattern);
    return queue;
  }

  function update(queue: string, to: object, token = owner, from = "a.#") {
    return gql(
      gateway,
      UPDATE,
      { input: { queue, exchange, routingKeyPattern: from }, to },
      token,
    );
  }

  test("update moves the binding", async () => {
    const queue = await boundQueue("moved", "a.#");
    const response = await update(queue, {
      exchange: otherExchange,
      routingKeyPattern: "b.*",
    });
    expect(response.data?.updateBinding).toEqual({
      queue,
      exchange: otherExchange,
      routingKeyPattern: "b.*",
    });
    expect(await brokerBindings(queue)).toEqual([`${otherExchange} b.*`]);
    const rows = await gateway.db.binding.findMany({
      where: { queue: { name: queue } },
    });
    expect(rows.map((row) => row.exchange)).toEqual([otherExchange]);
  });

  test("missing old binding not found", async () => {
    const queue = await boundQueue("no-old", "a.#");
    const response = await update(
      queue,
      { exchange, routingKeyPattern: "c.#" },
      owner,
      "absent.#",
    );
    expect(errorCodes(response)).toEqual(["NOT_FOUND"]);
    expect(await brokerBindings(queue)).toEqual([`${exchange} a.#`]);
  });

  test("unknown new exchange keeps old", async () => {
    const queue = await boundQueue("kept-old", "a.#");
    const missing = `exchange/${uniqueName("missing")}/v1`;
    const response = await update(queue, {
      exchange: missing,
      routingKeyPattern: "#",
    });
    expect(errorCodes(response)).toEqual(["NOT_FOUND"]);
    expect(response.errors![0].message).toContain(missing);
    expect(await brokerBindings(queue)).toEqual([`${exchange} a.#`]);
  });

  test("existing new binding conflicts", async () => {
    const queue = await boundQueue("both", "a.#");
    await gateway.management.bindQueue(exchange, queue, "b.#");
    const response = await update(queue, { exchange, routingKeyPattern: "b.#" });
    expect(errorCodes(response)).toEqual(["CONFLICT"]);
    expect(await brokerBindings(queue)).toEqual([
      `${exchange} a.#`,
      `${exchange} b.#`,
    ]);
  });

  test("same binding rejected", async () => {
    const queue = await boundQueue("same", "a.#");
    const response = await update(queue, { exchange, routingKeyPattern: "a.#" });
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(await brokerBindings(queue)).toEqual([`${exchange} a.#`]);
  });

  test("stranger cannot update", async () => {
    const queue = await boundQueue("guarded-update", "a.#");
    const response = await update(
      queue,
      { exchange, routingKeyPattern: "#" },
      stranger,
    );
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
    expect(await brokerBindings(queue)).toEqual([`${exchange} a.#`]);
  });
});

describe("binding limit", () => {
  const CREATE = `mutation ($input: BindingInput!) {
    createBinding(input: $input) { routingKeyPattern }
  }`;

  /** A queue with `count` bindings to `exchange`, made over AMQP. */
  async function fullQueue(name: string, count: number) {
    const queue = await createQueue(name);
    for (let i = 0; i < count; i += 1) {
      await channel.bindQueue(queue, exchange, `k${i}.#`);
    }
    return queue;
  }

  test("createBinding refuses the 101st", async () => {
    const queue = await fullQueue("full", 100);
    const response = await gql(
      gateway,
      CREATE,
      { input: { queue, exchange, routingKeyPattern: "one.more" } },
      owner,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors?.[0].message).toContain("at most 100");
    expect(await brokerBindings(queue)).toHaveLength(100);
  });

  test("concurrent createBinding stays within it", async () => {
    const queue = await fullQueue("racing", 97);
    const responses = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        gql(
          gateway,
          CREATE,
          { input: { queue, exchange, routingKeyPattern: `race${i}` } },
          owner,
        ),
      ),
    );
    const created = responses.filter((r) => r.errors === undefined).length;
    const bindings = await brokerBindings(queue);
    expect(bindings.length).toBeLessThanOrEqual(100);
    expect(bindings).toHaveLength(97 + created);
  });

  test("updateBinding refuses a queue over it", async () => {
    const queue = await fullQueue("overfull", 101);
    const response = await gql(
      gateway,
      UPDATE,
      {
        input: { queue, exchange, routingKeyPattern: "k0.#" },
        to: { exchange, routingKeyPattern: "moved.#" },
      },
      owner,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(await brokerBindings(queue)).toContain(`${exchange} k0.#`);
  });

  test("updateBinding moves one at the limit", async () => {
    const queue = await fullQueue("at-limit", 100);
    const response = await gql(
      gateway,
      UPDATE,
      {
        input: { queue, exchange, routingKeyPattern: "k0.#" },
        to: { exchange, routingKeyPattern: "moved.#" },
      },
      owner,
    );
    expect(response.errors).toBeUndefined();
    expect(await brokerBindings(queue)).toHaveLength(100);
  });
});
