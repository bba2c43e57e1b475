import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import type { Channel, GetMessage } from "amqplib";

import { main as replayMain } from "../../src/cli/replay";
import { loadConfig } from "../../src/config";
import { createLogger } from "../../src/logger";
import { AmqpConnection, ManagementClient } from "../../src/rabbitmq";
import {
  parseRecording,
  publishRecording,
  readRecording,
  type RecordedMessage,
} from "../../src/replay";

const SAMPLES_DIR = path.resolve(__dirname, "../../samples");
const TASKCLUSTER_FILE = path.join(
  SAMPLES_DIR,
  "taskcluster_pulse_messages.json",
);
const HG_FILE = path.join(SAMPLES_DIR, "hg_push.json");
const GITHUB_FILE = path.join(SAMPLES_DIR, "github_push.json");

const QUEUE_EXCHANGE = "exchange/taskcluster-queue/v1";

const config = loadConfig();

function countOn(messages: RecordedMessage[], exchange: string): number {
  return messages.filter((m) => m.exchange === exchange).length;
}

describe("parseRecording", () => {
  test("reads taskcluster recording", async () => {
    const messages = await readRecording(TASKCLUSTER_FILE);

    expect(messages).toHaveLength(91);
    expect(countOn(messages, `${QUEUE_EXCHANGE}/task-completed`)).toBe(13);
    expect(countOn(messages, `${QUEUE_EXCHANGE}/task-pending`)).toBe(67);
    expect(countOn(messages, `${QUEUE_EXCHANGE}/task-running`)).toBe(11);
    for (const message of messages) {
      expect(message.routingKey).toMatch(/^primary\./);
      expect(message.ccRoutingKeys).toEqual([]);
      // The second word of a Taskcluster queue routing key is the task id.
      const payload = message.payload as { status: { taskId: string } };
      expect(message.routingKey.split(".")[1]).toBe(payload.status.taskId);
    }
  });

  test("reads hg push recording", async () => {
    const messages = await readRecording(HG_FILE);

    expect(messages).toHaveLength(1);
    expect(messages[0].exchange).toBe("exchange/hgpushes/v1");
    expect(messages[0].routingKey).toBe("try");
    expect(messages[0].ccRoutingKeys).toEqual([]);
    const payload = messages[0].payload as { _meta: { routing_key: string } };
    expect(payload._meta.routing_key).toBe("try");
  });

  test("reads github push recording", async () => {
    const messages = await readRecording(GITHUB_FILE);

    expect(messages).toHaveLength(2);
    expect(messages.map((m) => m.exchange)).toEqual([
      "exchange/taskcluster-github/v1/push",
      "exchange/taskcluster-github/v1/push",
    ]);
    expect(messages.map((m) => m.routingKey)).toEqual([
      "primary.mozilla-mobile.android-components",
      "primary.servo.servo",
    ]);
    expect(messages.map((m) => m.redelivered)).toEqual([false, false]);
  });

  test("splits routes array into CC", () => {
    const messages = parseRecording(
      {
        T1: {
          exchange: "exchange/a",
          routes: ["primary.x", "route.index.y", "route.notify.z"],
          payload: { n: 1 },
        },
      },
      "routes.json",
    );

    expect(messages).toEqual([
      {
        exchange: "exchange/a",
        routingKey: "primary.x",
        ccRoutingKeys: ["route.index.y", "route.notify.z"],
        payload: { n: 1 },
      },
    ]);
  });

  test("reads cc of listener shape", () => {
    const [message] = parseRecording(
      [{ exchange: "e", routingKey: "k", cc: ["c1", "c2"], payload: null }],
      "cc.json",
    );

    expect(message.ccRoutingKeys).toEqual(["c1", "c2"]);
    expect(message.payload).toBeNull();
    expect(message.redelivered).toBeUndefined();
  });

  test.each([
    ["a string", "text"],
    ["a number", 42],
    ["null", null],
    ["an object of numbers", { a: 1 }],
    ["an empty array", []],
    ["an empty object", {}],
    ["a payload without _meta", { payload: { x: 1 } }],
  ])("rejects %s", (_kind, json) => {
    const parse = () => parseRecording(json, "bad-shape.json");

    expect(parse).toThrow(/bad-shape\.json/);
    expect(parse).toThrow(/array of \{exchange, routingKey, cc, payload\}/);
  });

  test.each([
    [
      "array record without exchange",
      [{ exchange: "e", routingKey: "k", payload: 1 }, { routingKey: "k" }],
      /bad\.json: message \[1\] has no exchange/,
    ],
    [
      "array record without routing key",
      [{ exchange: "e", payload: 1 }],
      /bad\.json: message \[0\] has no routing key/,
    ],
    [
      "task record without routes",
      { T1: { exchange: "e", payload: 1 } },
      /bad\.json: message "T1" has no routing key/,
    ],
    [
      "task record with empty routes",
      { T1: { exchange: "e", routes: [], payload: 1 } },
      /bad\.json: message "T1" has no routing key/,
    ],
    [
      "task record without exchange",
      { T1: { routes: "k", payload: 1 } },
      /bad\.json: message "T1" has no exchange/,
    ],
    [
      "meta without exchange",
      { payload: { _meta: { routing_key: "try" } } },
      /bad\.json has no exchange: "payload\._meta\.exchange" is missing/,
    ],
    [
      "record without payload",
      [{ exchange: "e", routingKey: "k" }],
      /bad\.json: message \[0\] has no "payload"/,
    ],
    [
      "overlong routing key",
      [{ exchange: "e", routingKey: "k".repeat(256), payload: 1 }],
      /bad\.json: message \[0\] has a "routingKey" of 256 bytes/,
    ],
    [
      "non-string cc",
      [{ exchange: "e", routingKey: "k", cc: [1], payload: 1 }],
      /bad\.json: message \[0\] has an invalid "cc" value/,
    ],
  ])("rejects %s", (_case, json, expected) => {
    expect(() => parseRecording(json, "bad.json")).toThrow(expected);
  });
});

describe("readRecording", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "replay-test-"));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("names missing file", async () => {
    const file = path.join(dir, "absent.json");

    await expect(readRecording(file)).rejects.toThrow(
      `Recording ${file} not found`,
    );
  });

  test("names file with invalid JSON", async () => {
    const file = path.join(dir, "broken.json");
    await writeFile(file, "{ not json");

    await expect(readRecording(file)).rejects.toThrow(
      `${file} is not valid JSON`,
    );
  });
});

describe("publishRecording against RabbitMQ", () => {
  const prefix = `exchange/test-replay-${randomUUID()}`;
  const createdExchanges = new Set<string>();
  let connection: AmqpConnection;
  let channel: Channel;
  let management: ManagementClient;
  let tempDir: string;

  beforeAll(async () => {
    connection = new AmqpConnection({
      url: config.amqpUrl,
      logger: createLogger({ level: "silent" }),
    });
    await connection.start();
    await connection.waitForConnection(10_000);
    channel = await connection.createChannel();
    management = new ManagementClient(config.managementUrl, config.vhost);
    tempDir = await mkdtemp(path.join(os.tmpdir(), "replay-cli-test-"));
  });

  afterAll(async () => {
    // A fresh channel, because a test may have made the broker close one.
    const cleanup = await connection.createChannel();
    for (const exchange of createdExchanges) {
      await cleanup.deleteExchange(exchange);
    }
    await cleanup.close();
    await connection.close();
    await rm(tempDir, { recursive: true, force: true });
  });

  function exchangeName(suffix: string): string {
    const name = `${prefix}/${suffix}`;
    createdExchanges.add(name);
    return name;
  }

  function renamed(messages: RecordedMessage[]): RecordedMessage[] {
    return messages.map((m) => ({ ...m, exchange: exchangeName(m.exchange) }));
  }

  async function boundQueue(exchange: string, pattern: string) {
    const { queue } = await channel.assertQueue("", { exclusive: true });
    await channel.assertExchange(exchange, "topic", { durable: true });
    await channel.bindQueue(queue, exchange, pattern);
    return queue;
  }

  async function drain(queue: string): Promise<GetMessage[]> {
    const received: GetMessage[] = [];
    for (;;) {
      const message = await channel.get(queue, { noAck: true });
      if (message === false) return received;
      received.push(message);
    }
  }

  test("round trip matches bindings", async () => {
    const originals = [
      ...(await readRecording(TASKCLUSTER_FILE)),
      ...(await readRecording(HG_FILE)),
      ...(await readRecording(GITHUB_FILE)),
    ];
    const messages = renamed(originals);
    const bindings: Array<[string, string, number]> = [
      [`${QUEUE_EXCHANGE}/task-completed`, "#", 13],
      [`${QUEUE_EXCHANGE}/task-pending`, "primary.#.gecko-t-linux-large.#", 56],
      [`${QUEUE_EXCHANGE}/task-running`, "primary.*.0.us-west-1.#", 7],
      ["exchange/hgpushes/v1", "try", 1],
      ["exchange/taskcluster-github/v1/push", "primary.servo.*", 1],
    ];
    const queues: string[] = [];
    for (const [exchange, pattern] of bindings) {
      queues.push(await boundQueue(exchangeName(exchange), pattern));
    }

    const result = await publishRecording(connection, messages);

    expect(result.published).toBe(94);
    expect(result.exchanges).toHaveLength(5);
    // A confirm means every matching queue has the message, so the
    // counts are exact once publishRecording resolves.
    for (const [index, [exchange, pattern, expected]] of bindings.entries()) {
      const { messageCount } = await channel.checkQueue(queues[index]);
      expect({ exchange, pattern, messageCount }).toEqual({
        exchange,
        pattern,
        messageCount: expected,
      });
    }

    const completed = messages.filter((m) =>
      m.exchange.endsWith("/task-completed"),
    );
    const received = await drain(queues[0]);
    expect(received).toHaveLength(completed.length);
    received.forEach((delivery, index) => {
      expect(delivery.fields.exchange).toBe(completed[index].exchange);
      expect(delivery.fields.routingKey).toBe(completed[index].routingKey);
      expect(delivery.properties.contentType).toBe("application/json");
      expect(delivery.properties.deliveryMode).toBe(2);
      expect(JSON.parse(delivery.content.toString("utf8"))).toEqual(
        completed[index].payload,
      );
    });
  });

  test("CC keys route and arrive", async () => {
    const exchange = exchangeName("cc");
    const everything = await boundQueue(exchange, "#");
    const notifyOnly = await boundQueue(exchange, "route.notify.#");
    const messages: RecordedMessage[] = [
      {
        exchange,
        routingKey: "primary.main",
        ccRoutingKeys: ["route.index.a", "route.notify.b"],
        payload: { n: 1 },
      },
      { exchange, routingKey: "primary.plain", ccRoutingKeys: [], payload: 2 },
    ];

    await publishRecording(connection, messages);

    const all = await drain(everything);
    expect(all.map((m) => m.fields.routingKey)).toEqual([
      "primary.main",
      "primary.plain",
    ]);
    expect(all[0].properties.headers?.CC).toEqual([
      "route.index.a",
      "route.notify.b",
    ]);
    expect(all[1].properties.headers?.CC).toBeUndefined();
    const notified = await drain(notifyOnly);
    expect(notified).toHaveLength(1);
    expect(notified[0].fields.routingKey).toBe("primary.main");
    expect(JSON.parse(notified[0].content.toString("utf8"))).toEqual({ n: 1 });
  });

  test("declares missing exchange as topic", async () => {
    const exchange = exchangeName("declared");
    const message = {
      exchange,
      routingKey: "k",
      ccRoutingKeys: [],
      payload: 1,
    };

    const result = await publishRecording(connection, [message]);

    expect(result).toEqual({ published: 1, nacked: 0, exchanges: [exchange] });
    const info = await management.getExchange(exchange);
    expect(info.type).toBe("topic");
    expect(info.durable).toBe(true);
  });

  test("rejects exchange of another type", async () => {
    const exchange = exchangeName("fanout");
    await channel.assertExchange(exchange, "fanout", { durable: true });
    const message = {
      exchange,
      routingKey: "k",
      ccRoutingKeys: [],
      payload: 1,
    };

    const publishing = publishRecording(connection, [message]);

    await expect(publishing).rejects.toThrow(`Exchange "${exchange}"`);
    await expect(publishing).rejects.toThrow(/another type or durability/);
    // The failed declaration closed only its own channel.
    const other = { ...message, exchange: exchangeName("after-fanout") };
    await expect(publishRecording(connection, [other])).resolves.toEqual({
      published: 1,
      nacked: 0,
      exchanges: [other.exchange],
    });
  });

  test("rejects missing exchange without declaring", async () => {
    const exchange = exchangeName("never-declared");
    const message = {
      exchange,
      routingKey: "k",
      ccRoutingKeys: [],
      payload: 1,
    };

    const publishing = publishRecording(connection, [message], {
      declareExchanges: false,
    });

    await expect(publishing).rejects.toThrow(
      `Exchange "${exchange}" not found`,
    );
    await expect(management.getExchange(exchange)).rejects.toThrow(/404/);
  });

  test("delay spaces messages", async () => {
    const exchange = exchangeName("delayed");
    const messages = [1, 2, 3].map((n) => ({
      exchange,
      routingKey: "k",
      ccRoutingKeys: [],
      payload: n,
    }));
    const started = Date.now();

    await publishRecording(connection, messages, { delayMs: 50 });

    // Two pauses of 50 ms lie between three messages.
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
  });

  test("CLI publishes file and summarizes", async () => {
    const exchange = exchangeName("cli");
    const file = path.join(tempDir, "listener.json");
    const records = [
      { exchange, routingKey: "a", payload: { n: 1 } },
      { exchange, routingKey: "b", payload: { n: 2 } },
    ];
    await writeFile(file, JSON.stringify(records));
    const queue = await boundQueue(exchange, "#");
    const output = captureStreams();

    const code = await replayMain([file], { AMQP_URL: config.amqpUrl }, output);

    expect(output.stderr.text).toBe("");
    expect(code).toBe(0);
    expect(output.stdout.text).toBe(
      `${file}: published 2 messages to 1 exchange: ${exchange}\n`,
    );
    const received = await drain(queue);
    expect(received.map((m) => m.fields.routingKey)).toEqual(["a", "b"]);
  });

  test("CLI goes on after nacks", async () => {
    const exchange = exchangeName("nacked");
    await channel.assertExchange(exchange, "topic", { durable: true });
    const { queue: full } = await channel.assertQueue("", {
      exclusive: true,
      arguments: { "x-max-length": 1, "x-overflow": "reject-publish" },
    });
    await channel.bindQueue(full, exchange, "#");
    const file = path.join(tempDir, "nacked.json");
    const records = ["a", "b", "c"].map((routingKey) => ({
      exchange,
      routingKey,
      payload: { routingKey },
    }));
    await writeFile(file, JSON.stringify(records));
    const output = captureStreams();

    const code = await replayMain([file], { AMQP_URL: config.amqpUrl }, output);

    expect(code).toBe(1);
    expect(output.stdout.text).toBe(
      `${file}: published 1 message to 1 exchange: ${exchange}; ` +
        `2 nacked by the broker\n`,
    );
    expect(output.stderr.text).toContain("The broker nacked 2 messages");
    expect(output.stderr.text).toContain("reject-publish");
    const { messageCount } = await channel.checkQueue(full);
    expect(messageCount).toBe(1);
  });
});

describe("replay CLI", () => {
  test("prints help", async () => {
    const output = captureStreams();

    const code = await replayMain(["--help"], {}, output);

    expect(code).toBe(0);
    expect(output.stdout.text).toMatch(/^Usage: npm run replay -- /);
    expect(output.stderr.text).toBe("");
  });

  test("rejects missing file list", async () => {
    const output = captureStreams();

    const code = await replayMain([], {}, output);

    expect(code).toBe(1);
    expect(output.stderr.text).toMatch(/Missing FILE/);
    expect(output.stdout.text).toBe("");
  });

  test("names unreadable file", async () => {
    const file = path.join(os.tmpdir(), `absent-${randomUUID()}.json`);
    const output = captureStreams();

    const code = await replayMain([HG_FILE, file], {}, output);

    expect(code).toBe(1);
    expect(output.stderr.text).toContain(`Recording ${file} not found`);
    // Files are all read before connecting, so nothing was published.
    expect(output.stdout.text).toBe("");
  });

  test("rejects invalid delay", async () => {
    const output = captureStreams();

    const code = await replayMain(["--delay-ms=-5", HG_FILE], {}, output);

    expect(code).toBe(1);
    expect(output.stderr.text).toMatch(/--delay-ms is "-5"/);
  });

  test("rejects delay over an hour", async () => {
    const output = captureStreams();

    const code = await replayMain(["--delay-ms=3600001", HG_FILE], {}, output);

    expect(code).toBe(1);
    expect(output.stderr.text).toMatch(/from 0 to 3600000/);
  });
});

function captureStreams() {
  const stream = () => ({
    text: "",
    write(chunk: string) {
      this.text += chunk;
      return true;
    },
  });
  return { stdout: stream(), stderr: stream() };
}
