// Payload filters nested deeper than MAX_INPUT_DEPTH get a BAD_USER_INPUT
// error for their operation, over HTTP and graphql-ws, and the socket
// stays open.
import WebSocket from "ws";

import { findDeepVariable, MAX_INPUT_DEPTH } from "../../src/schema";
import type { Gateway } from "../../src/server";
import {
  Cleanup,
  declareTestExchange,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "../harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let token: string;
const exchange = `exchange/${uniqueName("test-depth")}/v1`;

const SUBSCRIPTION = `subscription ($filter: [PayloadCondition!]) {
  messages(bindings: [{ exchange: "${exchange}", routingKeyPattern: "#" }],
           filter: $filter) { routingKey }
}`;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  await declareTestExchange(gateway, cleanup, exchange);
  token = await tokenFor(uniqueEmail());
});

afterAll(() => cleanup.run());

/**
 * Returns JSON text of an object nested `levels` deep. JSON.stringify
 * itself overflows the call stack on such values.
 */
function nestedJson(levels: number): string {
  return '{"a":'.repeat(levels) + "1" + "}".repeat(levels);
}

/** Returns the JSON text of a subscribe payload whose filter nests `levels` deep. */
function filterPayload(levels: number): string {
  return (
    `{"query": ${JSON.stringify(SUBSCRIPTION)}, ` +
    `"variables": {"filter": [{"path": "a", "equals": ${nestedJson(levels)}}]}}`
  );
}

interface Frame {
  type: string;
  id?: string;
  payload?: { message: string; extensions?: Record<string, any> }[];
}

/** Opens a signed-in graphql-transport-ws socket that keeps every frame. */
async function openSocket(): Promise<{
  socket: WebSocket;
  next: () => Promise<Frame>;
}> {
  const socket = new WebSocket(gateway.url.replace(/^http/, "ws"), "graphql-transport-ws");
  const frames: Frame[] = [];
  const waiters: ((frame: Frame) => void)[] = [];
  socket.on("message", (data) => {
    const frame = JSON.parse(String(data)) as Frame;
    const waiter = waiters.shift();
    if (waiter) waiter(frame);
    else frames.push(frame);
  });
  // A closed socket shows up as a frame, so a test fails at once.
  socket.on("close", (code, reason) => {
    const frame = { type: `closed ${code} ${String(reason)}` };
    const waiter = waiters.shift();
    if (waiter) waiter(frame);
    else frames.push(frame);
  });
  const next = () =>
    new Promise<Frame>((resolve) => {
      const queued = frames.shift();
      if (queued) resolve(queued);
      else waiters.push(resolve);
    });
  await new Promise((resolve) => socket.once("open", resolve));
  cleanup.add(() => socket.terminate());
  socket.send(
    JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }),
  );
  expect((await next()).type).toBe("connection_ack");
  return { socket, next };
}

test("graphql-ws deep filter errors, socket open", async () => {
  const { socket, next } = await openSocket();
  socket.send(`{"id": "deep", "type": "subscribe", "payload": ${filterPayload(5000)}}`);
  const error = await next();
  expect(error.type).toBe("error");
  expect(error.id).toBe("deep");
  expect(error.payload?.[0].extensions?.code).toBe("BAD_USER_INPUT");
  expect(error.payload?.[0].message).toContain(`more than ${MAX_INPUT_DEPTH} levels`);
  expect(error.payload?.[0].message).toContain('"$filter"');

  socket.send(JSON.stringify({ type: "ping" }));
  expect((await next()).type).toBe("pong");
  expect(socket.readyState).toBe(WebSocket.OPEN);
});

test.each([
  ["syntax error", "subscription { guardianEvents {"],
  ["deep literal", `subscription { messages(exchange: "${exchange}", filter: [{path: "a", equals: ${"{a:".repeat(5000)}1${"}".repeat(5000)}}]) { routingKey } }`],
])("graphql-ws %s fails one operation", async (_case, query) => {
  const { socket, next } = await openSocket();
  socket.send(JSON.stringify({ id: "bad", type: "subscribe", payload: { query } }));
  const error = await next();
  expect(error.type).toBe("error");
  expect(error.id).toBe("bad");
  expect(error.payload?.[0].extensions?.code).toBe("GRAPHQL_PARSE_FAILED");

  socket.send(JSON.stringify({ type: "ping" }));
  expect((await next()).type).toBe("pong");
});

test("graphql-ws filter at the limit runs", async () => {
  const { socket, next } = await openSocket();
  // The variable is a list of objects, so the equals value may add
  // MAX_INPUT_DEPTH - 2 levels of its own.
  socket.send(
    `{"id": "edge", "type": "subscribe", "payload": ${filterPayload(MAX_INPUT_DEPTH - 2)}}`,
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  socket.send(JSON.stringify({ type: "ping" }));
  expect((await next()).type).toBe("pong");
  expect(gateway.live.stats().subscribers).toBeGreaterThanOrEqual(1);
});

test("HTTP deep filter gets BAD_USER_INPUT", async () => {
  const response = await fetch(gateway.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: filterPayload(5000),
  });
  const body = (await response.json()) as { errors: Frame["payload"] };
  expect(response.status).toBe(400);
  expect(body.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
  expect(body.errors?.[0].message).toContain(`more than ${MAX_INPUT_DEPTH} levels`);
});

describe("findDeepVariable", () => {
  const nested = (levels: number): unknown => {
    let value: unknown = 1;
    for (let i = 0; i < levels; i += 1) value = i % 2 ? [value] : { a: value };
    return value;
  };

  test("depth at the limit passes", () => {
    expect(findDeepVariable({ v: nested(MAX_INPUT_DEPTH) })).toBeNull();
  });

  test("one level more is reported", () => {
    const path = findDeepVariable({ v: nested(MAX_INPUT_DEPTH + 1) });
    expect(path).toMatch(/^\$v(\.a|\[0\])+$/);
  });

  test("scalars and null pass", () => {
    expect(findDeepVariable({ a: null, b: "x", c: 3 })).toBeNull();
  });
});
