// `npm run bench [-- --quick --only LIST --profile]`: runs the
// gateway and a reference server built from graphql-ws and
// graphql-amqp-subscriptions side by side against the local RabbitMQ,
// and prints Markdown tables of the results (see docs/benchmarks.md).
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

import { SignJWT } from "jose";
import { Broker } from "./broker";
import { ChildHandle } from "./child";
import {
  measureBurst,
  measureFootprint,
  measureIdleMemory,
  measureLatency,
  measurePaused,
  type BenchContext,
  type ServerKind,
  type Target,
} from "./measures";
import { summarizeProfile } from "./profile";
import { renderReport, type MachineInfo, type RunResults } from "./report";
import { BENCH_JWT_SECRET, FULL_SIZES, QUICK_SIZES } from "./settings";

const USAGE = `Usage: npm run bench [-- [--quick] [--only LIST] [--profile]]

Runs the gateway and the reference server against the local RabbitMQ and
prints Markdown tables comparing them.

Options:
  --quick         smaller loads and one round, for a smoke check (about 2 min)
  --only LIST     comma-separated measures to run: idle, paused, footprint,
                  throughput, latency (default: all)
  --profile       run both servers under node --cpu-prof during the
                  footprint, throughput and latency measures, sample the
                  heap while the idle subscriptions open, and summarize the
                  profiles; profiling slows the servers, so compare ratios
                  only from runs without it
  -h, --help      print this help
`;

const MEASURES = ["idle", "paused", "footprint", "throughput", "latency"] as const;
type Measure = (typeof MEASURES)[number];

/** Whole-run limits, after which every child is killed and the run fails. */
const FULL_TIME_LIMIT_MS = 15 * 60_000;
const QUICK_TIME_LIMIT_MS = 5 * 60_000;

const KINDS: ServerKind[] = ["gateway", "reference"];

interface Options {
  quick: boolean;
  only: Set<Measure>;
  profile: boolean;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      profile: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return null;
  const only = new Set<Measure>();
  for (const name of (values.only ?? MEASURES.join(",")).split(",")) {
    const trimmed = name.trim();
    if (!(MEASURES as readonly string[]).includes(trimmed)) {
      throw new Error(
        `Unknown measure "${trimmed}" in --only. Use ${MEASURES.join(", ")}.`,
      );
    }
    only.add(trimmed as Measure);
  }
  return { quick: values.quick ?? false, only, profile: values.profile ?? false };
}

/** Output folder of the benchmark's build (dist/bench), with logs and results. */
const OUTPUT_DIR = path.resolve(__dirname, "..");

function machineInfo(rabbitmq: string): MachineInfo {
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["describe", "--always", "--dirty"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    // Not a git checkout, so the commit stays unknown.
  }
  return {
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    kernel: os.release(),
    node: process.version,
    rabbitmq,
    commit,
  };
}

class Run {
  private readonly children = new Set<ChildHandle>();
  readonly runId = randomBytes(4).toString("hex");
  readonly logDir = path.join(OUTPUT_DIR, "logs", this.runId);
  readonly profileDir = path.join(OUTPUT_DIR, "profiles", this.runId);
  readonly exchanges: Record<ServerKind, string> = {
    gateway: `exchange/bench-${this.runId}/gateway`,
    reference: `exchange/bench-${this.runId}/reference`,
  };
  readonly broker = new Broker();

  constructor(readonly options: Options) {
    mkdirSync(this.logDir, { recursive: true });
  }

  log(line: string): void {
    process.stderr.write(`${line}\n`);
  }

  async startChild(name: string, script: string, execArgv: string[] = []): Promise<ChildHandle> {
    const child = await ChildHandle.start({
      script: path.join(__dirname, script),
      logFile: path.join(this.logDir, `${name}.log`),
      execArgv,
    });
    this.children.add(child);
    return child;
  }

  async startServer(kind: ServerKind, token: string, profile = false): Promise<Target> {
    const execArgv = ["--expose-gc"];
    if (profile) {
      const dir = path.join(this.profileDir, kind);
      mkdirSync(dir, { recursive: true });
      execArgv.push("--cpu-prof", `--cpu-prof-dir=${dir}`);
    }
    const started = Date.now();
    const server = await this.startChild(
      `${kind}-${Date.now()}`,
      kind === "gateway" ? "gateway-server.js" : "reference-server.js",
      execArgv,
    );
    this.log(`  ${kind} ready at ${server.url} after ${Date.now() - started} ms (pid ${server.pid})`);
    return {
      kind,
      server,
      exchange: this.exchanges[kind],
      token: kind === "gateway" ? token : null,
    };
  }

  async stopChild(child: ChildHandle): Promise<void> {
    const code = await child.stop();
    this.children.delete(child);
    if (code !== 0) this.log(`  child ${child.pid} exited with code ${code}; see ${child.logFile}`);
  }

  /** Stops every child and deletes the exchanges. Safe to call twice. */
  async cleanUp(): Promise<void> {
    await Promise.all([...this.children].map((child) => this.stopChild(child)));
    for (const exchange of Object.values(this.exchanges)) {
      await this.broker.deleteExchange(exchange).catch((error: unknown) => {
        this.log(`deleting ${exchange} failed: ${(error as Error).message}`);
      });
    }
  }

  killAll(): void {
    for (const child of this.children) child.kill();
  }
}

async function runMeasures(run: Run, results: RunResults): Promise<void> {
  const { only, quick, profile } = run.options;
  const sizes = quick ? QUICK_SIZES : FULL_SIZES;
  for (const exchange of Object.values(run.exchanges)) {
    await run.broker.declareExchange(exchange);
  }
  // Signed as `npm run token` signs, with the benchmark gateway's secret.
  const token = await new SignJWT({ email: "bench@example.com" })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt()
    .setExpirationTime("2h")
    .sign(new TextEncoder().encode(BENCH_JWT_SECRET));
  const publisher = await run.startChild("publisher", "publisher.js");
  const context: BenchContext = {
    publisher,
    broker: run.broker,
    sizes,
    heapProfile: profile,
    log: (line) => run.log(line),
  };

  // Memory measures each start from a fresh server process.
  if (only.has("idle")) {
    for (const kind of KINDS) {
      run.log(`idle memory: ${kind}, ${sizes.idleSubscriptions} subscriptions`);
      const target = await run.startServer(kind, token);
      results.idle[kind] = await measureIdleMemory(context, target);
      await run.stopChild(target.server);
    }
  }
  if (only.has("paused")) {
    for (const kind of KINDS) {
      run.log(`paused subscriber: ${kind}, ${sizes.pausedMessages} messages`);
      const target = await run.startServer(kind, token);
      results.paused[kind] = await measurePaused(context, target);
      await run.stopChild(target.server);
    }
  }

  if (!only.has("footprint") && !only.has("throughput") && !only.has("latency")) return;
  const targets: Record<ServerKind, Target> = {
    gateway: await run.startServer("gateway", token, profile),
    reference: await run.startServer("reference", token, profile),
  };
  if (only.has("footprint")) {
    for (const kind of KINDS) {
      run.log(`broker footprint: ${kind}, ${sizes.manySubscribers} subscribers`);
      results.footprint[kind] = await measureFootprint(context, targets[kind], sizes.manySubscribers);
    }
  }
  for (let round = 0; round < sizes.rounds; round += 1) {
    // Alternating the order spreads drift in the machine's load evenly.
    const order = round % 2 === 0 ? KINDS : [...KINDS].reverse();
    if (only.has("throughput")) {
      for (const kind of order) {
        run.log(`round ${round + 1}: burst, 1 subscriber, ${kind}`);
        const oneSubscriber = await measureBurst(context, targets[kind], 1, sizes.burstMessagesOneSubscriber, `one.${round}`);
        (results.burstOne[kind] ??= []).push(oneSubscriber);
        run.log(
          `    ${Math.round(oneSubscriber.eventsPerSecond)} events/s, ` +
            `${oneSubscriber.missing} missing`,
        );
      }
      for (const kind of order) {
        run.log(`round ${round + 1}: burst, ${sizes.manySubscribers} subscribers, ${kind}`);
        const manySubscribers = await measureBurst(
          context,
          targets[kind],
          sizes.manySubscribers,
          sizes.burstMessagesManySubscribers,
          `many.${round}`,
        );
        (results.burstMany[kind] ??= []).push(manySubscribers);
        run.log(
          `    ${Math.round(manySubscribers.eventsPerSecond)} events/s, ` +
            `${manySubscribers.missing} missing`,
        );
      }
    }
    if (only.has("latency")) {
      for (const kind of order) {
        run.log(`round ${round + 1}: latency, ${sizes.latencyOneRate} msg/s, 1 subscriber, ${kind}`);
        const oneSubscriber = await measureLatency(
          context,
          targets[kind],
          1,
          sizes.latencyOneRate,
          sizes.latencySeconds,
          `one.${round}`,
        );
        (results.latencyOne[kind] ??= []).push(oneSubscriber);
        run.log(
          `    p50 ${oneSubscriber.p50Ms.toFixed(2)} ms, p99 ${oneSubscriber.p99Ms.toFixed(2)} ms, ` +
            `${oneSubscriber.missing} missing`,
        );
      }
      for (const kind of order) {
        run.log(
          `round ${round + 1}: latency, ${sizes.latencyManyRate} msg/s, ` +
            `${sizes.manySubscribers} subscribers, ${kind}`,
        );
        const manySubscribers = await measureLatency(
          context,
          targets[kind],
          sizes.manySubscribers,
          sizes.latencyManyRate,
          sizes.latencySeconds,
          `many.${round}`,
        );
        (results.latencyMany[kind] ??= []).push(manySubscribers);
        run.log(
          `    p50 ${manySubscribers.p50Ms.toFixed(2)} ms, p99 ${manySubscribers.p99Ms.toFixed(2)} ms, ` +
            `${manySubscribers.missing} missing`,
        );
      }
    }
  }
  if (profile) {
    for (const kind of KINDS) {
      await run.stopChild(targets[kind].server);
      const dir = path.join(run.profileDir, kind);
      const files = readdirSync(dir).filter((file) => file.endsWith(".cpuprofile"));
      if (files.length > 0) {
        results.profiles[kind] = summarizeProfile(path.join(dir, files[0]));
        run.log(`${kind} CPU profile: ${path.join(dir, files[0])}`);
      } else {
        run.log(`no CPU profile was written to ${dir}`);
      }
    }
  }
}

async function main(): Promise<number> {
  let options: Options | null;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (!options) {
    process.stdout.write(USAGE);
    return 0;
  }
  const run = new Run(options);
  const startedAt = new Date();
  const limitMs = options.quick ? QUICK_TIME_LIMIT_MS : FULL_TIME_LIMIT_MS;
  const watchdog = setTimeout(() => {
    run.log(`The benchmark timed out after ${limitMs / 60_000} min and is stopping.`);
    run.killAll();
    void run.cleanUp().finally(() => process.exit(1));
  }, limitMs);
  const stopOnSignal = (signal: NodeJS.Signals) => {
    run.log(`${signal} received, so the servers stop and the exchanges are deleted.`);
    run.killAll();
    void run.cleanUp().finally(() => process.exit(130));
  };
  process.once("SIGINT", stopOnSignal);
  process.once("SIGTERM", stopOnSignal);

  const sizes = options.quick ? QUICK_SIZES : FULL_SIZES;
  const results: RunResults = {
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
    machine: machineInfo(await run.broker.version()),
    sizes,
    startedAt: startedAt.toISOString(),
    durationSeconds: 0,
    idle: {},
    paused: {},
    footprint: {},
    burstOne: {},
    burstMany: {},
    latencyOne: {},
    latencyMany: {},
    profiles: {},
  };
  run.log(`benchmark run ${run.runId}; child logs in ${run.logDir}`);
  let failed = false;
  try {
    await runMeasures(run, results);
  } catch (error) {
    failed = true;
    run.log(`The benchmark failed: ${(error as Error).stack ?? String(error)}`);
  } finally {
    await run.cleanUp();
    clearTimeout(watchdog);
  }
  results.durationSeconds = (Date.now() - startedAt.getTime()) / 1000;
  const report = renderReport(results);
  const resultsFile = path.join(OUTPUT_DIR, `results-${run.runId}.json`);
  writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(path.join(OUTPUT_DIR, `report-${run.runId}.md`), `${report}\n`);
  process.stdout.write(`${report}\n`);
  run.log(`results written to ${resultsFile}`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
