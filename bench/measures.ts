// The measures of the benchmark. Each one runs against one server at a
// time, on its own routing keys, and closes every socket it opened.
import type { Broker, BrokerFootprint } from "./broker";
import { amqpClientPorts } from "./broker";
import type { ChildHandle } from "./child";
import { closeSockets, openSockets, Sink, type SocketClient } from "./clients";
import { cpuSince, readCpu, type CpuTimes } from "./cpu";
import type { MemoryReport, PublishResult } from "./ipc";
import type { HeapSummary } from "./profile";
import type { LoadSizes } from "./settings";

export type ServerKind = "gateway" | "reference";

/** A running server and what its clients need to reach it. */
export interface Target {
  kind: ServerKind;
  server: ChildHandle;
  exchange: string;
  /** Bearer token for the gateway, or null for the reference, which needs none. */
  token: string | null;
}

export interface BenchContext {
  publisher: ChildHandle;
  broker: Broker;
  sizes: LoadSizes;
  /** Runs V8's sampling heap profiler while idle subscriptions open. */
  heapProfile: boolean;
  log(line: string): void;
}

/** Deliveries count as finished after this long without one. */
const PROBE_INTERVAL_MS = 250;
const READY_TIMEOUT_MS = 120_000;
/** A delivery wait ends when no subscription received anything for this long. */
const STALL_MS = 3_000;
const DELIVERY_TIMEOUT_MS = 180_000;

export interface DeliveryCounts {
  expected: number;
  delivered: number;
  /** expected - delivered: dropped, or still in flight when the wait ended. */
  missing: number;
  outOfOrder: number;
  /** Events without a benchmark payload, such as the gateway's notices. */
  otherEvents: number;
  errors: string[];
}

export interface CpuCost {
  /** CPU milliseconds spent by each process from first publish to last receipt. */
  cpuMs: CpuTimes;
}

export interface BurstResult extends DeliveryCounts, CpuCost {
  subscribers: number;
  messages: number;
  seconds: number;
  eventsPerSecond: number;
}

export interface LatencyResult extends DeliveryCounts, CpuCost {
  subscribers: number;
  ratePerSecond: number;
  achievedRate: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface IdleMemoryResult {
  subscriptions: number;
  sockets: number;
  bindings: number;
  /** Both after a full garbage collection in the server. */
  before: MemoryReport;
  after: MemoryReport;
  /** Read from /proc without disturbing the server. */
  rssBeforeBytes: number;
  rssAfterBytes: number;
  footprint: BrokerFootprint;
  /** Allocations the subscriptions retain, by allocating function, with --profile. */
  heap?: HeapSummary;
}

export interface RssSample {
  atMs: number;
  rssBytes: number;
}

export interface PausedResult {
  messages: number;
  ratePerSecond: number;
  before: MemoryReport;
  rssBeforeBytes: number;
  rssMaxDuringBytes: number;
  /** Once the active subscriber has everything, the other still paused. */
  rssPausedEndBytes: number;
  /** After a full collection, half of the messages published. */
  retainedAtMiddle: MemoryReport;
  /** After a full collection, still paused: what the server retains. */
  retainedWhilePaused: MemoryReport;
  /** After the paused subscriber resumed and read what it could. */
  afterResume: MemoryReport;
  rssAfterResumeBytes: number;
  samples: RssSample[];
  /** Milliseconds from the pause to the last publish. */
  publishEndMs: number;
  active: DeliveryCounts;
  paused: DeliveryCounts;
  pausedSocketOpenAtResume: boolean;
}

/** Publishes through the publisher child and waits for its report. */
function publish(
  context: BenchContext,
  exchange: string,
  routingKey: string,
  count: number,
  ratePerSecond: number,
  probe = false,
): Promise<PublishResult> {
  const expectedMs = ratePerSecond > 0 ? (count / ratePerSecond) * 1000 : 0;
  return context.publisher.request<PublishResult>(
    { type: "publish", exchange, routingKey, count, ratePerSecond, probe },
    expectedMs + 60_000,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function total(sinks: Sink[], read: (sink: Sink) => number): number {
  let sum = 0;
  for (const sink of sinks) sum += read(sink);
  return sum;
}

/**
 * Sends a probe to every key, waits until the probes stop arriving, and
 * repeats until each subscription has received one, so that every
 * consumer is known to be live. Neither server notifies a client when its
 * subscription has reached the broker. A new round starts only once the
 * last one is delivered, so probing never outruns a slow server.
 */
async function awaitReady(
  context: BenchContext,
  target: Target,
  sinks: Sink[],
  keys: string[],
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let rounds = 0;
  while (sinks.some((sink) => sink.probes === 0)) {
    const failed = sinks.find((sink) => sink.errors.length > 0);
    if (failed) throw new Error(`subscription failed: ${failed.errors.join("; ")}`);
    if (Date.now() > deadline) {
      const waiting = sinks.filter((sink) => sink.probes === 0).length;
      throw new Error(
        `${target.kind}: ${waiting} of ${sinks.length} subscriptions received ` +
          `no probe within ${READY_TIMEOUT_MS} ms (${rounds} probe rounds)`,
      );
    }
    for (const key of keys) await publish(context, target.exchange, key, 1, 0, true);
    rounds += 1;
    await awaitQuiet(sinks, deadline);
  }
  await awaitQuiet(sinks, deadline);
}

/** Waits until no sink has received anything for one probe interval. */
async function awaitQuiet(sinks: Sink[], deadline: number): Promise<void> {
  let seen = -1;
  for (;;) {
    const now = total(sinks, (sink) => sink.probes + sink.received + sink.others);
    if (now === seen || Date.now() > deadline) return;
    seen = now;
    await sleep(PROBE_INTERVAL_MS);
  }
}

/** Waits until each sink has `expected` messages or deliveries stall. */
async function awaitDelivery(sinks: Sink[], expected: number): Promise<void> {
  const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
  let seen = -1;
  let lastProgress = Date.now();
  for (;;) {
    if (sinks.every((sink) => sink.received >= expected)) return;
    const now = total(sinks, (sink) => sink.received + sink.others);
    if (now !== seen) {
      seen = now;
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress > STALL_MS) {
      return;
    }
    if (Date.now() > deadline) return;
    await sleep(20);
  }
}

function counts(sinks: Sink[], expectedEach: number): DeliveryCounts {
  const expected = expectedEach * sinks.length;
  const delivered = total(sinks, (sink) => sink.received);
  return {
    expected,
    delivered,
    missing: expected - delivered,
    outOfOrder: total(sinks, (sink) => sink.outOfOrder),
    otherEvents: total(sinks, (sink) => sink.others),
    errors: sinks.flatMap((sink) => sink.errors).slice(0, 5),
  };
}

/** Opens `sockets` sockets with the given subscriptions on each. */
async function subscribeAll(
  target: Target,
  sockets: number,
  patternsFor: (socket: number) => string[],
): Promise<{ clients: SocketClient[]; sinks: Sink[] }> {
  const clients = await openSockets(target.server.url, target.token, sockets);
  const sinks: Sink[] = [];
  clients.forEach((client, index) => {
    for (const pattern of patternsFor(index)) {
      const sink = new Sink();
      client.subscribe(target.exchange, pattern, sink);
      sinks.push(sink);
    }
  });
  return { clients, sinks };
}

/** Delivered events per second for a burst of messages on one binding. */
export async function measureBurst(
  context: BenchContext,
  target: Target,
  subscribers: number,
  messages: number,
  label: string,
): Promise<BurstResult> {
  const key = `burst.${label}`;
  const { clients, sinks } = await subscribeAll(target, subscribers, () => [key]);
  try {
    await awaitReady(context, target, sinks, [key]);
    for (const sink of sinks) sink.reset(false);
    const cpuStart = readCpu(target.server.pid, context.publisher.pid);
    const published = await publish(context, target.exchange, key, messages, 0);
    await awaitDelivery(sinks, messages);
    const cpuMs = cpuSince(cpuStart, readCpu(target.server.pid, context.publisher.pid));
    const lastAtUs = Math.max(...sinks.map((sink) => sink.lastAtUs));
    const seconds = (lastAtUs - published.firstUs) / 1e6;
    const result = counts(sinks, messages);
    return {
      ...result,
      cpuMs,
      subscribers,
      messages,
      seconds,
      eventsPerSecond: seconds > 0 ? result.delivered / seconds : 0,
    };
  } finally {
    await closeSockets(clients);
  }
}

/** Publish-to-receive latency at a fixed publish rate. */
export async function measureLatency(
  context: BenchContext,
  target: Target,
  subscribers: number,
  ratePerSecond: number,
  seconds: number,
  label: string,
): Promise<LatencyResult> {
  const key = `latency.${label}`;
  const messages = Math.round(ratePerSecond * seconds);
  const { clients, sinks } = await subscribeAll(target, subscribers, () => [key]);
  try {
    await awaitReady(context, target, sinks, [key]);
    for (const sink of sinks) sink.reset(true);
    const cpuStart = readCpu(target.server.pid, context.publisher.pid);
    const published = await publish(context, target.exchange, key, messages, ratePerSecond);
    await awaitDelivery(sinks, messages);
    const cpuMs = cpuSince(cpuStart, readCpu(target.server.pid, context.publisher.pid));
    const latencies = sinks.flatMap((sink) => sink.latenciesUs ?? []);
    latencies.sort((a, b) => a - b);
    const spanSeconds = (published.lastUs - published.firstUs) / 1e6;
    return {
      ...counts(sinks, messages),
      cpuMs,
      subscribers,
      ratePerSecond,
      achievedRate: spanSeconds > 0 ? (published.count - 1) / spanSeconds : 0,
      p50Ms: percentile(latencies, 0.5) / 1000,
      p99Ms: percentile(latencies, 0.99) / 1000,
      maxMs: (latencies[latencies.length - 1] ?? Number.NaN) / 1000,
    };
  } finally {
    await closeSockets(clients);
  }
}

/** Nearest-rank percentile of sorted values, or NaN when there are none. */
export function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(fraction * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/**
 * Server memory with many idle subscriptions, spread evenly over sockets
 * and bindings. Expects a freshly started server.
 */
export async function measureIdleMemory(
  context: BenchContext,
  target: Target,
): Promise<IdleMemoryResult> {
  const { idleSubscriptions, idleSockets, idleBindings } = context.sizes;
  const perSocket = Math.ceil(idleSubscriptions / idleSockets);
  const keys = Array.from({ length: idleBindings }, (_, index) => `idle.${index}`);
  await sleep(2_000);
  const before = await target.server.memory(true);
  const rssBeforeBytes = target.server.rssBytes();
  if (context.heapProfile) {
    await target.server.request({ type: "heapSampling", action: "start" });
  }
  const { clients, sinks } = await subscribeAll(target, idleSockets, (socket) =>
    Array.from({ length: perSocket }, (_, index) => keys[(socket * perSocket + index) % keys.length]),
  );
  try {
    context.log(`  ${target.kind}: ${sinks.length} subscriptions open, probing`);
    await awaitReady(context, target, sinks, keys);
    const footprint = await context.broker.footprint(
      target.exchange,
      keys,
      amqpClientPorts(target.server.pid),
    );
    await sleep(2_000);
    const after = await target.server.memory(true);
    const rssAfterBytes = target.server.rssBytes();
    const heap = context.heapProfile
      ? await target.server.request<HeapSummary>({ type: "heapSampling", action: "stop" })
      : undefined;
    return {
      heap,
      subscriptions: sinks.length,
      sockets: clients.length,
      bindings: keys.length,
      before,
      after,
      rssBeforeBytes,
      rssAfterBytes,
      footprint,
    };
  } finally {
    await closeSockets(clients);
  }
}

/**
 * Server memory while one of two subscribers of a binding stops reading
 * its socket and messages keep coming, with a full collection half-way
 * through publishing. Expects a freshly started server.
 * The pause stays under 12 s, graphql-ws's default keep-alive interval,
 * after which the server closes a socket that sent no pong to its ping.
 */
export async function measurePaused(
  context: BenchContext,
  target: Target,
): Promise<PausedResult> {
  const { pausedMessages, pausedRate } = context.sizes;
  const key = "paused";
  const { clients, sinks } = await subscribeAll(target, 2, () => [key]);
  const [activeSink, pausedSink] = sinks;
  const pausedClient = clients[1];
  const samples: RssSample[] = [];
  let sampler: NodeJS.Timeout | undefined;
  try {
    await awaitReady(context, target, sinks, [key]);
    for (const sink of sinks) sink.reset(false);
    await sleep(1_000);
    const before = await target.server.memory(true);
    const rssBeforeBytes = target.server.rssBytes();
    const startMs = Date.now();
    pausedClient.pause();
    sampler = setInterval(() => {
      samples.push({ atMs: Date.now() - startMs, rssBytes: target.server.rssBytes() });
    }, 200);
    const firstHalf = Math.floor(pausedMessages / 2);
    await publish(context, target.exchange, key, firstHalf, pausedRate);
    const retainedAtMiddle = await target.server.memory(true);
    await publish(context, target.exchange, key, pausedMessages - firstHalf, pausedRate);
    const publishEndMs = Date.now() - startMs;
    await awaitDelivery([activeSink], pausedMessages);
    await sleep(1_000);
    clearInterval(sampler);
    sampler = undefined;
    const rssPausedEndBytes = target.server.rssBytes();
    samples.push({ atMs: Date.now() - startMs, rssBytes: rssPausedEndBytes });
    const retainedWhilePaused = await target.server.memory(true);
    const pausedSocketOpenAtResume = pausedClient.isOpen;
    context.log(
      `  ${target.kind}: paused for ${((Date.now() - startMs) / 1000).toFixed(1)} s, resuming`,
    );
    pausedClient.resume();
    await awaitDelivery([pausedSink], pausedMessages);
    const afterResume = await target.server.memory(true);
    const rssAfterResumeBytes = target.server.rssBytes();
    return {
      messages: pausedMessages,
      ratePerSecond: pausedRate,
      before,
      rssBeforeBytes,
      rssMaxDuringBytes: Math.max(...samples.map((sample) => sample.rssBytes)),
      rssPausedEndBytes,
      retainedAtMiddle,
      retainedWhilePaused,
      afterResume,
      rssAfterResumeBytes,
      samples,
      publishEndMs,
      active: counts([activeSink], pausedMessages),
      paused: counts([pausedSink], pausedMessages),
      pausedSocketOpenAtResume,
    };
  } finally {
    if (sampler) clearInterval(sampler);
    await closeSockets(clients);
  }
}

/** Broker queues, consumers and channels for subscribers of one binding. */
export async function measureFootprint(
  context: BenchContext,
  target: Target,
  subscribers: number,
): Promise<BrokerFootprint> {
  const key = "footprint";
  const { clients, sinks } = await subscribeAll(target, subscribers, () => [key]);
  try {
    await awaitReady(context, target, sinks, [key]);
    return await context.broker.footprint(
      target.exchange,
      [key],
      amqpClientPorts(target.server.pid),
    );
  } finally {
    await closeSockets(clients);
  }
}
