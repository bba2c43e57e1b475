// Hostile exchange names and patterns in the messages subscription: each
// subscribe either fails with a client error or streams, and none leaves
// a live queue behind on the broker.
import fc from "fast-check";

import type { Gateway } from "../../src/server";
import {
  Cleanup,
  Collected,
  declareTestExchange,
  startGateway,
  testConfig,
  tokenFor,
  uniqueEmail,
  uniqueName,
  wsClient,
} from "../harness";
import { hostileName, topicPattern } from "./arbitraries";

const cleanup = new Cleanup();
let gateway: Gateway;
let exchange: string;

beforeAll(async () => {
  gateway = await startGateway({
    limits: { ...testConfig().limits, rateLimitPerSecond: 0 },
  });
  cleanup.add(() => gateway.stop());
  exchange = `exchange/${uniqueName("live")}/names`;
  await declareTestExchange(gateway, cleanup, exchange);
});

afterAll(() => cleanup.run());

const CLIENT_ERRORS = ["BAD_USER_INPUT", "NOT_FOUND"];

async function liveQueues(): Promise<string[]> {
  const queues = await gateway.management.listQueues();
  return queues
    .map((queue) => queue.name)
    .filter((name) => name.startsWith(`queue/${gateway.config.gatewayAccount}/live/`))
    .sort();
}

test("hostile bindings fail cleanly or stream", async () => {
  const client = wsClient(gateway, await tokenFor(uniqueEmail("live")));
  cleanup.add(() => client.dispose());
  const before = await liveQueues();
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        hostileName,
        hostileName.map((name) => `exchange/${name}`),
        fc.constant(exchange),
      ),
      topicPattern,
      async (name, pattern) => {
        const collected = new Collected(
          client,
          `subscription ($e: String!, $p: String!) {
            messages(exchange: $e, routingKeyPattern: $p) { routingKey }
          }`,
          { e: name, p: pattern },
        );
        // A subscription to the real exchange streams and never ends, so
        // its wait times out, which is expected.
        const timeoutMs = name === exchange ? 500 : 5000;
        await collected
          .until(() => collected.errors.length > 0 || collected.completed, timeoutMs)
          .catch(() => undefined);
        collected.stop();
        for (const error of collected.errors as { extensions?: { code?: string } }[]) {
          expect(CLIENT_ERRORS).toContain(error.extensions?.code);
        }
      },
    ),
    { numRuns: 25 },
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(await liveQueues()).toEqual(before);
});
