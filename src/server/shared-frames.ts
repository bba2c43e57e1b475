// Delivery of `messages` events to graphql-ws sockets, with the GraphQL
// work done once per event and document rather than once per subscriber.
//
// graphql-ws executes the subscription's document for every event and every
// subscriber, serializes the whole `next` message, and waits for each write
// to finish before it reads the next event. With many subscribers on one
// binding those steps are most of the gateway's CPU per event. Here every
// subscription with the same document, operation name and variables shares
// one rendering of each event: the event is executed and serialized once,
// and each subscriber's frame is its id around that JSON text.
import type { IncomingMessage } from "node:http";

import {
  createSourceEventStream,
  execute,
  getOperationAST,
  subscribe,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLError,
  type GraphQLFormattedError,
} from "graphql";
import type { WebSocket } from "ws";

/** Bytes queued on a socket above which its streams wait for a drain. */
export const SOCKET_HIGH_WATER_BYTES = 64 * 1024;

/** How often a stream waiting for a drain looks at the socket again. */
const DRAIN_RECHECK_MS = 1000;

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/** Destination of one subscription's frames. */
export interface FrameTarget {
  /** The graphql-ws subscription id. */
  id: string;
  socket: WebSocket;
  /** The upgrade request; its socket is the TCP socket under `socket`. */
  request: IncomingMessage;
  /** Equal for subscriptions whose events render to the same JSON. */
  renderKey: string;
}

type FormatErrors = (errors: readonly GraphQLError[]) => GraphQLFormattedError[];

interface RenderGroup {
  streams: number;
  /** JSON of the `next` payload, per event object. */
  payloads: WeakMap<object, string>;
}

/** Returns the key under which subscriptions share their renderings. */
export function renderKeyOf(payload: {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
}): string {
  return JSON.stringify([
    payload.query,
    payload.operationName ?? null,
    payload.variables ?? null,
  ]);
}

/** True when the operation is a subscription to the given root field. */
export function isSubscriptionTo(args: ExecutionArgs, field: string): boolean {
  const operation = getOperationAST(args.document, args.operationName);
  if (operation?.operation !== "subscription") return false;
  const selections = operation.selectionSet.selections;
  return (
    selections.length === 1 &&
    selections[0].kind === "Field" &&
    selections[0].name.value === field
  );
}

/** graphql-ws's `extra` for sockets served by `graphql-ws/use/ws`. */
export interface SocketAndRequest {
  socket: WebSocket;
  request: IncomingMessage;
}

/**
 * Returns graphql-ws hooks that send subscriptions to `field` through
 * `frames` and leave every other operation to graphql-js's `subscribe`.
 * `register` must be called from graphql-ws's `context` option with the
 * context object it returns.
 */
export function sharedFrameHooks(field: string, frames: SharedFrames) {
  const targets = new WeakMap<object, FrameTarget>();
  return {
    register(
      context: object,
      extra: SocketAndRequest,
      id: string,
      payload: Parameters<typeof renderKeyOf>[0],
    ): void {
      targets.set(context, {
        id,
        socket: extra.socket,
        request: extra.request,
        renderKey: renderKeyOf(payload),
      });
    },
    subscribe(args: ExecutionArgs) {
      const target = targets.get(args.contextValue as object);
      if (target && isSubscriptionTo(args, field)) {
        return frames.subscribe(args, target);
      }
      return subscribe(args);
    },
  };
}

/**
 * Subscribes streams that write their frames to the socket themselves.
 * Only for fields whose event resolvers depend on the event alone, never on
 * the context or the viewer, since one subscriber's execution serves all.
 */
export class SharedFrames {
  private readonly groups = new Map<string, RenderGroup>();

  constructor(private readonly formatErrors: FormatErrors) {}

  /**
   * Creates the source stream as graphql-js's `subscribe` does and returns
   * an iterator for graphql-ws that yields nothing: it ends when the stream
   * ends, rejects when the stream fails, and stops the stream on `return`.
   * Returns the result with errors if the subscription cannot start.
   */
  async subscribe(
    args: ExecutionArgs,
    target: FrameTarget,
  ): Promise<SocketStream | ExecutionResult> {
    const source = await createSourceEventStream(args);
    if (!isAsyncIterable(source)) return source;
    const group = this.join(target.renderKey);
    const render = (event: object): string => {
      let json = group.payloads.get(event);
      if (json === undefined) {
        json = this.render(args, event);
        group.payloads.set(event, json);
      }
      return json;
    };
    const events = source[Symbol.asyncIterator]();
    return new SocketStream(events, target, render, () =>
      this.leave(target.renderKey),
    );
  }

  /** Returns the number of render groups, each with at least one stream. */
  groupCount(): number {
    return this.groups.size;
  }

  private render(args: ExecutionArgs, event: object): string {
    const result = execute({ ...args, rootValue: event });
    if (isPromiseLike(result)) {
      // The shared fields resolve synchronously; a promise here means a
      // resolver changed and this module no longer fits it.
      throw new Error(
        "A shared subscription event resolved asynchronously; its fields " +
          "must resolve synchronously.",
      );
    }
    const payload = result.errors
      ? { ...result, errors: this.formatErrors(result.errors) }
      : result;
    return JSON.stringify(payload);
  }

  private join(key: string): RenderGroup {
    let group = this.groups.get(key);
    if (!group) {
      group = { streams: 0, payloads: new WeakMap() };
      this.groups.set(key, group);
    }
    group.streams += 1;
    return group;
  }

  private leave(key: string): void {
    const group = this.groups.get(key);
    if (!group) return;
    group.streams -= 1;
    if (group.streams === 0) this.groups.delete(key);
  }
}

/**
 * Reads one subscription's source and sends each event as a graphql-ws
 * `next` frame. Writes made in one tick go out in one system call, because
 * the TCP socket stays corked until the tick ends. While more than
 * SOCKET_HIGH_WATER_BYTES wait on the socket, the stream stops reading, so
 * a slow client's backlog stays in the source's bounded buffer.
 */
export class SocketStream implements AsyncIterableIterator<ExecutionResult> {
  private stopped = false;
  private corked = false;
  private wakeDrainWaiter: (() => void) | null = null;
  private readonly finished: Promise<void>;
  private readonly framePrefix: string;

  constructor(
    private readonly source: AsyncIterator<unknown>,
    private readonly target: FrameTarget,
    private readonly render: (event: object) => string,
    private readonly onFinish: () => void,
  ) {
    this.framePrefix = `{"id":${JSON.stringify(target.id)},"type":"next","payload":`;
    this.finished = this.pump();
    // next() hands a failure to graphql-ws; this only keeps Node from
    // calling it unhandled before graphql-ws starts reading.
    this.finished.catch(() => undefined);
  }

  async next(): Promise<IteratorResult<ExecutionResult>> {
    await this.finished;
    return DONE;
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.stop();
    await this.source.return?.();
    return DONE;
  }

  async throw(error?: unknown): Promise<IteratorResult<ExecutionResult>> {
    await this.return();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private stop(): void {
    this.stopped = true;
    this.wakeDrainWaiter?.();
  }

  private async pump(): Promise<void> {
    const { socket } = this.target;
    // True once the source has ended or failed by itself. Otherwise the
    // pump returns it on the way out, because graphql-ws does not return a
    // stream that already ended, and the bridge subscriber would remain.
    let sourceEnded = false;
    try {
      while (!this.stopped) {
        if (socket.bufferedAmount > SOCKET_HIGH_WATER_BYTES) {
          await this.waitForDrain();
          continue;
        }
        let result: IteratorResult<unknown>;
        try {
          result = await this.source.next();
        } catch (error) {
          sourceEnded = true;
          throw error;
        }
        if (result.done) {
          sourceEnded = true;
          return;
        }
        if (this.stopped) return;
        if (socket.readyState !== socket.OPEN) {
          this.stop();
          return;
        }
        const event = result.value;
        if (typeof event !== "object" || event === null) {
          throw new TypeError("A shared subscription emitted a non-object event.");
        }
        this.send(this.render(event));
      }
    } finally {
      if (!sourceEnded) await this.source.return?.();
      this.onFinish();
    }
  }

  private send(payloadJson: string): void {
    const tcp = this.target.request.socket;
    if (!this.corked) {
      this.corked = true;
      tcp.cork();
      process.nextTick(() => {
        this.corked = false;
        tcp.uncork();
      });
    }
    this.target.socket.send(this.framePrefix + payloadJson + "}");
  }

  private waitForDrain(): Promise<void> {
    const tcp = this.target.request.socket;
    return new Promise((resolve) => {
      const timer = setTimeout(done, DRAIN_RECHECK_MS);
      function done() {
        clearTimeout(timer);
        tcp.off("drain", done);
        tcp.off("close", done);
        resolve();
      }
      tcp.once("drain", done);
      tcp.once("close", done);
      this.wakeDrainWaiter = () => {
        this.wakeDrainWaiter = null;
        done();
      };
    });
  }
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function"
  );
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function"
  );
}
