import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";

import express from "express";

import { mountConsole } from "../../src/server/console";

let dir: string;
let server: Server;
let baseUrl: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "console-route-"));
  const app = express();
  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  mountConsole(app, dir);
  server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

test("missing build explains npm run build", async () => {
  const response = await fetch(`${baseUrl}/`);
  expect(response.status).toBe(404);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
  expect(await response.text()).toContain("npm run build");
});

test("built console is served", async () => {
  await writeFile(path.join(dir, "index.html"), "<!doctype html><title>c</title>");
  await mkdir(path.join(dir, "assets"));
  await writeFile(path.join(dir, "assets", "index-abc.js"), "export {};");

  const page = await fetch(`${baseUrl}/`);
  expect(page.status).toBe(200);
  expect(page.headers.get("cache-control")).toBe("no-cache");
  expect(page.headers.get("content-security-policy")).toContain("connect-src 'self'");
  expect(await page.text()).toContain("<title>c</title>");

  const asset = await fetch(`${baseUrl}/assets/index-abc.js`);
  expect(asset.status).toBe(200);
  expect(asset.headers.get("cache-control")).toContain("immutable");
});

test("earlier routes keep precedence", async () => {
  await writeFile(path.join(dir, "healthz"), "static file");
  const response = await fetch(`${baseUrl}/healthz`);
  expect(await response.json()).toEqual({ status: "ok" });
});
