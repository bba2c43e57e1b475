// The main job end to end, on the real broker and database. A user creates
// an account and a queue bound to Taskcluster's task-completed exchange,
// subscribes to the same binding and replays recorded messages. Then the
// queue's statistics show them, and the guardian deletes the queue past its
// threshold.
import path from "node:path";

import type { Client } from "graphql-ws";

import { readRecording, publishRecording } from "../src/replay";
import type { Gateway } from "../src/server";
import {
  brokerAdmin,
  Cleanup,
  Collected,
  eventually,
  gql,
  guardianFor,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
  wsClient,
} from "./harness";

const SAMPLES = path.resolve(__dirname, "../samples");
const COMPLETED = "exchange/taskcluster-queue/v1/task-completed";

const cleanup = new Cleanup();
let gateway: Gateway;
let client: Client;
let token: string;
const account = uniqueName("e2e");
const queueName = `queue/${account}/completed`;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  token = await tokenFor(uniqueEmail("owner"));
  client = wsClient(gateway, token);
  cleanup.add(() => client.dispose());
  const channel = await gateway.amqp.createChannel();
  await channel.assertExchange(COMPLETED, "topic", { durable: true });
  await channel.close();
});

afterAll(async () => {
  await brokerAdmin().deleteQueue(queueName).catch(() => undefined);
  await brokerAdmin().deleteUser(account).catch(() => undefined);
  await cleanup.run();
});

test("main job: replay, live messages, stats, guardian delete", async () => {
  const created = await gql(
    gateway,
    `mutation ($input: CreateAccountInput!) {
       createAccount(input: $input) { account { username owners } password }
     }`,
    { input: { username: account } },
    token,
  );
  expect(created.errors).toBeUndefined();
  expect(created.data!.createAccount.password.length).toBeGreaterThan(16);

  const queue = await gql(
    gateway,
    `mutation ($input: CreateQueueInput!) { createQueue(input: $input) { name } }`,
    { input: { account, name: "completed" } },
    token,
  );
  expect(queue.data?.createQueue.name).toBe(queueName);

  const binding = await gql(
    gateway,
    `mutation ($input: BindingInput!) {
       createBinding(input: $input) { queue exchange routingKeyPattern }
     }`,
    { input: { queue: queueName, exchange: COMPLETED, routingKeyPattern: "#" } },
    token,
  );
  expect(binding.data?.createBinding).toEqual({
    queue: queueName,
    exchange: COMPLETED,
    routingKeyPattern: "#",
  });

  const live = new Collected<{ messages: Record<string, any> }>(
    client,
    `subscription ($exchange: String!) {
       messages(exchange: $exchange, routingKeyPattern: "#") {
         exchange routingKey ccRoutingKeys payload redelivered
       }
     }`,
    { exchange: COMPLETED },
  );
  const guardianFeed = new Collected<{ guardianEvents: Record<string, any> }>(
    client,
    `subscription ($queue: String) {
       guardianEvents(queue: $queue) { queue kind size threshold at }
     }`,
    { queue: queueName },
  );
  await eventually(async () =>
    gateway.live.stats().subscribers >= 1 ? true : undefined,
  );

  const recording = await readRecording(
    path.join(SAMPLES, "taskcluster_pulse_messages.json"),
  );
  const expectedKeys = recording
    .filter((message) => message.exchange === COMPLETED)
    .map((message) => message.routingKey)
    .sort();
  expect(expectedKeys).toHaveLength(13);
  await publishRecording(gateway.amqp, recording);

  await live.until(() => live.events.length >= 13);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  expect(live.events).toHaveLength(13);
  const keys = live.events.map((event) => event.messages.routingKey).sort();
  expect(keys).toEqual(expectedKeys);
  expect(live.events.every((e) => e.messages.exchange === COMPLETED)).toBe(true);
  expect(live.events[0].messages.payload).toHaveProperty("status");
  live.stop();

  const stats = await eventually(async () => {
    const response = await gql(
      gateway,
      `query ($name: String!) {
         queue(name: $name) { name messages messagesReady bindings { exchange } }
       }`,
      { name: queueName },
      token,
    );
    return response.data?.queue.messages === 13 ? response.data.queue : undefined;
  });
  expect(stats.messagesReady).toBe(13);
  expect(stats.bindings).toEqual([{ exchange: COMPLETED }]);

  // A per-queue delete threshold of 10, so that this guardian deletes no
  // other queue on the broker; the global thresholds keep their defaults.
  await gateway.db.queue.update({
    where: { name: queueName },
    data: { deleteSize: 10 },
  });
  const guardian = guardianFor(gateway);
  guardian.start();
  cleanup.add(() => guardian.stop());
  await gateway.stats.refresh();

  await guardianFeed.until(() =>
    guardianFeed.events.some((e) => e.guardianEvents.kind === "DELETED"),
  );
  const deleted = guardianFeed.events.find(
    (e) => e.guardianEvents.kind === "DELETED",
  )!.guardianEvents;
  expect(deleted).toMatchObject({ queue: queueName, size: 13, threshold: 10 });
  guardianFeed.stop();

  const gone = await gql(
    gateway,
    `query ($name: String!) { queue(name: $name) { name } }`,
    { name: queueName },
    token,
  );
  expect(gone.errors?.[0].extensions?.code).toBe("NOT_FOUND");
});
