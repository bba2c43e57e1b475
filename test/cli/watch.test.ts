// `npm run watch`: prints live events as JSON lines from a real gateway.
import net from "node:net";

import { main } from "../../src/cli/watch";
import type { Gateway } from "../../src/server";
import {
  Cleanup,
  declareTestExchange,
  eventually,
  startGateway,
  TEST_SECRET,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "../harness";

const cleanup = new Cleanup();
let gateway: Gateway;
const exchange = `exchange/${uniqueName("test-watch")}/v1`;

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    streams: {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: (text: string) => err.push(text) },
    },
  };
}

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  await declareTestExchange(gateway, cleanup, exchange);
});

afterAll(() => cleanup.run());

test("prints one message as JSON", async () => {
  const output = capture();
  const token = await tokenFor(uniqueEmail("watcher"));
  const running = main(
    ["--exchange", exchange, "--pattern", "a.*", "--count", "1", "--url", gateway.url],
    { TOKEN: token },
    output.streams,
  );
  await eventually(async () =>
    gateway.live.stats().subscribers === 1 ? true : undefined,
  );
  await gateway.amqp.publish(exchange, "a.b", Buffer.from('{"x":1}'));
  expect(await running).toBe(0);
  expect(JSON.parse(output.out[0])).toMatchObject({
    exchange,
    routingKey: "a.b",
    payload: { x: 1 },
  });
});

test("signs a token with --email", async () => {
  const output = capture();
  const abort = new AbortController();
  const running = main(
    ["--guardian", "--url", gateway.url, "--email", uniqueEmail()],
    { JWT_SECRET: TEST_SECRET },
    output.streams,
    abort.signal,
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  abort.abort();
  expect(await running).toBe(0);
  expect(output.err).toEqual([]);
});

test("bad token reports the close code", async () => {
  const output = capture();
  const code = await main(
    ["--guardian", "--url", gateway.url],
    { TOKEN: "not-a-token" },
    output.streams,
  );
  expect(code).toBe(1);
  expect(output.err.join("")).toContain("4403");
});

test("missing exchange is a usage error", async () => {
  const output = capture();
  expect(await main([], { TOKEN: "t" }, output.streams)).toBe(2);
  expect(output.err.join("")).toContain("Missing --exchange");
});

test("missing token is explained", async () => {
  const output = capture();
  expect(await main(["--guardian"], {}, output.streams)).toBe(2);
  expect(output.err.join("")).toContain("npm run token");
});

test("invalid count is rejected", async () => {
  const output = capture();
  const code = await main(["--guardian", "--count", "0"], {}, output.streams);
  expect(code).toBe(2);
  expect(output.err.join("")).toContain('"0"');
});

test("stops at exactly --count", async () => {
  const output = capture();
  const token = await tokenFor(uniqueEmail("watcher"));
  const before = gateway.live.stats().subscribers;
  const running = main(
    ["--exchange", exchange, "--pattern", "count.*", "--count", "2", "--url", gateway.url],
    { TOKEN: token },
    output.streams,
  );
  await eventually(async () =>
    gateway.live.stats().subscribers === before + 1 ? true : undefined,
  );
  // Published together, so several events reach the socket in one read.
  await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      gateway.amqp.publish(exchange, "count.x", Buffer.from(JSON.stringify({ i }))),
    ),
  );
  expect(await running).toBe(0);
  expect(output.out).toHaveLength(2);
  expect(output.err).toEqual([]);
});

test("server error exits 1 with one line", async () => {
  const output = capture();
  const code = await main(
    ["--exchange", "exchange/no-such-exchange/v1", "--url", gateway.url],
    { TOKEN: await tokenFor(uniqueEmail("watcher")) },
    output.streams,
  );
  expect(code).toBe(1);
  expect(output.out).toEqual([]);
  expect(output.err).toHaveLength(1);
  expect(output.err[0]).toMatch(/^Subscription failed: NOT_FOUND: .*no-such-exchange/);
  expect(output.err[0].trimEnd()).not.toContain("\n");
});

test("invalid --url is a usage error", async () => {
  const output = capture();
  const code = await main(
    ["--guardian", "--url", "not a url"],
    { TOKEN: "t" },
    output.streams,
  );
  expect(code).toBe(2);
  expect(output.err).toHaveLength(1);
  expect(output.err[0]).toMatch(/^Invalid --url "not a url"/);
  expect(output.err[0].trimEnd()).not.toContain("\n");
});

test("non-http --url is a usage error", async () => {
  const output = capture();
  const code = await main(
    ["--guardian", "--url", "ftp://127.0.0.1/graphql"],
    { TOKEN: "t" },
    output.streams,
  );
  expect(code).toBe(2);
  expect(output.err.join("")).toContain("http, https, ws or wss");
});

test("unreachable --url exits 1 with one line", async () => {
  const output = capture();
  const closedPort = await new Promise<number>((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
  const code = await main(
    ["--guardian", "--url", `http://127.0.0.1:${closedPort}/graphql`],
    { TOKEN: await tokenFor(uniqueEmail("watcher")) },
    output.streams,
  );
  expect(code).toBe(1);
  expect(output.err).toHaveLength(1);
  expect(output.err[0]).toContain(`127.0.0.1:${closedPort}`);
  expect(output.err[0].trimEnd()).not.toContain("\n");
});
