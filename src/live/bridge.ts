import { BadInputError } from "../errors";
import type { Logger } from "../logger";
import type { PayloadFormat } from "./payload";
import { validateBindingPattern } from "./topic";

/**
 * Notice about a subscriber's stream rather than a message. LOST follows a
 * buffer overflow, and `lost` counts the dropped messages. GAP follows a
 * broker reconnection, during which messages may have been missed.
 */
export interface LiveNotice {
  kind: "LOST" | "GAP";
  lost: number;
}

/** One message delivered to a live binding, or a notice about the stream. */
export interface LiveMessage {
  exchange: string;
  routingKey: string;
  /** Extra routing keys from the publisher's `CC` header. */
  ccRoutingKeys: string[];
  /** Parsed JSON, the UTF-8 text, or base64 of a body that is not UTF-8. */
  payload: unknown;
  /** Encoding of `payload`, or null on notices. */
  payloadFormat: PayloadFormat | null;
  redelivered: boolean;
  /** The publisher's AMQP timestamp, or when the gateway received it. */
  timestamp?: Date;
  /** Set on notices only; their routingKey is "" and payload null. */
  notice?: LiveNotice;
  /** The binding it was delivered through, set by the bridge. */
  binding?: BindingKey;
}

export interface BindingKey {
  exchange: string;
  routingKeyPattern: string;
}

export interface SourceHandle {
  close(): Promise<void>;
}

export interface LiveSource {
  /**
   * Declares, binds and consumes; calls onMessage per delivery and
   * onEnd(error) if the broker ends the consumer (queue deleted, exchange
   * deleted, channel error). When onMessage returns a promise, the delivery
   * is acknowledged only once it settles. Rejects with NotFoundError if the
   * exchange does not exist.
   */
  open(
    key: BindingKey,
    onMessage: (message: LiveMessage) => Promise<void> | void,
    onEnd: (error: Error) => void,
    onGap?: () => void,
  ): Promise<SourceHandle>;
}

export interface LiveBridgeOptions {
  source: LiveSource;
  /** Messages buffered per subscriber before the oldest are dropped. */
  bufferSize: number;
  /**
   * How long a subscriber's buffer may stay full, dropping messages,
   * before the subscription ends with SlowSubscriberError (60000).
   */
  maxBehindMs?: number;
  logger: Logger;
}

export interface SubscribeOptions {
  /** Aborting rejects a pending subscribe with the signal's reason. */
  signal?: AbortSignal;
  /** Called when the subscription ends for staying behind too long. */
  onSlow?: (error: SlowSubscriberError) => void;
}

export interface LiveBridgeStats {
  /** Bindings open or opening, one broker consumer each. */
  bindings: number;
  subscribers: number;
  /** Messages dropped from full subscriber buffers since the bridge began. */
  lost: number;
}

export interface SubscriptionStats {
  buffered: number;
  /** Messages dropped because this subscriber's buffer was full. */
  lost: number;
}

/** Stream of one subscriber's messages. */
export interface LiveSubscription extends AsyncIterableIterator<LiveMessage> {
  return(): Promise<IteratorResult<LiveMessage>>;
  stats(): SubscriptionStats;
}

const MAX_EXCHANGE_NAME_BYTES = 255;

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

interface Waiter {
  resolve(result: IteratorResult<LiveMessage>): void;
  reject(error: Error): void;
}

/** Ends a subscription whose reader stayed behind for too long. */
export class SlowSubscriberError extends Error {
  override name = "SlowSubscriberError";

  /** Fix for the client, at the end of the message. */
  static readonly action = "Read faster, narrow the binding or add a filter.";

  constructor(
    readonly key: BindingKey,
    readonly behindMs: number,
  ) {
    // The binding comes last, so that a close reason cut to 123 bytes
    // keeps the time and the setting.
    super(
      `Fell behind for ${behindMs} ms, over LIVE_MAX_BEHIND_MS, and was ` +
        `disconnected, reading ${key.exchange} with pattern ` +
        `"${key.routingKeyPattern}". ${SlowSubscriberError.action}`,
    );
  }
}

/**
 * Bounded queue of messages read through the async iterator protocol.
 * `push` never waits for a slow reader: when full, a new message evicts the
 * oldest one, unless the bridge asks it to overflow (see `deliver`).
 */
class Subscriber implements LiveSubscription {
  private readonly buffer: LiveMessage[] = [];
  private readonly waiters: Waiter[] = [];
  private failure: Error | null = null;
  private ended = false;
  private left = false;
  private lost = 0;
  /** Messages dropped since the last LOST notice was read. */
  private unreported = 0;
  /** When the buffer became full, while it has not drained to half. */
  private behindSince: number | null = null;

  constructor(
    private readonly key: BindingKey,
    private readonly capacity: number,
    private readonly maxBehindMs: number,
    private readonly onDrop: () => void,
    private readonly onLeave: () => void,
    private readonly onRead: () => void,
    private readonly onSlow?: (error: SlowSubscriberError) => void,
  ) {}

  /** True while the buffer contains `capacity` messages or more. */
  get full(): boolean {
    return this.buffer.length >= this.capacity;
  }

  get finished(): boolean {
    return this.ended;
  }

  /**
   * Adds a message. A full buffer drops its oldest message unless
   * `overflow` is set, which the bridge does only while every subscriber of
   * the binding is full and the broker's acknowledgement is held back.
   */
  push(message: LiveMessage, overflow = false): void {
    if (this.ended) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve({ done: false, value: message });
      return;
    }
    if (this.full && !overflow) this.drop();
    this.buffer.push(message);
    if (this.full) this.behindSince ??= Date.now();
    this.checkBehind(Date.now());
  }

  private drop(): void {
    this.buffer.shift();
    this.lost += 1;
    this.unreported += 1;
    this.onDrop();
  }

  /** Ends the subscription once it has stayed full for too long. */
  checkBehind(now: number): void {
    if (this.behindSince === null || this.ended) return;
    const behindMs = now - this.behindSince;
    if (behindMs <= this.maxBehindMs) return;
    this.buffer.length = 0;
    this.unreported = 0;
    const error = new SlowSubscriberError(this.key, behindMs);
    this.end(error);
    this.leaveSource();
    this.onSlow?.(error);
  }

  /** Queues a GAP notice behind the messages already buffered. */
  pushGap(): void {
    this.push(notice(this.key, "GAP", 0));
  }

  /**
   * Ends the stream. Buffered messages are still read first, then `next()`
   * rejects once with `error` if one is given, then reports done.
   */
  end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error ?? null;
    // Waiters exist only while the buffer is empty.
    for (const waiter of this.waiters.splice(0)) {
      if (this.failure) {
        waiter.reject(this.failure);
        this.failure = null;
      } else {
        waiter.resolve(DONE);
      }
    }
  }

  next(): Promise<IteratorResult<LiveMessage>> {
    // The dropped messages were the oldest, so the notice comes first.
    if (this.unreported > 0 && !this.ended) {
      const lost = this.unreported;
      this.unreported = 0;
      return Promise.resolve({ done: false, value: notice(this.key, "LOST", lost) });
    }
    const message = this.buffer.shift();
    // A reader that drains half its buffer has caught up; one that reads a
    // message now and then while the buffer stays full has not.
    if (this.buffer.length <= this.capacity / 2) this.behindSince = null;
    if (message !== undefined) this.onRead();
    if (message !== undefined) {
      return Promise.resolve({ done: false, value: message });
    }
    if (this.failure) {
      const failure = this.failure;
      this.failure = null;
      return Promise.reject(failure);
    }
    if (this.ended) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
    });
  }

  return(): Promise<IteratorResult<LiveMessage>> {
    this.leave();
    return Promise.resolve(DONE);
  }

  throw(error?: unknown): Promise<IteratorResult<LiveMessage>> {
    this.leave();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): LiveSubscription {
    return this;
  }

  stats(): SubscriptionStats {
    return { buffered: this.buffer.length, lost: this.lost };
  }

  private leave(): void {
    this.buffer.length = 0;
    this.failure = null;
    this.end();
    this.leaveSource();
  }

  private leaveSource(): void {
    if (this.left) return;
    this.left = true;
    this.onLeave();
  }
}

/** One shared broker consumer and the subscribers reading from it. */
interface Binding {
  id: string;
  key: BindingKey;
  subscribers: Set<Subscriber>;
  /** Settles when `open` has finished; rejects with the open error. */
  ready: Promise<void>;
  handle: SourceHandle | null;
  /** Set once the source ended the binding or the last subscriber left. */
  retired: boolean;
  /** Held acknowledgements, released when a subscriber has room again. */
  roomWaiters: (() => void)[];
}

/**
 * Fans messages from one source consumer per (exchange, pattern) out to
 * every subscriber of that pair. The first subscriber opens the consumer and
 * the last one to leave closes it.
 */
export class LiveBridge {
  private readonly bindings = new Map<string, Binding>();
  private readonly pending = new Set<Promise<void>>();
  private readonly source: LiveSource;
  private readonly bufferSize: number;
  private readonly maxBehindMs: number;
  private readonly behindTimer: NodeJS.Timeout;
  private readonly logger: Logger;
  private lost = 0;
  private closed = false;

  constructor(options: LiveBridgeOptions) {
    if (!Number.isInteger(options.bufferSize) || options.bufferSize < 1) {
      throw new RangeError(
        `LiveBridge bufferSize is ${options.bufferSize}; expected an ` +
          `integer of at least 1.`,
      );
    }
    this.source = options.source;
    this.bufferSize = options.bufferSize;
    this.maxBehindMs = options.maxBehindMs ?? 60_000;
    // A paused reader gets no new messages once the backlog stays in the
    // broker, so the time limit is checked on a timer, not on delivery.
    this.behindTimer = setInterval(
      () => this.checkBehind(),
      Math.max(10, Math.min(this.maxBehindMs / 2, 1000)),
    );
    this.behindTimer.unref();
    this.logger = options.logger;
  }

  /**
   * Subscribes to a binding and resolves once its consumer is live, so a
   * message published after this resolves reaches the subscriber. Rejects
   * with BadInputError for an invalid key and with the source's error if the
   * binding cannot be opened.
   */
  async subscribe(
    key: BindingKey,
    options: SubscribeOptions = {},
  ): Promise<LiveSubscription> {
    checkBindingKey(key);
    if (this.closed) throw new Error("LiveBridge is closed.");
    options.signal?.throwIfAborted();

    const binding = this.bindingFor(key);
    const subscriber: Subscriber = new Subscriber(
      binding.key,
      this.bufferSize,
      this.maxBehindMs,
      () => {
        this.lost += 1;
      },
      () => this.leave(binding, subscriber),
      () => this.releaseIfRoom(binding),
      options.onSlow,
    );
    binding.subscribers.add(subscriber);
    try {
      await abortable(binding.ready, options.signal);
    } catch (error) {
      await subscriber.return();
      throw error;
    }
    if (this.closed && subscriber.finished) {
      throw new Error("LiveBridge closed while the subscription was opening.");
    }
    return subscriber;
  }

  stats(): LiveBridgeStats {
    let subscribers = 0;
    for (const binding of this.bindings.values()) {
      subscribers += binding.subscribers.size;
    }
    return { bindings: this.bindings.size, subscribers, lost: this.lost };
  }

  /**
   * Ends every subscription (each iterator reports done after its buffered
   * messages) and closes every source consumer, including ones still opening.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.behindTimer);
    const bindings = [...this.bindings.values()];
    this.bindings.clear();
    for (const binding of bindings) {
      binding.retired = true;
      for (const subscriber of binding.subscribers) subscriber.end();
      binding.subscribers.clear();
      if (binding.handle) this.closeHandle(binding);
    }
    while (this.pending.size > 0) {
      await Promise.allSettled([...this.pending]);
    }
  }

  private bindingFor(key: BindingKey): Binding {
    const id = JSON.stringify([key.exchange, key.routingKeyPattern]);
    const existing = this.bindings.get(id);
    if (existing) return existing;

    const binding: Binding = {
      id,
      key: { exchange: key.exchange, routingKeyPattern: key.routingKeyPattern },
      subscribers: new Set(),
      ready: Promise.resolve(),
      handle: null,
      retired: false,
      roomWaiters: [],
    };
    this.bindings.set(id, binding);
    binding.ready = this.open(binding);
    // Every waiter receives the open error, and one that aborted needs none.
    this.track(binding.ready.catch(() => undefined));
    return binding;
  }

  private async open(binding: Binding): Promise<void> {
    const { exchange, routingKeyPattern } = binding.key;
    let handle: SourceHandle;
    try {
      handle = await this.source.open(
        binding.key,
        (message) => this.deliver(binding, message),
        (error) => this.endBinding(binding, error),
        () => this.reportGap(binding),
      );
    } catch (error) {
      this.forget(binding);
      this.logger.debug(
        { exchange, routingKeyPattern, err: error },
        "opening a live binding failed",
      );
      throw error;
    }
    binding.handle = handle;
    this.logger.info({ exchange, routingKeyPattern }, "live binding opened");
    // Every subscriber left, or the source ended, while open was pending.
    if (binding.retired) this.closeHandle(binding);
  }

  /**
   * Hands a message to every subscriber. While at least one has room, a
   * full one drops its oldest message, so a slow reader never delays a fast
   * one. When every one is full, the message is kept and the returned
   * promise delays the source's acknowledgement until one has room. The
   * backlog then waits in the broker, and at most the prefetch count waits
   * here.
   */
  private deliver(binding: Binding, message: LiveMessage): Promise<void> | void {
    // The source makes a new object per delivery, which every subscriber
    // of this binding shares.
    message.binding = binding.key;
    const subscribers = [...binding.subscribers];
    const allFull =
      subscribers.length > 0 && subscribers.every((subscriber) => subscriber.full);
    for (const subscriber of subscribers) subscriber.push(message, allFull);
    if (!allFull) return;
    return new Promise((resolve) => binding.roomWaiters.push(resolve));
  }

  private checkBehind(): void {
    const now = Date.now();
    for (const binding of [...this.bindings.values()]) {
      for (const subscriber of [...binding.subscribers]) {
        subscriber.checkBehind(now);
      }
    }
  }

  private releaseIfRoom(binding: Binding): void {
    if (binding.roomWaiters.length === 0) return;
    const subscribers = [...binding.subscribers];
    if (subscribers.length > 0 && subscribers.every((s) => s.full)) return;
    for (const release of binding.roomWaiters.splice(0)) release();
  }

  private reportGap(binding: Binding): void {
    const { exchange, routingKeyPattern } = binding.key;
    this.logger.info(
      { exchange, routingKeyPattern, subscribers: binding.subscribers.size },
      "live binding resumed after a gap; notifying its subscribers",
    );
    for (const subscriber of binding.subscribers) subscriber.pushGap();
  }

  private endBinding(binding: Binding, error: Error): void {
    if (binding.retired) return;
    const { exchange, routingKeyPattern } = binding.key;
    this.logger.warn(
      {
        exchange,
        routingKeyPattern,
        subscribers: binding.subscribers.size,
        err: error,
      },
      "live binding ended by its source; ending its subscriptions",
    );
    this.forget(binding);
    for (const subscriber of binding.subscribers) subscriber.end(error);
    binding.subscribers.clear();
    if (binding.handle) this.closeHandle(binding);
  }

  private leave(binding: Binding, subscriber: Subscriber): void {
    if (!binding.subscribers.delete(subscriber)) return;
    this.releaseIfRoom(binding);
    if (binding.subscribers.size > 0 || binding.retired) return;
    this.forget(binding);
    // A binding still opening is closed by open() once the handle arrives.
    if (binding.handle) this.closeHandle(binding);
  }

  /** Retires a binding, so the next subscriber to its key opens a new one. */
  private forget(binding: Binding): void {
    binding.retired = true;
    if (this.bindings.get(binding.id) === binding) {
      this.bindings.delete(binding.id);
    }
  }

  private closeHandle(binding: Binding): void {
    for (const release of binding.roomWaiters.splice(0)) release();
    const handle = binding.handle;
    if (!handle) return;
    binding.handle = null;
    const { exchange, routingKeyPattern } = binding.key;
    const closing = handle.close().then(
      () => {
        this.logger.info(
          { exchange, routingKeyPattern },
          "live binding closed",
        );
      },
      (error: unknown) => {
        this.logger.warn(
          { exchange, routingKeyPattern, err: error },
          "closing a live binding failed",
        );
      },
    );
    this.track(closing);
  }

  private track(work: Promise<void>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }
}

function notice(
  key: BindingKey,
  kind: LiveNotice["kind"],
  lost: number,
): LiveMessage {
  return {
    exchange: key.exchange,
    routingKey: "",
    ccRoutingKeys: [],
    payload: null,
    payloadFormat: null,
    redelivered: false,
    timestamp: new Date(),
    notice: { kind, lost },
    binding: key,
  };
}

function checkBindingKey(key: BindingKey): void {
  const exchangeBytes = Buffer.byteLength(key.exchange, "utf8");
  if (exchangeBytes === 0) {
    throw new BadInputError(
      "Exchange name is empty; give the name of a topic exchange.",
      { exchange: key.exchange },
    );
  }
  if (exchangeBytes > MAX_EXCHANGE_NAME_BYTES) {
    throw new BadInputError(
      `Exchange name is ${exchangeBytes} bytes of UTF-8; the maximum is ` +
        `${MAX_EXCHANGE_NAME_BYTES} bytes.`,
      { exchange: key.exchange },
    );
  }
  const problem = validateBindingPattern(key.routingKeyPattern);
  if (problem) {
    throw new BadInputError(problem, {
      routingKeyPattern: key.routingKeyPattern,
    });
  }
}

/** Waits for `work`, or rejects with the signal's reason once it aborts. */
function abortable(work: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (!signal) return work;
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => {
      signal.removeEventListener("abort", onAbort);
    });
  });
}
