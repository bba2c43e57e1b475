// Markdown tables of one run: gateway and reference side by side, the
// ratio gateway ÷ reference, and whether each target is met.
import type { BrokerFootprint } from "./broker";
import type { CpuTimes } from "./cpu";
import type {
  BurstResult,
  IdleMemoryResult,
  LatencyResult,
  PausedResult,
  ServerKind,
} from "./measures";
import type { ProfileSummary } from "./profile";
import type { LoadSizes } from "./settings";

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  rabbitmq: string;
  commit: string;
}

type PerServer<T> = Partial<Record<ServerKind, T>>;

export interface RunResults {
  command: string;
  machine: MachineInfo;
  sizes: LoadSizes;
  startedAt: string;
  durationSeconds: number;
  idle: PerServer<IdleMemoryResult>;
  paused: PerServer<PausedResult>;
  footprint: PerServer<BrokerFootprint>;
  burstOne: PerServer<BurstResult[]>;
  burstMany: PerServer<BurstResult[]>;
  latencyOne: PerServer<LatencyResult[]>;
  latencyMany: PerServer<LatencyResult[]>;
  profiles: PerServer<ProfileSummary>;
}

const MIB = 1024 * 1024;

/**
 * Largest growth of the retained heap over the second half of publishing
 * that counts as flat. That half adds 5,000 messages of 1 KiB in the full
 * run, so a server that keeps them all grows by well over 5 MiB.
 */
export const FLAT_HEAP_BYTES = 1 * MIB;

function integer(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "n/a";
}

function mib(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / MIB).toFixed(1)} MiB` : "n/a";
}

function ms(value: number): string {
  return Number.isFinite(value) ? value.toFixed(2) : "n/a";
}

function ratio(gateway: number | undefined, reference: number | undefined): string {
  if (gateway === undefined || reference === undefined || reference === 0) return "n/a";
  if (!Number.isFinite(gateway) || !Number.isFinite(reference)) return "n/a";
  return (gateway / reference).toFixed(2);
}

function yesNo(met: boolean | undefined): string {
  if (met === undefined) return "not measured";
  return met ? "met" : "**missed**";
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Median with the range over rounds when there is more than one. */
function spread(values: number[], format: (value: number) => string): string {
  if (values.length === 0) return "n/a";
  const middle = format(median(values));
  if (values.length === 1) return middle;
  return `${middle} (${format(Math.min(...values))}–${format(Math.max(...values))})`;
}

function missing(results: { missing: number; expected: number }[] | undefined): string {
  if (!results || results.length === 0) return "n/a";
  return results.map((result) => `${integer(result.missing)}/${integer(result.expected)}`).join(", ");
}

function heapGrowthSecondHalf(paused: PausedResult): number {
  return paused.retainedWhilePaused.heapUsed - paused.retainedAtMiddle.heapUsed;
}

function rssGrowthSecondHalf(paused: PausedResult): number {
  const half = paused.publishEndMs / 2;
  const inWindow = paused.samples.filter(
    (sample) => sample.atMs >= half && sample.atMs <= paused.publishEndMs,
  );
  if (inWindow.length < 2) return Number.NaN;
  return inWindow[inWindow.length - 1].rssBytes - inWindow[0].rssBytes;
}

export interface TargetCheck {
  name: string;
  met: boolean | undefined;
}

export function checkTargets(results: RunResults): TargetCheck[] {
  const eps = (list: BurstResult[] | undefined) =>
    list ? median(list.map((result) => result.eventsPerSecond)) : undefined;
  const p99 = (list: LatencyResult[] | undefined) =>
    list ? median(list.map((result) => result.p99Ms)) : undefined;
  const compare = (
    gateway: number | undefined,
    reference: number | undefined,
    test: (g: number, r: number) => boolean,
  ) => (gateway === undefined || reference === undefined ? undefined : test(gateway, reference));
  const pausedGateway = results.paused.gateway;
  return [
    {
      name: "throughput, 1 subscriber: gateway ≥ reference",
      met: compare(eps(results.burstOne.gateway), eps(results.burstOne.reference), (g, r) => g >= r),
    },
    {
      name: "throughput, 100 subscribers: gateway ≥ 2 × reference",
      met: compare(eps(results.burstMany.gateway), eps(results.burstMany.reference), (g, r) => g >= 2 * r),
    },
    {
      name: "p99 latency, 1 subscriber: gateway ≤ reference",
      met: compare(p99(results.latencyOne.gateway), p99(results.latencyOne.reference), (g, r) => g <= r),
    },
    {
      name: "p99 latency, 100 subscribers: gateway ≤ reference",
      met: compare(p99(results.latencyMany.gateway), p99(results.latencyMany.reference), (g, r) => g <= r),
    },
    {
      name: "RSS with idle subscriptions: gateway ≤ reference",
      met: compare(
        results.idle.gateway?.rssAfterBytes,
        results.idle.reference?.rssAfterBytes,
        (g, r) => g <= r,
      ),
    },
    {
      name:
        `memory flat while a subscriber is paused: retained heap grows by less ` +
        `than ${mib(FLAT_HEAP_BYTES)} over the second half of publishing`,
      met: pausedGateway ? heapGrowthSecondHalf(pausedGateway) < FLAT_HEAP_BYTES : undefined,
    },
  ];
}

export function renderReport(results: RunResults): string {
  const lines: string[] = [];
  const { machine, sizes } = results;
  lines.push(
    `Command: \`${results.command}\`, started ${results.startedAt}, ` +
      `${Math.round(results.durationSeconds)} s in total.`,
    "",
    `Machine: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGiB} GiB, ` +
      `Linux ${machine.kernel}, Node.js ${machine.node}, RabbitMQ ${machine.rabbitmq}, ` +
      `gateway at ${machine.commit}.`,
    "",
    "Ratios are gateway ÷ reference. Throughput and latency give the median " +
      `of ${sizes.rounds} round(s), with the range in brackets.`,
    "",
  );

  renderThroughput(lines, results);
  renderLatency(lines, results);
  renderCpu(lines, results);
  renderIdle(lines, results);
  renderPaused(lines, results);
  renderFootprint(lines, results);

  lines.push("### Targets", "", "| target | result |", "| --- | --- |");
  for (const check of checkTargets(results)) {
    lines.push(`| ${check.name} | ${yesNo(check.met)} |`);
  }
  lines.push("");

  for (const kind of ["gateway", "reference"] as const) {
    const profile = results.profiles[kind];
    if (profile) renderProfile(lines, kind, profile);
  }
  return lines.join("\n");
}

function renderThroughput(lines: string[], results: RunResults): void {
  const { sizes } = results;
  const rows: [string, PerServer<BurstResult[]>][] = [
    [`1 subscriber, burst of ${integer(sizes.burstMessagesOneSubscriber)}`, results.burstOne],
    [
      `${sizes.manySubscribers} subscribers on one binding, burst of ${integer(sizes.burstMessagesManySubscribers)}`,
      results.burstMany,
    ],
  ];
  if (!rows.some(([, data]) => data.gateway || data.reference)) return;
  lines.push(
    "### Burst throughput (delivered events per second at the clients)",
    "",
    "| load | gateway | reference | ratio | missing, gateway | missing, reference |",
    "| --- | --- | --- | --- | --- | --- |",
  );
  for (const [label, data] of rows) {
    const gateway = data.gateway?.map((result) => result.eventsPerSecond) ?? [];
    const reference = data.reference?.map((result) => result.eventsPerSecond) ?? [];
    lines.push(
      `| ${label} | ${spread(gateway, integer)} | ${spread(reference, integer)} | ` +
        `${ratio(median(gateway), median(reference))} | ${missing(data.gateway)} | ` +
        `${missing(data.reference)} |`,
    );
  }
  lines.push("");
}

function renderLatency(lines: string[], results: RunResults): void {
  const { sizes } = results;
  const rows: [string, PerServer<LatencyResult[]>][] = [
    [`${integer(sizes.latencyOneRate)} msg/s, 1 subscriber`, results.latencyOne],
    [`${integer(sizes.latencyManyRate)} msg/s, ${sizes.manySubscribers} subscribers`, results.latencyMany],
  ];
  if (!rows.some(([, data]) => data.gateway || data.reference)) return;
  lines.push(
    `### Latency, publish to client receive, ${sizes.latencySeconds} s per load (ms)`,
    "",
    "| load | percentile | gateway | reference | ratio | missing, gateway | missing, reference |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const [label, data] of rows) {
    for (const [name, read] of [
      ["p50", (result: LatencyResult) => result.p50Ms],
      ["p99", (result: LatencyResult) => result.p99Ms],
    ] as const) {
      const gateway = data.gateway?.map(read) ?? [];
      const reference = data.reference?.map(read) ?? [];
      lines.push(
        `| ${label} | ${name} | ${spread(gateway, ms)} | ${spread(reference, ms)} | ` +
          `${ratio(median(gateway), median(reference))} | ${missing(data.gateway)} | ` +
          `${missing(data.reference)} |`,
      );
    }
  }
  lines.push("");
}

/** CPU milliseconds of one process per 1,000 delivered events. */
function cpuPerThousand(
  list: (BurstResult | LatencyResult)[] | undefined,
  process: keyof CpuTimes,
): number[] {
  return (list ?? [])
    .filter((result) => result.delivered > 0)
    .map((result) => (result.cpuMs[process] * 1000) / result.delivered);
}

function renderCpu(lines: string[], results: RunResults): void {
  const { sizes } = results;
  const loads: [string, PerServer<(BurstResult | LatencyResult)[]>][] = [
    ["burst, 1 subscriber", results.burstOne],
    [`burst, ${sizes.manySubscribers} subscribers`, results.burstMany],
    [`${integer(sizes.latencyOneRate)} msg/s, 1 subscriber`, results.latencyOne],
    [`${integer(sizes.latencyManyRate)} msg/s, ${sizes.manySubscribers} subscribers`, results.latencyMany],
  ];
  if (!loads.some(([, data]) => data.gateway || data.reference)) return;
  lines.push(
    "### CPU time per 1,000 delivered events (ms)",
    "",
    "Read from /proc for the server, the clients (the driver process) and " +
      "RabbitMQ, from the first publish to the last receipt. serverKernel is " +
      "the part of the server's time spent in the kernel, which on loopback " +
      "includes most of the TCP work of both ends of a write.",
    "",
    "| load | process | gateway run | reference run | ratio |",
    "| --- | --- | --- | --- | --- |",
  );
  for (const [label, data] of loads) {
    if (!data.gateway && !data.reference) continue;
    for (const process of ["server", "serverKernel", "clients", "broker"] as const) {
      const gateway = cpuPerThousand(data.gateway, process);
      const reference = cpuPerThousand(data.reference, process);
      lines.push(
        `| ${label} | ${process} | ${spread(gateway, ms)} | ${spread(reference, ms)} | ` +
          `${ratio(median(gateway), median(reference))} |`,
      );
    }
  }
  lines.push("");
}

function renderIdle(lines: string[], results: RunResults): void {
  const { gateway, reference } = results.idle;
  if (!gateway && !reference) return;
  const any = (gateway ?? reference)!;
  const heapGrowth = (result?: IdleMemoryResult) =>
    result ? result.after.heapUsed - result.before.heapUsed : undefined;
  const rows: [string, (result: IdleMemoryResult) => number, (value: number) => string][] = [
    ["RSS before subscribing", (result) => result.rssBeforeBytes, mib],
    [`RSS with ${integer(any.subscriptions)} idle subscriptions`, (result) => result.rssAfterBytes, mib],
    ["RSS growth", (result) => result.rssAfterBytes - result.rssBeforeBytes, mib],
    ["heap used growth, after a full GC", (result) => heapGrowth(result) ?? Number.NaN, mib],
    [
      "heap used per subscription (bytes)",
      (result) => (heapGrowth(result) ?? Number.NaN) / result.subscriptions,
      integer,
    ],
    ["broker queues", (result) => result.footprint.queues, integer],
    ["broker consumers", (result) => result.footprint.consumers, integer],
    ["AMQP channels of the server", (result) => result.footprint.channels, integer],
  ];
  lines.push(
    `### Memory with ${integer(any.subscriptions)} idle subscriptions ` +
      `(${any.sockets} sockets, ${any.bindings} bindings)`,
    "",
    "| measure | gateway | reference | ratio |",
    "| --- | --- | --- | --- |",
  );
  for (const [label, read, format] of rows) {
    const g = gateway ? read(gateway) : undefined;
    const r = reference ? read(reference) : undefined;
    lines.push(
      `| ${label} | ${g === undefined ? "n/a" : format(g)} | ` +
        `${r === undefined ? "n/a" : format(r)} | ${ratio(g, r)} |`,
    );
  }
  lines.push("");
  for (const [kind, result] of [["gateway", gateway], ["reference", reference]] as const) {
    if (!result?.heap) continue;
    lines.push(
      `Retained allocations of the ${kind} while the subscriptions opened ` +
        `(V8 sampling heap profiler, ${mib(result.heap.totalBytes)} in all):`,
      "",
      "| allocated in | retained |",
      "| --- | --- |",
    );
    for (const entry of result.heap.packages.slice(0, 8)) {
      lines.push(`| ${entry.name} | ${mib(entry.bytes)} |`);
    }
    for (const entry of result.heap.functions.slice(0, 12)) {
      lines.push(`| \`${entry.name}\` | ${mib(entry.bytes)} |`);
    }
    lines.push("");
  }
}

function renderPaused(lines: string[], results: RunResults): void {
  const { gateway, reference } = results.paused;
  if (!gateway && !reference) return;
  const any = (gateway ?? reference)!;
  const rows: [string, (result: PausedResult) => number, (value: number) => string][] = [
    ["RSS before the pause", (result) => result.rssBeforeBytes, mib],
    ["RSS, maximum while paused", (result) => result.rssMaxDuringBytes, mib],
    ["RSS rise over the second half of publishing", rssGrowthSecondHalf, mib],
    ["RSS at the end, still paused", (result) => result.rssPausedEndBytes, mib],
    [
      "retained heap (after a full GC) half-way through publishing, minus before",
      (result) => result.retainedAtMiddle.heapUsed - result.before.heapUsed,
      mib,
    ],
    [
      "retained heap at the end, still paused, minus before",
      (result) => result.retainedWhilePaused.heapUsed - result.before.heapUsed,
      mib,
    ],
    ["retained heap growth over the second half", heapGrowthSecondHalf, mib],
    ["RSS after the subscriber resumed", (result) => result.rssAfterResumeBytes, mib],
    ["messages received by the active subscriber", (result) => result.active.delivered, integer],
    ["messages received by the paused subscriber", (result) => result.paused.delivered, integer],
    ["other events (notices) to the paused subscriber", (result) => result.paused.otherEvents, integer],
  ];
  lines.push(
    `### Memory while one of two subscribers is paused, ${integer(any.messages)} ` +
      `messages at ${integer(any.ratePerSecond)} msg/s`,
    "",
    "| measure | gateway | reference | ratio |",
    "| --- | --- | --- | --- |",
  );
  for (const [label, read, format] of rows) {
    const g = gateway ? read(gateway) : undefined;
    const r = reference ? read(reference) : undefined;
    lines.push(
      `| ${label} | ${g === undefined ? "n/a" : format(g)} | ` +
        `${r === undefined ? "n/a" : format(r)} | ${ratio(g, r)} |`,
    );
  }
  lines.push("");
}

function renderFootprint(lines: string[], results: RunResults): void {
  const { gateway, reference } = results.footprint;
  if (!gateway && !reference) return;
  lines.push(
    `### Broker resources for ${results.sizes.manySubscribers} subscribers on one binding`,
    "",
    "| resource | gateway | reference |",
    "| --- | --- | --- |",
  );
  for (const key of ["queues", "consumers", "channels", "connections"] as const) {
    lines.push(
      `| ${key} | ${gateway ? integer(gateway[key]) : "n/a"} | ` +
        `${reference ? integer(reference[key]) : "n/a"} |`,
    );
  }
  lines.push("");
}

function renderProfile(lines: string[], kind: ServerKind, profile: ProfileSummary): void {
  lines.push(
    `### CPU profile of the ${kind}, whole process life`,
    "",
    `${(profile.totalMs / 1000).toFixed(1)} s profiled, busy ` +
      `${(profile.busyShare * 100).toFixed(0)} % of it.`,
    "",
    "| package or area | self time | share |",
    "| --- | --- | --- |",
  );
  for (const entry of profile.packages) {
    lines.push(`| ${entry.name} | ${integer(entry.ms)} ms | ${(entry.share * 100).toFixed(1)} % |`);
  }
  lines.push("", "| function | self time | share |", "| --- | --- | --- |");
  for (const entry of profile.functions) {
    lines.push(`| \`${entry.name}\` | ${integer(entry.ms)} ms | ${(entry.share * 100).toFixed(1)} % |`);
  }
  lines.push("");
}
