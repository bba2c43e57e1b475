// Queue history in PostgreSQL: samples from guardian passes, downsampling
// that keeps a month of samples for many queues bounded, and the
// Queue.history field.
import { guardianSettings, Guardian } from "../src/guardian";
import type { Gateway } from "../src/server";
import {
  brokerAdmin,
  Cleanup,
  createTestAccount,
  errorCodes,
  eventually,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const QUEUE_COUNT = 5;

const cleanup = new Cleanup();
const prefix = `queue/${uniqueName("history")}`;
let gateway: Gateway;
let ownerToken: string;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  cleanup.add(() =>
    gateway.db.queueSample.deleteMany({
      where: { queueName: { startsWith: prefix } },
    }),
  );
  ownerToken = await tokenFor(uniqueEmail("owner"));
});

afterAll(() => cleanup.run());

/** Inserts one raw sample a minute for `days` days, ending now, per queue. */
async function feedSamples(names: string[], days: number, now: Date) {
  await gateway.db.$executeRaw`
    INSERT INTO "QueueSample" ("queueName", "at", "resolutionSeconds",
      "messages", "consumers", "publishRate")
    SELECT name, ${now}::timestamp - make_interval(mins => step), 0,
      step % 100, 1, 2.0
    FROM unnest(${names}::text[]) AS name,
      generate_series(0, ${days * 24 * 60}) AS step`;
}

async function countsByResolution(queue: string) {
  const rows = await gateway.db.queueSample.groupBy({
    by: ["resolutionSeconds"],
    where: { queueName: queue },
    _count: true,
    _min: { at: true },
  });
  return new Map(rows.map((row) => [row.resolutionSeconds, row]));
}

test("downsampling keeps a month bounded", async () => {
  const now = new Date();
  const names = Array.from(
    { length: QUEUE_COUNT },
    (_, i) => `${prefix}/q${i}`,
  );
  await feedSamples(names, 31, now);
  const peakAt = new Date(now.getTime() - 10 * DAY_MS - 30_000);
  await gateway.db.queueSample.create({
    data: { queueName: names[0], at: peakAt, messages: 99_999 },
  });

  await gateway.history.downsample(now);

  const retentionDays = gateway.config.guardian.historyRetentionDays;
  const bound = 61 + 1 + 288 + 1 + 24 * retentionDays;
  for (const name of names) {
    const total = await gateway.db.queueSample.count({
      where: { queueName: name },
    });
    expect(total).toBeLessThanOrEqual(bound);
  }
  const levels = await countsByResolution(names[0]);
  expect([...levels.keys()].sort((a, b) => a - b)).toEqual([0, 300, 3600]);
  expect(levels.get(0)!._min.at!.getTime()).toBeGreaterThanOrEqual(
    now.getTime() - 2 * HOUR_MS,
  );
  expect(levels.get(300)!._min.at!.getTime()).toBeGreaterThanOrEqual(
    now.getTime() - DAY_MS - 2 * HOUR_MS,
  );
  expect(levels.get(3600)!._min.at!.getTime()).toBeGreaterThanOrEqual(
    now.getTime() - retentionDays * DAY_MS,
  );
});

test("downsampling keeps the peak of a bucket", async () => {
  const name = `${prefix}/q0`;
  const bucket = await gateway.db.queueSample.findFirst({
    where: { queueName: name, resolutionSeconds: 3600, messages: 99_999 },
  });
  expect(bucket).not.toBeNull();
  expect(bucket!.publishRate).toBeCloseTo(2.0);
});

test("downsampling twice changes nothing", async () => {
  const name = `${prefix}/q1`;
  const before = await gateway.db.queueSample.count({
    where: { queueName: name },
  });
  await gateway.history.downsample(new Date());
  const after = await gateway.db.queueSample.count({
    where: { queueName: name },
  });
  expect(after).toBe(before);
});

describe("Queue.history", () => {
  const account = uniqueName("historian");
  let queue: string;

  beforeAll(async () => {
    await createTestAccount(gateway, cleanup, account, ownerToken);
    const queued = await gql(
      gateway,
      `mutation ($a: String!) { createQueue(input: { account: $a, name: "sampled" }) { name } }`,
      { a: account },
      ownerToken,
    );
    queue = queued.data?.createQueue.name;
    cleanup.add(() =>
      brokerAdmin()
        .deleteQueue(queue)
        .catch(() => undefined),
    );
    cleanup.add(() =>
      gateway.db.queueSample.deleteMany({ where: { queueName: queue } }),
    );
  });

  test("guardian pass stores a raw sample", async () => {
    const guardian = new Guardian({
      ...guardianSettings(gateway.config),
      db: gateway.db,
      management: gateway.management,
      stats: gateway.stats,
      events: gateway.guardianEvents,
      logger: gateway.logger,
      history: gateway.history,
    });
    // The broker reports a new queue's size within a few seconds, and
    // until then the pass stores no sample for it.
    const samples = await eventually(async () => {
      await guardian.check(await gateway.stats.refresh());
      const found = await gateway.db.queueSample.findMany({
        where: { queueName: queue },
      });
      return found.length > 0 ? found : undefined;
    });
    expect(samples).toHaveLength(1);
    expect(samples[0]).toMatchObject({ resolutionSeconds: 0, messages: 0 });
  });

  test("returns points oldest first", async () => {
    const now = new Date();
    // An owner sees no samples from before the account was created.
    await gateway.db.account.update({
      where: { username: account },
      data: { createdAt: new Date(now.getTime() - 3 * DAY_MS) },
    });
    await feedSamples([queue], 2, new Date(now.getTime() - 60_000));
    await gateway.history.downsample(now);
    const response = await gql(
      gateway,
      `query ($n: String!, $from: DateTimeISO!) {
        queue(name: $n) { history(from: $from) { at resolutionSeconds messages } }
      }`,
      { n: queue, from: new Date(now.getTime() - 3 * DAY_MS).toISOString() },
      ownerToken,
    );
    expect(response.errors).toBeUndefined();
    const points = response.data?.queue.history as {
      at: string;
      resolutionSeconds: number;
    }[];
    const times = points.map((point) => Date.parse(point.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const resolutions = new Set(points.map((point) => point.resolutionSeconds));
    expect([...resolutions].sort((a, b) => a - b)).toEqual([0, 300, 3600]);
  });

  test("rejects a range that ends first", async () => {
    const response = await gql(
      gateway,
      `query ($n: String!, $from: DateTimeISO!, $to: DateTimeISO!) {
        queue(name: $n) { history(from: $from, to: $to) { at } }
      }`,
      { n: queue, from: "2026-01-02T00:00:00Z", to: "2026-01-01T00:00:00Z" },
      ownerToken,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  });

  test("rejects a year out of range", async () => {
    const response = await gql(
      gateway,
      `query ($n: String!, $from: DateTimeISO!) {
        queue(name: $n) { history(from: $from) { at } }
      }`,
      { n: queue, from: "0000-01-01T00:00:00Z" },
      ownerToken,
    );
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors?.[0].message).toContain("Invalid from");
  });
});
