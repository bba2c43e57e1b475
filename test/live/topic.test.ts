import { randomUUID } from "node:crypto";

import { connect, type ChannelModel, type ConfirmChannel } from "amqplib";

import {
  MAX_BINDING_PATTERN_BYTES,
  matchesTopic,
  validateBindingPattern,
} from "../../src/live";

const AMQP_URL = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";

// [pattern, routing key, whether a topic exchange routes the key]
const MATCH_CASES: Array<[string, string, boolean]> = [
  ["#", "", true],
  ["#", "a", true],
  ["#", "a.b.c", true],
  ["", "", true],
  ["", "a", false],
  ["*", "", false],
  ["*", "a", true],
  ["*", "a.b", false],
  ["a.#.b", "a.b", true],
  ["a.#.b", "a.x.y.b", true],
  ["a.#.b", "a.b.c", false],
  ["a.#", "a", true],
  ["#.a", "a", true],
  ["#.#", "", true],
  ["a.#.#.b", "a.b", true],
  ["#.*", "", false],
  ["#.*", "a", true],
  ["*.#.*", "a", false],
  ["*.#.*", "a.b", true],
  ["a.*.#", "a.b", true],
  ["a.*.c", "a.b.c", true],
  ["a.*.c", "a.c", false],
  ["#.b.#", "a.b.c", true],
  ["#.b.#", "a.c", false],
  ["a.b", "a.b", true],
  ["a.b", "a.B", false],
  ["a.b", "a.b.c", false],
  ["a.*", "a.", true],
  ["a.*", "a", false],
  ["*.*", ".", true],
  ["a..b", "a..b", true],
  ["a.b*", "a.b*", true],
  ["a.b*", "a.bc", false],
  ["é.*", "é.x", true],
];

describe("matchesTopic", () => {
  test.each(MATCH_CASES)("pattern %j, key %j: %s", (pattern, key, expected) => {
    expect(matchesTopic(pattern, key)).toBe(expected);
  });
});

describe("validateBindingPattern", () => {
  test.each(["", "#", "*", "a.*.#", "a..b", "é.#"])("accepts %j", (pattern) => {
    expect(validateBindingPattern(pattern)).toBeNull();
  });

  test.each([
    ["a.b*", "b*"],
    ["#x", "#x"],
    ["*#", "*#"],
    ["a.**", "**"],
    ["x#.y", "x#"],
  ])("rejects wildcard word in %j", (pattern, word) => {
    expect(validateBindingPattern(pattern)).toContain(`"${word}"`);
  });

  test("limits pattern to 255 bytes", () => {
    expect(validateBindingPattern("a".repeat(255))).toBeNull();
    const problem = validateBindingPattern("a".repeat(256));
    expect(problem).toContain("256 bytes");
    expect(problem).toContain(`${MAX_BINDING_PATTERN_BYTES} bytes`);
  });

  test("counts UTF-8 bytes, not characters", () => {
    expect(validateBindingPattern("é".repeat(127) + "a")).toBeNull();
    expect(validateBindingPattern("é".repeat(128))).toContain("256 bytes");
  });
});

// Checks the table above against the broker, so that matchesTopic is held
// to RabbitMQ's behaviour rather than to a reading of its documentation.
describe("matchesTopic against RabbitMQ", () => {
  const exchange = `exchange/test-live-topic-${randomUUID()}`;
  let model: ChannelModel;
  let channel: ConfirmChannel;
  const queues: string[] = [];

  beforeAll(async () => {
    model = await connect(AMQP_URL);
    channel = await model.createConfirmChannel();
    await channel.assertExchange(exchange, "topic", {
      durable: false,
      autoDelete: false,
    });
  });

  afterAll(async () => {
    for (const queue of queues) await channel.deleteQueue(queue);
    await channel.deleteExchange(exchange);
    await model.close();
  });

  test("routes every table case alike", async () => {
    const routed: Array<[string, string, boolean]> = [];
    for (const [pattern, key] of MATCH_CASES) {
      // One queue at a time, so a key reaches no other case's queue.
      const { queue } = await channel.assertQueue("", {
        exclusive: true,
        autoDelete: false,
        durable: false,
      });
      queues.push(queue);
      await channel.bindQueue(queue, exchange, pattern);
      channel.publish(exchange, key, Buffer.from("{}"));
      await channel.waitForConfirms();
      const message = await channel.get(queue, { noAck: true });
      routed.push([pattern, key, message !== false]);
      await channel.deleteQueue(queue);
      queues.pop();
    }
    expect(routed).toEqual(MATCH_CASES);
  });
});
