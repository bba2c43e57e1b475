// `npm run soak`: runs the built gateway for a bounded time under a mix of
// mutations, queries, subscriptions and broker restarts. It then reports
// latencies, errors, memory and message counts, and whether the database
// and the broker still agree. It uses its own database and vhost and
// removes both at the end.
import "reflect-metadata";

import { randomBytes } from "node:crypto";

import { signToken } from "../src/auth";
import {
  dropDatabase,
  recreateDatabase,
  restartBroker,
  soakAmqpUrl,
  soakDatabaseUrl,
  VhostAdmin,
} from "./soak/environment";
import { GatewayProcess, type GatewayMemory } from "./soak/gateway-process";
import { post } from "./soak/graphql";
import { HttpClient, sleep, type BindingTargets } from "./soak/http-client";
import {
  JWT_SECRET,
  OptionsError,
  readOptions,
  VHOST,
  type SoakOptions,
} from "./soak/options";
import { Publisher } from "./soak/publisher";
import { Recorder } from "./soak/recorder";
import { printReport, writeReport, type RestartRecord, type SoakReport } from "./soak/report";
import { countGuardianEvents, diffState, isEmptyDiff } from "./soak/state-diff";
import { Subscriber } from "./soak/subscribers";

const TARGETS: BindingTargets = {
  exchanges: [
    "exchange/soak/v1/task-completed",
    "exchange/soak/v1/task-pending",
  ],
  patterns: ["#", "primary.#", "primary.*.0.#", "primary.#.gecko-t-linux-large.#"],
};

/** Share of the run, at most WARM_UP_MAX_MS, before the first memory reading. */
const WARM_UP_FRACTION = 0.1;
const WARM_UP_MAX_MS = 30_000;
const MEMORY_SAMPLE_MS = 5_000;
/** Time for live messages in flight to arrive after the publisher stops. */
const DRAIN_MS = 5_000;
/** Period of the queueStats owners' purges, which keep their queues small. */
const STATS_PURGE_MS = 30_000;
/** How long set-up and cleanup retry while the broker or database is away. */
const SETUP_RETRY_MS = 120_000;
const CLEANUP_RETRY_MS = 60_000;

interface Load {
  recorder: Recorder;
  publisher: Publisher;
  subscribers: Subscriber[];
  statsQueues: { queue: string; token: string }[];
}

async function main(): Promise<void> {
  const options = readOptions(process.argv.slice(2), process.env);
  const admin = new VhostAdmin(options);
  const startedAt = new Date().toISOString();
  // Other users of this machine's services may restart them briefly.
  await withRetries(() => recreateDatabase(options), SETUP_RETRY_MS);
  await withRetries(() => admin.recreate(), SETUP_RETRY_MS);
  let gateway: GatewayProcess | null = null;
  let report: SoakReport;
  try {
    gateway = await GatewayProcess.start(gatewayEnv(options));
    report = await soak(options, admin, gateway, startedAt);
  } finally {
    await cleanUp("stopping the gateway", async () => gateway?.stop());
    await cleanUp(`removing the vhost ${VHOST}`, () => admin.remove());
    await cleanUp("dropping the soak database", () => dropDatabase(options));
  }
  writeReport(report, options.out);
  printReport(report, options.out);
  process.exitCode = report.passed ? 0 : 1;
}

/** Runs one cleanup step and reports a failure without hiding the run's error. */
async function cleanUp(what: string, step: () => Promise<unknown>): Promise<void> {
  try {
    await withRetries(step, CLEANUP_RETRY_MS);
  } catch (error) {
    process.stderr.write(
      `Cleanup failed while ${what}: ${(error as Error).message}. ` +
        `Run npm run soak again to clear what is left.\n`,
    );
  }
}

/** Runs `step` until it succeeds, retrying every 2 s for up to `timeoutMs`. */
async function withRetries(
  step: () => Promise<unknown>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await step();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(2_000);
    }
  }
}

function gatewayEnv(options: SoakOptions): Record<string, string> {
  return {
    DATABASE_URL: soakDatabaseUrl(options),
    // Both name the soak's vhost; the gateway refuses two different ones.
    AMQP_URL: soakAmqpUrl(options),
    RABBITMQ_MANAGEMENT_URL: options.managementUrl,
    RABBITMQ_VHOST: VHOST,
    JWT_SECRET,
    JWT_JWKS_URL: "",
    ADMIN_EMAILS: "",
    LOG_LEVEL: "info",
  };
}

async function soak(
  options: SoakOptions,
  admin: VhostAdmin,
  gateway: GatewayProcess,
  startedAt: string,
): Promise<SoakReport> {
  const runId = randomBytes(3).toString("hex");
  const load = await prepareLoad(options, gateway, runId);
  const memory = new MemoryWatch(gateway);
  const loadStart = Date.now();
  const until = loadStart + options.seconds * 1000;

  const clients = startClients(options, gateway, load.recorder, runId, until);
  const publishing = load.publisher.run(until, options.publishRatePerSecond);
  const purging = purgeStatsQueues(load, gateway, until);
  const warmUpMs = Math.min(WARM_UP_MAX_MS, options.seconds * 1000 * WARM_UP_FRACTION);
  const sampling = memory.watch(loadStart + warmUpMs, until);
  const restarts = await runRestarts(options, loadStart);
  await Promise.all([clients, publishing, purging, sampling]);

  await sleep(DRAIN_MS);
  await Promise.all(load.subscribers.map((s) => s.stop()));
  await load.publisher.close();
  await sleep(options.settleSeconds * 1000);
  const end = await gateway.collectedMemory().catch(() => null);

  let stateDiff = null;
  let stateDiffError: string | undefined;
  try {
    stateDiff = await diffState(soakDatabaseUrl(options), admin);
  } catch (error) {
    stateDiffError = (error as Error).message;
  }
  const guardianEvents = await countGuardianEvents(soakDatabaseUrl(options)).catch(
    () => null,
  );
  const crashed = gateway.crash;
  const shutdown = await gateway.stop();
  const passed =
    crashed === null && stateDiff !== null && isEmptyDiff(stateDiff);
  return {
    startedAt,
    settings: settingsOf(options),
    loadSeconds: options.seconds,
    restarts,
    operations: load.recorder.byKind(),
    errorsByCode: load.recorder.errorsByCode(),
    errorExamples: Object.fromEntries(load.recorder.examples),
    memory: { start: memory.start, peak: memory.peak, end },
    publisher: load.publisher.summary(),
    subscribers: load.subscribers.map((s) => s.summary()),
    gateway: {
      crashed,
      unhandledRejections: gateway.unhandled,
      errorLogs: Object.fromEntries(gateway.errorLogs),
      errorLogExamples: Object.fromEntries(gateway.errorLogExamples),
      shutdown,
    },
    guardianEvents,
    stateDiff,
    stateDiffError,
    passed,
  };
}

function settingsOf(options: SoakOptions): Record<string, number> {
  return {
    seconds: options.seconds,
    restarts: options.restarts,
    httpClients: options.httpClients,
    clientRatePerSecond: options.clientRatePerSecond,
    subscribers: options.subscribers,
    publishRatePerSecond: options.publishRatePerSecond,
    settleSeconds: options.settleSeconds,
  };
}

/**
 * Opens the publisher (which declares the exchanges) and the subscribers,
 * and waits until every messages subscription is live, so that each
 * subscriber can receive every message published.
 */
async function prepareLoad(
  options: SoakOptions,
  gateway: GatewayProcess,
  runId: string,
): Promise<Load> {
  const recorder = new Recorder();
  const publisher = await Publisher.open(soakAmqpUrl(options), [...TARGETS.exchanges]);
  const subscribers: Subscriber[] = [];
  const statsQueues: Load["statsQueues"] = [];
  const messageSubscribers = Math.ceil(options.subscribers * 0.6);
  for (let i = 0; i < options.subscribers; i += 1) {
    const token = await tokenFor(`soak-subscriber-${i}@example.com`);
    const exchange = TARGETS.exchanges[i % TARGETS.exchanges.length];
    if (i < messageSubscribers) {
      subscribers.push(new Subscriber(gateway.url, token, "messages", exchange));
      continue;
    }
    const account = `soak${runId}-s${i}`;
    const queue = await createStatsAccount(recorder, gateway.url, token, account, exchange);
    statsQueues.push({ queue, token });
    subscribers.push(new Subscriber(gateway.url, token, "queueStats", account));
  }
  for (const subscriber of subscribers) subscriber.start();
  try {
    await waitForLiveSubscribers(gateway, messageSubscribers);
  } catch (error) {
    const states = subscribers.map((s) => JSON.stringify(s.summary()));
    throw new Error(`${(error as Error).message} Subscribers: ${states.join("; ")}`);
  }
  return { recorder, publisher, subscribers, statsQueues };
}

/** Creates the account, queue and binding that a queueStats subscriber watches. */
async function createStatsAccount(
  recorder: Recorder,
  url: string,
  token: string,
  account: string,
  exchange: string,
): Promise<string> {
  const steps: [string, string, Record<string, unknown>][] = [
    [
      "createAccount",
      `mutation ($u: String!) { createAccount(input: {username: $u}) { password } }`,
      { u: account },
    ],
    [
      "createQueue",
      `mutation ($a: String!) { createQueue(input: {account: $a, name: "stats"}) { name } }`,
      { a: account },
    ],
    [
      "createBinding",
      `mutation ($q: String!, $e: String!) {
         createBinding(input: {queue: $q, exchange: $e, routingKeyPattern: "primary.#"}) { queue }
       }`,
      { q: `queue/${account}/stats`, e: exchange },
    ],
  ];
  for (const [kind, query, variables] of steps) {
    const outcome = await post(recorder, kind, url, token, query, variables);
    if (outcome.code !== null) {
      throw new Error(`Setting up ${account} failed at ${kind}: ${outcome.message}`);
    }
  }
  return `queue/${account}/stats`;
}

async function waitForLiveSubscribers(
  gateway: GatewayProcess,
  expected: number,
): Promise<void> {
  const metricsUrl = gateway.url.replace(/\/graphql$/, "/metrics");
  for (let attempt = 0; attempt < 120; attempt += 1) {
    const text = await (await fetch(metricsUrl)).text();
    const live = /^pulse_gateway_live_queues (\d+)/m.exec(text);
    const subscribers = /^pulse_gateway_live_subscribers (\d+)/m.exec(text);
    if (Number(subscribers?.[1]) >= expected && Number(live?.[1]) >= Math.min(expected, TARGETS.exchanges.length)) {
      return;
    }
    await sleep(500);
  }
  throw new Error(`${expected} messages subscriptions were not live within 60 s.`);
}

async function startClients(
  options: SoakOptions,
  gateway: GatewayProcess,
  recorder: Recorder,
  runId: string,
  until: number,
): Promise<void> {
  const runs: Promise<void>[] = [];
  for (let i = 0; i < options.httpClients; i += 1) {
    const token = await tokenFor(`soak-client-${i}@example.com`);
    const client = new HttpClient(recorder, gateway.url, token, `soak${runId}-c${i}`, TARGETS);
    runs.push(client.run(until, options.clientRatePerSecond));
  }
  await Promise.all(runs);
}

/** Purges the queueStats owners' queues now and then, as their consumers would. */
async function purgeStatsQueues(load: Load, gateway: GatewayProcess, until: number): Promise<void> {
  while (Date.now() + STATS_PURGE_MS < until) {
    await sleep(STATS_PURGE_MS);
    for (const { queue, token } of load.statsQueues) {
      await post(
        load.recorder, "purgeQueue", gateway.url, token,
        `mutation ($n: String!) { purgeQueue(name: $n) { messagesPurged } }`,
        { n: queue },
      );
    }
  }
}

/** Restarts the broker `options.restarts` times, evenly spread over the run. */
async function runRestarts(options: SoakOptions, loadStart: number): Promise<RestartRecord[]> {
  const records: RestartRecord[] = [];
  for (let k = 1; k <= options.restarts; k += 1) {
    const at = loadStart + (options.seconds * 1000 * k) / (options.restarts + 1);
    await sleep(Math.max(0, at - Date.now()));
    const atSecond = Math.round((Date.now() - loadStart) / 1000);
    const started = Date.now();
    try {
      records.push({ atSecond, durationMs: await restartBroker() });
    } catch (error) {
      records.push({ atSecond, durationMs: Date.now() - started, error: (error as Error).message });
    }
  }
  return records;
}

/** Memory readings of the gateway: the first after warm-up, and the peak RSS. */
class MemoryWatch {
  start: GatewayMemory | null = null;
  peak: GatewayMemory | null = null;

  constructor(private readonly gateway: GatewayProcess) {}

  async watch(from: number, until: number): Promise<void> {
    await sleep(Math.max(0, from - Date.now()));
    this.start = await this.gateway.collectedMemory().catch(() => null);
    while (Date.now() < until) {
      await sleep(Math.min(MEMORY_SAMPLE_MS, Math.max(0, until - Date.now())));
      await this.read();
    }
  }

  private async read(): Promise<GatewayMemory | null> {
    const reading = await this.gateway.memory().catch(() => null);
    if (reading && (!this.peak || reading.rssBytes > this.peak.rssBytes)) {
      this.peak = reading;
    }
    return reading;
  }
}

function tokenFor(email: string): Promise<string> {
  return signToken(JWT_SECRET, { email }, { expiresIn: "24h" });
}

main().catch((error: unknown) => {
  if (error instanceof OptionsError) {
    (error.isHelp ? process.stdout : process.stderr).write(`${error.message}\n`);
    process.exit(error.isHelp ? 0 : 2);
  }
  process.stderr.write(`Soak failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
