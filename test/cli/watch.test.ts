// `npm run watch`: prints live events as JSON lines from a real gateway.
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
