// SharedFrames under graphql-ws on a real WebSocket server, with a small
// schema whose event resolver counts its calls and a source the test feeds.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import {
  GraphQLInt,
  GraphQLNonNull,
  GraphQLObjectType,
  GraphQLSchema,
  GraphQLString,
} from "graphql";
import { useServer } from "graphql-ws/use/ws";
import WebSocket, { WebSocketServer } from "ws";

import {
  SharedFrames,
  sharedFrameHooks,
  SOCKET_HIGH_WATER_BYTES,
} from "../../src/server/shared-frames";

interface Tick {
  n: number;
  text: string;
}

/** A source of events that the test pushes into, one per subscriber. */
class FeedSource implements AsyncIterableIterator<Tick> {
  readonly queued: Tick[] = [];
  pulls = 0;
  returned = false;
  private waiting: ((result: IteratorResult<Tick>) => void) | null = null;
  private failWaiting: ((error: Error) => void) | null = null;

  push(tick: Tick): void {
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      this.failWaiting = null;
      this.pulls += 1;
      resolve({ done: false, value: tick });
    } else {
      this.queued.push(tick);
    }
  }

  fail(error: Error): void {
    this.failWaiting?.(error);
  }

  next(): Promise<IteratorResult<Tick>> {
    const tick = this.queued.shift();
    if (tick) {
      this.pulls += 1;
      return Promise.resolve({ done: false, value: tick });
    }
    if (this.returned) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failWaiting = reject;
    });
  }

  return(): Promise<IteratorResult<Tick>> {
    this.returned = true;
    this.waiting?.({ done: true, value: undefined });
    this.waiting = null;
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** Waits until `condition` holds, polling every 20 ms. */
async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const sources: FeedSource[] = [];
let resolverCalls = 0;

const TickType = new GraphQLObjectType<Tick>({
  name: "Tick",
  fields: {
    n: { type: new GraphQLNonNull(GraphQLInt) },
    text: {
      type: new GraphQLNonNull(GraphQLString),
      resolve: (tick: Tick) => {
        resolverCalls += 1;
        return tick.text;
      },
    },
  },
});

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({
    name: "Query",
    fields: { ok: { type: GraphQLInt, resolve: () => 1 } },
  }),
  subscription: new GraphQLObjectType({
    name: "Subscription",
    fields: {
      ticks: {
        type: new GraphQLNonNull(TickType),
        subscribe: () => {
          const source = new FeedSource();
          sources.push(source);
          return source;
        },
        resolve: (tick: unknown) => tick,
      },
      other: {
        type: GraphQLInt,
        subscribe: async function* () {
          yield 1;
        },
        resolve: (value: unknown) => value,
      },
    },
  }),
});

let server: Server;
let frames: SharedFrames;
let wsServer: WebSocketServer;
let url: string;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  server = createServer();
  wsServer = new WebSocketServer({ server, path: "/graphql" });
  frames = new SharedFrames((errors) => errors.map((e) => e.toJSON()));
  const hooks = sharedFrameHooks("ticks", frames);
  useServer(
    {
      schema,
      context: (ctx, id, payload) => {
        const context = {};
        hooks.register(context, ctx.extra, id, payload);
        return context;
      },
      subscribe: (args) => hooks.subscribe(args),
    },
    wsServer,
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
});

afterEach(() => {
  for (const socket of sockets.splice(0)) socket.terminate();
  sources.length = 0;
  resolverCalls = 0;
});

afterAll(async () => {
  wsServer.close();
  await new Promise((resolve) => server.close(resolve));
});

/** Opens a protocol-level client that keeps every message it receives. */
async function connect(): Promise<{ socket: WebSocket; received: any[] }> {
  const socket = new WebSocket(url, "graphql-transport-ws");
  sockets.push(socket);
  const received: any[] = [];
  socket.on("message", (data) => received.push(JSON.parse(String(data))));
  await new Promise((resolve) => socket.once("open", resolve));
  socket.send(JSON.stringify({ type: "connection_init" }));
  await until(() => received[0]?.type === "connection_ack");
  return { socket, received };
}

function subscribeTo(socket: WebSocket, id: string, query: string): void {
  socket.send(JSON.stringify({ id, type: "subscribe", payload: { query } }));
}

const TICKS = "subscription { ticks { n text } }";

describe("SharedFrames", () => {
  test("one execution per event for equal documents", async () => {
    const first = await connect();
    const second = await connect();
    subscribeTo(first.socket, "a", TICKS);
    subscribeTo(second.socket, "b", TICKS);
    await until(() => sources.length === 2);

    // The same event object reaches both, as the live bridge delivers it.
    const tick = { n: 1, text: "one" };
    for (const source of sources) source.push(tick);

    await until(() => second.received.length === 2);
    await until(() => first.received.length === 2);
    expect(first.received[1]).toEqual({
      id: "a",
      type: "next",
      payload: { data: { ticks: { n: 1, text: "one" } } },
    });
    expect(second.received[1]).toEqual({
      id: "b",
      type: "next",
      payload: { data: { ticks: { n: 1, text: "one" } } },
    });
    expect(resolverCalls).toBe(1);
  });

  test("different documents render separately", async () => {
    const client = await connect();
    subscribeTo(client.socket, "full", TICKS);
    subscribeTo(client.socket, "short", "subscription { ticks { n } }");
    await until(() => sources.length === 2);

    const tick = { n: 7, text: "seven" };
    for (const source of sources) source.push(tick);

    await until(() => client.received.length === 3);
    const byId = Object.fromEntries(
      client.received.slice(1).map((m) => [m.id, m.payload.data.ticks]),
    );
    expect(byId.full).toEqual({ n: 7, text: "seven" });
    expect(byId.short).toEqual({ n: 7 });
  });

  test("complete from the client returns the source", async () => {
    const client = await connect();
    subscribeTo(client.socket, "a", TICKS);
    await until(() => sources.length === 1);

    // Streams of the previous test's sockets may still be ending.
    await until(() => frames.groupCount() === 1);

    client.socket.send(JSON.stringify({ id: "a", type: "complete" }));

    await until(() => sources[0].returned === true);
    await until(() => frames.groupCount() === 0);
  });

  test("closing socket returns the source", async () => {
    const client = await connect();
    subscribeTo(client.socket, "a", TICKS);
    await until(() => sources.length === 1);
    const [serverSocket] = [...wsServer.clients];

    // The server starts the close, and an event arrives before the socket
    // has closed. The stream ends there, and graphql-ws no longer tracks it.
    serverSocket.close(1000, "test");
    sources[0].push({ n: 1, text: "late" });

    await until(() => sources[0].returned === true);
    await until(() => frames.groupCount() === 0);
  });

  test("source failure reaches the client as an error", async () => {
    const client = await connect();
    subscribeTo(client.socket, "a", TICKS);
    await until(() => sources.length === 1);

    sources[0].fail(new Error("queue deleted"));

    await until(() => client.received.length === 2);
    expect(client.received[1].type).toBe("error");
    expect(client.received[1].payload[0].message).toBe("queue deleted");
  });

  test("source end completes the subscription", async () => {
    const client = await connect();
    subscribeTo(client.socket, "a", TICKS);
    await until(() => sources.length === 1);
    sources[0].push({ n: 1, text: "last" });

    await sources[0].return();

    await until(() => client.received.length === 3);
    expect(client.received[1].type).toBe("next");
    expect(client.received[2]).toEqual({ id: "a", type: "complete" });
  });

  test("other subscriptions keep graphql-ws's path", async () => {
    const client = await connect();
    subscribeTo(client.socket, "o", "subscription { other }");

    await until(() => client.received.length === 3);
    expect(client.received[1]).toEqual({
      id: "o",
      type: "next",
      payload: { data: { other: 1 } },
    });
    expect(client.received[2]).toEqual({ id: "o", type: "complete" });
  });

  test("paused reader stops pulls, then resumes", async () => {
    const client = await connect();
    subscribeTo(client.socket, "a", TICKS);
    await until(() => sources.length === 1);
    const source = sources[0];
    client.socket.pause();

    // 64 KiB frames: the kernel's socket buffers take a few, then the
    // stream must stop pulling once its socket buffers reach the high-water mark.
    const text = "x".repeat(64 * 1024);
    const total = 400;
    for (let n = 0; n < total; n += 1) source.push({ n, text });
    await until(() => source.pulls > 0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(source.pulls).toBeLessThan(total);
    expect(source.queued.length).toBeGreaterThan(0);
    expect(SOCKET_HIGH_WATER_BYTES).toBeLessThan(total * text.length);

    client.socket.resume();

    await until(() => client.received.length === total + 1, 20_000);
    expect(source.pulls).toBe(total);
    const numbers = client.received.slice(1).map((m) => m.payload.data.ticks.n);
    expect(numbers).toEqual([...Array(total).keys()]);
  });
});
