// A real broker restart (rabbitmqctl stop_app, then start_app) under an
// open graphql-ws socket: the gateway reconnects, declares and binds its
// live queue again, sends the subscriber a gap notice, and delivers new
// messages on the same socket. Needs rabbitmqctl on this machine, as CI
// and the README's set-up have it.
import { execFileSync } from "node:child_process";

import type { Gateway } from "../src/server";
import {
  brokerAdmin,
  Cleanup,
  Collected,
  eventually,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
  wsClient,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
// Durable, so that it survives the restart as Pulse's exchanges do.
const exchange = `exchange/${uniqueName("test-restart")}/v1`;

function rabbitmqctl(...args: string[]): void {
  execFileSync("rabbitmqctl", args, { stdio: "ignore", timeout: 120_000 });
}

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  const channel = await gateway.amqp.createChannel();
  await channel.assertExchange(exchange, "topic", { durable: true });
  await channel.close();
  cleanup.add(async () => {
    await gateway.amqp.waitForConnection(60_000);
    const channel = await gateway.amqp.createChannel();
    await channel.deleteExchange(exchange);
    await channel.close();
  });
});

afterAll(() => cleanup.run());

test("delivery resumes after a broker restart", async () => {
  const client = wsClient(gateway, await tokenFor(uniqueEmail()));
  cleanup.add(() => client.dispose());
  const feed = new Collected<{ messages: Record<string, any> }>(
    client,
    `subscription ($e: String!) {
       messages(exchange: $e, routingKeyPattern: "#") {
         routingKey payload notice { kind }
       }
     }`,
    { e: exchange },
  );
  await eventually(async () =>
    gateway.live.stats().subscribers === 1 ? true : undefined,
  );
  // The subscriber is counted before its queue exists, and a restart while
  // the queue is still opening ends the subscription instead of a GAP.
  const livePrefix = `queue/${gateway.config.gatewayAccount}/live/`;
  await eventually(async () => {
    const bindings = await brokerAdmin().listBindings();
    const bound = bindings.some(
      (b) => b.source === exchange && b.destination.startsWith(livePrefix),
    );
    return bound ? true : undefined;
  });

  rabbitmqctl("stop_app");
  rabbitmqctl("start_app");
  rabbitmqctl("await_startup");

  await feed.until(
    () => feed.events.some((e) => e.messages.notice?.kind === "GAP"),
    60_000,
  );
  await gateway.amqp.publish(exchange, "after.restart", Buffer.from('{"n":1}'));
  await feed.until(
    () => feed.events.some((e) => e.messages.routingKey === "after.restart"),
  );
  expect(feed.errors).toEqual([]);
  expect(feed.completed).toBe(false);
  feed.stop();
}, 120_000);
