// The graphql-ws adapter: a message over MAX_BODY_BYTES closes its socket
// with 1009 and is logged through the gateway's logger, with nothing
// written to the console.
import WebSocket from "ws";

import { createLogger } from "../../src/logger";
import { Gateway } from "../../src/server";
import { Cleanup, testConfig, tokenFor, uniqueEmail } from "../harness";

const MAX_BODY_BYTES = 4096;

const cleanup = new Cleanup();
const logLines: Record<string, any>[] = [];
let gateway: Gateway;

beforeAll(async () => {
  const config = testConfig();
  const logger = createLogger({
    level: "warn",
    destination: { write: (line: string) => logLines.push(JSON.parse(line)) },
  });
  gateway = new Gateway(
    { ...config, limits: { ...config.limits, maxBodyBytes: MAX_BODY_BYTES } },
    logger,
  );
  await gateway.start();
  await gateway.ready(30_000);
  cleanup.add(() => gateway.stop());
});

afterAll(() => cleanup.run());

async function signedInSocket(): Promise<WebSocket> {
  const socket = new WebSocket(gateway.url.replace(/^http/, "ws"), "graphql-transport-ws");
  cleanup.add(() => socket.terminate());
  await new Promise((resolve) => socket.once("open", resolve));
  const token = await tokenFor(uniqueEmail());
  socket.send(
    JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }),
  );
  await new Promise((resolve) => socket.once("message", resolve));
  return socket;
}

test("oversized message closes 1009 quietly", async () => {
  const consoleError = jest.spyOn(console, "error");
  const consoleWarn = jest.spyOn(console, "warn");
  try {
    const socket = await signedInSocket();
    const closed = new Promise<number>((resolve) =>
      socket.once("close", (code) => resolve(code)),
    );
    socket.send(
      JSON.stringify({
        id: "1",
        type: "subscribe",
        payload: { query: `{ viewer { email } } # ${"x".repeat(MAX_BODY_BYTES)}` },
      }),
    );
    expect(await closed).toBe(1009);
    // The server handles the error after the client sees the close.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(consoleError).not.toHaveBeenCalled();
    expect(consoleWarn).not.toHaveBeenCalled();
  } finally {
    consoleError.mockRestore();
    consoleWarn.mockRestore();
  }
});

test("oversized message logged as a warning", async () => {
  const line = logLines.find((entry) => entry.err?.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH");
  expect(line?.level).toBe(40);
  expect(line?.err.message).toMatch(/Max payload size exceeded/);
});

test("socket under the limit still works", async () => {
  const socket = await signedInSocket();
  const reply = new Promise<string>((resolve) =>
    socket.once("message", (data) => resolve(String(data))),
  );
  socket.send(
    JSON.stringify({ id: "2", type: "subscribe", payload: { query: "{ viewer { email } }" } }),
  );
  expect(JSON.parse(await reply)).toMatchObject({ id: "2", type: "next" });
});
