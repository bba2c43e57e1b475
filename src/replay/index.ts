// Replays recorded Pulse messages into a RabbitMQ broker, for local
// development, demos and tests. Pulse tools record messages in three JSON
// shapes, and parseRecording turns each of them into one list of messages.
import { readFile } from "node:fs/promises";

import type { Channel } from "amqplib";

import type { AmqpConnection } from "../rabbitmq";

/** One message as it was published on Pulse. */
export interface RecordedMessage {
  exchange: string;
  routingKey: string;
  /** Extra routing keys, sent in the CC header so bindings on them match. */
  ccRoutingKeys: string[];
  /** Message body, published as JSON. */
  payload: unknown;
  /** Redelivered flag of the recorded delivery, kept only for reference. */
  redelivered?: boolean;
}

export interface PublishOptions {
  /**
   * Declares each missing exchange as a durable topic exchange (default
   * true). When false, every exchange must already exist.
   */
  declareExchanges?: boolean;
  /** Pause between two messages, in milliseconds (default 0). */
  delayMs?: number;
}

export interface PublishResult {
  /** Messages the broker confirmed. */
  published: number;
  /**
   * Messages the broker rejected with a nack, such as those for a full
   * queue with `overflow: reject-publish`. Publishing goes on after one.
   */
  nacked: number;
  /** Distinct exchanges of the messages, sorted. */
  exchanges: string[];
}

/** A recording that cannot be read, parsed or published. */
export class RecordingError extends Error {
  override name = "RecordingError";
}

const ACCEPTED_SHAPES =
  "an object keyed by task id whose values have exchange, routes and " +
  "payload; one object whose payload._meta has exchange and routing_key; " +
  "or an array of {exchange, routingKey, cc, payload} objects";

// Exchange names and routing keys are AMQP short strings.
const MAX_SHORT_STRING_BYTES = 255;

type JsonObject = Record<string, unknown>;

/**
 * Parses a recording in any of the three shapes. `source` names the
 * recording in error messages, usually its file path.
 */
export function parseRecording(
  json: unknown,
  source: string,
): RecordedMessage[] {
  let messages: RecordedMessage[];
  if (Array.isArray(json)) {
    messages = json.map((record, index) =>
      parseListenerMessage(record, `${source}: message [${index}]`),
    );
  } else if (isObject(json) && "payload" in json) {
    messages = [parseMetaMessage(json, source)];
  } else if (isObject(json) && Object.values(json).every(isObject)) {
    messages = Object.entries(json).map(([taskId, record]) =>
      parseTaskMessage(record as JsonObject, `${source}: message "${taskId}"`),
    );
  } else {
    throw new RecordingError(
      `${source} is not a recording of Pulse messages (found ` +
        `${describeKind(json)}); expected ${ACCEPTED_SHAPES}.`,
    );
  }
  if (messages.length === 0) {
    throw new RecordingError(
      `${source} contains no messages; expected ${ACCEPTED_SHAPES}.`,
    );
  }
  return messages;
}

/** Reads and parses a recording file. Errors name the file. */
export async function readRecording(file: string): Promise<RecordedMessage[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const message =
      (error as NodeJS.ErrnoException).code === "ENOENT"
        ? `Recording ${file} not found; check the path.`
        : `Reading recording ${file} failed: ${(error as Error).message}.`;
    throw new RecordingError(message, { cause: error });
  }

  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new RecordingError(
      `${file} is not valid JSON: ${(error as Error).message}.`,
      { cause: error },
    );
  }
  return parseRecording(json, file);
}

// Shape that a Pulse client passes to its listener:
// {exchange, routingKey, redelivered, cc, payload}.
function parseListenerMessage(record: unknown, label: string): RecordedMessage {
  if (!isObject(record)) {
    throw new RecordingError(
      `${label} is ${describeKind(record)}; expected an object with ` +
        `exchange, routingKey and payload.`,
    );
  }
  const message: RecordedMessage = {
    exchange: readExchange(record.exchange, "exchange", label),
    routingKey: readRoutingKey(record.routingKey, "routingKey", label),
    ccRoutingKeys: readCcKeys(record.cc, label),
    payload: readPayload(record.payload, label),
  };
  if (record.redelivered !== undefined) {
    if (typeof record.redelivered !== "boolean") {
      throw new RecordingError(
        `${label} has an invalid "redelivered" value ` +
          `${describeValue(record.redelivered)}; expected true or false.`,
      );
    }
    message.redelivered = record.redelivered;
  }
  return message;
}

// Shape of a message whose body names its own exchange and routing key in
// payload._meta, as the recorded Mercurial push notification does.
function parseMetaMessage(record: JsonObject, source: string): RecordedMessage {
  const payload = record.payload;
  const meta = isObject(payload) ? payload._meta : undefined;
  if (!isObject(meta)) {
    throw new RecordingError(
      `${source} has a payload without a _meta object, so it names no ` +
        `exchange or routing key; expected ${ACCEPTED_SHAPES}.`,
    );
  }
  return {
    exchange: readExchange(meta.exchange, "payload._meta.exchange", source),
    routingKey: readRoutingKey(
      meta.routing_key,
      "payload._meta.routing_key",
      source,
    ),
    ccRoutingKeys: [],
    payload,
  };
}

// Shape keyed by task id: `routes` is the routing key, or a list whose
// first entry is the routing key and whose other entries are CC keys.
function parseTaskMessage(record: JsonObject, label: string): RecordedMessage {
  const exchange = readExchange(record.exchange, "exchange", label);
  const routes =
    typeof record.routes === "string" ? [record.routes] : record.routes;
  if (
    !Array.isArray(routes) ||
    routes.length === 0 ||
    !routes.every((route) => typeof route === "string")
  ) {
    throw new RecordingError(
      `${label} has no routing key: "routes" is ` +
        `${describeValue(record.routes)}; expected a string or a non-empty ` +
        `array of strings.`,
    );
  }
  return {
    exchange,
    routingKey: readRoutingKey(routes[0], "routes[0]", label),
    ccRoutingKeys: routes.slice(1),
    payload: readPayload(record.payload, label),
  };
}

function readExchange(value: unknown, field: string, label: string): string {
  if (typeof value !== "string" || value === "") {
    throw new RecordingError(
      `${label} has no exchange: "${field}" is ${describeValue(value)}; ` +
        `expected a non-empty string.`,
    );
  }
  return checkShortString(value, field, label);
}

// An empty routing key is valid AMQP, so only a missing one is rejected.
function readRoutingKey(value: unknown, field: string, label: string): string {
  if (typeof value !== "string") {
    throw new RecordingError(
      `${label} has no routing key: "${field}" is ${describeValue(value)}; ` +
        `expected a string.`,
    );
  }
  return checkShortString(value, field, label);
}

function checkShortString(value: string, field: string, label: string) {
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes > MAX_SHORT_STRING_BYTES) {
    throw new RecordingError(
      `${label} has a "${field}" of ${bytes} bytes; AMQP allows at most ` +
        `${MAX_SHORT_STRING_BYTES}.`,
    );
  }
  return value;
}

function readCcKeys(value: unknown, label: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((key) => typeof key === "string")) {
    throw new RecordingError(
      `${label} has an invalid "cc" value ${describeValue(value)}; ` +
        `expected an array of routing keys.`,
    );
  }
  return value;
}

function readPayload(value: unknown, label: string): unknown {
  if (value === undefined) {
    throw new RecordingError(`${label} has no "payload".`);
  }
  return value;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describeKind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (isObject(value)) return "an object";
  return `a ${typeof value}`;
}

function describeValue(value: unknown): string {
  if (value === undefined) return "missing";
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * Publishes the messages in order as persistent JSON and waits for the
 * broker to confirm each one. Exchanges are prepared first, so a missing
 * or mismatched exchange fails before any message is sent.
 */
export async function publishRecording(
  connection: AmqpConnection,
  messages: RecordedMessage[],
  options: PublishOptions = {},
): Promise<PublishResult> {
  const delayMs = options.delayMs ?? 0;
  if (!Number.isFinite(delayMs) || delayMs < 0) {
    throw new RangeError(
      `delayMs is ${delayMs}; expected a number of milliseconds, 0 or more.`,
    );
  }
  const exchanges = [...new Set(messages.map((m) => m.exchange))].sort();
  await prepareExchanges(
    connection,
    exchanges,
    options.declareExchanges ?? true,
  );

  let nacked = 0;
  for (const [index, message] of messages.entries()) {
    if (index > 0 && delayMs > 0) await sleep(delayMs);
    if (!(await publishMessage(connection, message))) nacked += 1;
  }
  return { published: messages.length - nacked, nacked, exchanges };
}

/** The error amqplib 2.3 passes to a publish callback on a nack. */
function isNack(error: unknown): boolean {
  return error instanceof Error && error.message === "message nacked";
}

/** Publishes one message; returns false when the broker nacked it. */
async function publishMessage(
  connection: AmqpConnection,
  message: RecordedMessage,
): Promise<boolean> {
  const content = Buffer.from(JSON.stringify(message.payload), "utf8");
  const cc = message.ccRoutingKeys;
  try {
    await connection.publish(message.exchange, message.routingKey, content, {
      contentType: "application/json",
      persistent: true,
      ...(cc.length > 0 ? { CC: cc } : {}),
    });
    return true;
  } catch (error) {
    if (isNack(error)) return false;
    throw new RecordingError(
      `Publishing to exchange "${message.exchange}" with routing key ` +
        `"${message.routingKey}" failed: ${(error as Error).message}.`,
      { cause: error },
    );
  }
}

async function prepareExchanges(
  connection: AmqpConnection,
  exchanges: string[],
  declare: boolean,
): Promise<void> {
  if (exchanges.length === 0) return;
  const channel = await connection.createChannel();
  // A failed declaration makes the broker close the channel, which emits an
  // error event. The rejected call below already carries that error.
  channel.on("error", () => undefined);
  try {
    for (const exchange of exchanges) {
      await prepareExchange(channel, exchange, declare);
    }
  } finally {
    // Closing fails when the broker has already closed the channel, which
    // leaves nothing to release.
    await channel.close().catch(() => undefined);
  }
}

async function prepareExchange(
  channel: Channel,
  exchange: string,
  declare: boolean,
): Promise<void> {
  try {
    if (declare) {
      await channel.assertExchange(exchange, "topic", { durable: true });
    } else {
      await channel.checkExchange(exchange);
    }
  } catch (error) {
    throw describeExchangeError(exchange, error);
  }
}

function describeExchangeError(exchange: string, error: unknown): Error {
  const code = (error as { code?: unknown }).code;
  const reason = (error as Error).message;
  let message: string;
  if (code === 406) {
    message =
      `Exchange "${exchange}" already exists with another type or ` +
      `durability than a durable topic exchange (${reason}); delete it or ` +
      `replay into another exchange.`;
  } else if (code === 404) {
    message =
      `Exchange "${exchange}" not found; create it as a topic exchange or ` +
      `publish with declareExchanges enabled.`;
  } else {
    message = `Preparing exchange "${exchange}" failed: ${reason}.`;
  }
  return new RecordingError(message, { cause: error });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
