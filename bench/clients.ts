// graphql-ws clients of the benchmark: sockets that carry one or many
// `messages` subscriptions, and sinks that count what each subscription
// receives.
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";

import { asBenchPayload, nowUs } from "./payload";

/** The same document for both servers; the fields exist on both. */
export const MESSAGES_SUBSCRIPTION = `subscription ($exchange: String!, $pattern: String!) {
  messages(exchange: $exchange, routingKeyPattern: $pattern) {
    exchange routingKey payload
  }
}`;

const CONNECT_TIMEOUT_MS = 15_000;
const CLOSE_TIMEOUT_MS = 5_000;

/** Counts and latencies of one subscription since its last reset. */
export class Sink {
  received = 0;
  probes = 0;
  /** Events whose payload is no benchmark message, such as notices. */
  others = 0;
  outOfOrder = 0;
  firstAtUs = 0;
  lastAtUs = 0;
  lastSeq = -1;
  completed = false;
  readonly errors: string[] = [];
  /** Latency of each message in microseconds, when recording is on. */
  latenciesUs: number[] | null = null;

  /** Clears the counts; errors are kept, since they end the subscription. */
  reset(recordLatency: boolean): void {
    this.received = 0;
    this.probes = 0;
    this.others = 0;
    this.outOfOrder = 0;
    this.firstAtUs = 0;
    this.lastAtUs = 0;
    this.lastSeq = -1;
    this.latenciesUs = recordLatency ? [] : null;
  }

  handle(payload: unknown): void {
    const atUs = nowUs();
    const body = asBenchPayload(payload);
    if (!body) {
      this.others += 1;
      return;
    }
    if (body.probe) {
      this.probes += 1;
      return;
    }
    if (this.received === 0) this.firstAtUs = atUs;
    this.lastAtUs = atUs;
    this.received += 1;
    if (body.seq <= this.lastSeq) this.outOfOrder += 1;
    this.lastSeq = body.seq;
    this.latenciesUs?.push(atUs - body.sentUs);
  }

  fail(error: unknown): void {
    if (this.errors.length < 5) this.errors.push(describe(error));
  }
}

/** One WebSocket to a server, carrying any number of subscriptions. */
export class SocketClient {
  /** Close code, once the socket has closed. */
  closeCode: number | null = null;
  private constructor(
    private readonly client: Client,
    private readonly socket: WebSocket,
    private readonly closed: Promise<void>,
  ) {}

  /** Connects and completes the graphql-ws handshake. */
  static async open(url: string, token: string | null): Promise<SocketClient> {
    let onConnected: (socket: WebSocket) => void = () => undefined;
    let onFailed: (error: Error) => void = () => undefined;
    let onClosed: () => void = () => undefined;
    const connected = new Promise<WebSocket>((resolve, reject) => {
      onConnected = resolve;
      onFailed = reject;
    });
    const closed = new Promise<void>((resolve) => {
      onClosed = resolve;
    });
    let instance: SocketClient | null = null;
    const client = createClient({
      url: url.replace(/^http/, "ws"),
      webSocketImpl: WebSocket,
      connectionParams: token ? { authorization: `Bearer ${token}` } : {},
      lazy: false,
      retryAttempts: 0,
      onNonLazyError: () => undefined,
      on: {
        connected: (socket) => onConnected(socket as WebSocket),
        closed: (event) => {
          const code = (event as { code?: number }).code ?? -1;
          if (instance) instance.closeCode = code;
          onFailed(new Error(`socket closed with code ${code} while connecting`));
          onClosed();
        },
        error: (error) => onFailed(new Error(describe(error))),
      },
    });
    const timer = setTimeout(
      () => onFailed(new Error(`no connection after ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    try {
      const socket = await connected;
      instance = new SocketClient(client, socket, closed);
      return instance;
    } catch (error) {
      void client.dispose();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Subscribes to a binding; returns the function that unsubscribes. */
  subscribe(exchange: string, pattern: string, sink: Sink): () => void {
    return this.client.subscribe(
      { query: MESSAGES_SUBSCRIPTION, variables: { exchange, pattern } },
      {
        next: (result) => {
          if (result.errors) sink.fail(result.errors);
          const data = result.data as
            | { messages?: { payload?: unknown } }
            | null
            | undefined;
          if (data?.messages) sink.handle(data.messages.payload);
        },
        error: (error) => sink.fail(error),
        complete: () => {
          sink.completed = true;
        },
      },
    );
  }

  /** Stops reading the socket, so the server's writes back up. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  async close(): Promise<void> {
    await this.client.dispose();
    await Promise.race([
      this.closed,
      new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS)),
    ]);
  }
}

/** Opens `count` sockets, a few at a time. */
export async function openSockets(
  url: string,
  token: string | null,
  count: number,
  parallel = 20,
): Promise<SocketClient[]> {
  const sockets: SocketClient[] = [];
  try {
    for (let start = 0; start < count; start += parallel) {
      const batch = Math.min(parallel, count - start);
      const opened = await Promise.all(
        Array.from({ length: batch }, () => SocketClient.open(url, token)),
      );
      sockets.push(...opened);
    }
  } catch (error) {
    await closeSockets(sockets);
    throw error;
  }
  return sockets;
}

export async function closeSockets(sockets: SocketClient[]): Promise<void> {
  await Promise.all(sockets.map((socket) => socket.close()));
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (Array.isArray(error)) return error.map(describe).join("; ");
  if (typeof error === "object" && error !== null) {
    const record = error as { message?: unknown; code?: unknown; reason?: unknown };
    if (typeof record.message === "string") return record.message;
    if (record.code !== undefined) {
      return `socket closed with code ${String(record.code)} ${String(record.reason ?? "")}`.trim();
    }
    return JSON.stringify(error);
  }
  return String(error);
}
