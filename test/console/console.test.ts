// Drives the web console in headless Chromium against a real gateway:
// sign-in, an account, a queue bound to an exchange, recorded messages
// from samples/ in the inspector and the queue's size, and a guardian
// event. The console is built first when its build is missing or older
// than its sources. Set CONSOLE_SCREENSHOTS=1 to rewrite docs/console/*.png.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { chromium, type BrowserContext, type Page } from "playwright-core";

import { readRecording, publishRecording, type RecordedMessage } from "../../src/replay";
import type { Gateway } from "../../src/server";
import {
  Cleanup,
  brokerAdmin,
  eventually,
  gql,
  guardianFor,
  startGateway,
  testConfig,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "../harness";

const ROOT = path.resolve(__dirname, "../..");
const CONSOLE_DIR = path.join(ROOT, "dist/console");
const SCREENSHOT_DIR = path.join(ROOT, "docs/console");
const SAMPLE = path.join(ROOT, "samples/taskcluster_pulse_messages.json");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS === "1";

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

const cleanup = new Cleanup();
const consoleProblems: string[] = [];
let gateway: Gateway;
let context: BrowserContext;
let page: Page;
let baseUrl: string;

const email = uniqueEmail("console");
const account = uniqueName("console");
const queueName = "completed";
const queue = `queue/${account}/${queueName}`;
const exchange = `exchange/${account}/task-completed`;
let messages: RecordedMessage[];

jest.setTimeout(120_000);

beforeAll(async () => {
  if (consoleBuildIsStale()) {
    execFileSync("npm", ["run", "-s", "build:console"], { cwd: ROOT, stdio: "inherit" });
  }
  // Five task-completed messages of the recording, moved to an exchange of
  // this test's account so that no other test publishes to it.
  const recording = await readRecording(SAMPLE);
  messages = recording
    .filter((m) => m.exchange.endsWith("/task-completed"))
    .slice(0, 5)
    .map((m) => ({ ...m, exchange }));
  expect(messages).toHaveLength(5);

  gateway = await startGateway({
    consoleDir: CONSOLE_DIR,
    guardian: { ...testConfig().guardian, intervalMs: 1000 },
  });
  cleanup.add(() => gateway.stop());
  baseUrl = gateway.url.replace(/\/graphql$/, "");
  cleanup.add(() => brokerAdmin().deleteUser(account).catch(() => undefined));
  cleanup.add(() => brokerAdmin().deleteQueue(queue).catch(() => undefined));
  cleanup.add(async () => {
    const channel = await gateway.amqp.createChannel();
    await channel.deleteExchange(exchange);
    await channel.close();
  });

  const userDataDir = await mkdtemp(path.join(os.tmpdir(), "console-chromium-"));
  cleanup.add(() => rm(userDataDir, { recursive: true, force: true }));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: DESKTOP,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  cleanup.add(() => context.close());
  page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      consoleProblems.push(`${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => consoleProblems.push(`pageerror: ${error.message}`));
  page.on("dialog", (dialog) => void dialog.accept());
  if (SCREENSHOTS) await mkdir(SCREENSHOT_DIR, { recursive: true });
});

afterAll(() => cleanup.run());

/** Returns true when dist/console is missing or older than a source. */
function consoleBuildIsStale(): boolean {
  const index = path.join(CONSOLE_DIR, "index.html");
  if (!existsSync(index)) return true;
  const builtAt = statSync(index).mtimeMs;
  const sources = readdirSync(path.join(ROOT, "console"), { recursive: true })
    .map((name) => path.join(ROOT, "console", String(name)));
  return sources.some((file) => statSync(file).mtimeMs > builtAt);
}

/** Saves the page at desktop and phone width when CONSOLE_SCREENSHOTS=1. */
async function screenshot(name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}-desktop.png`), fullPage: true });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}-phone.png`), fullPage: true });
  await page.setViewportSize(DESKTOP);
}

/**
 * Waits until the gateway's live queue for the exchange is bound, or gone.
 * Once it is bound, published messages wait in it until its consumer
 * starts, so none is missed.
 */
async function liveQueueBound(bound: boolean): Promise<void> {
  await eventually(async () => {
    const bindings = await brokerAdmin().listBindings();
    const found = bindings.some((binding) =>
      binding.source === exchange && binding.destination !== queue);
    return found === bound ? true : undefined;
  });
}

/** Returns the page's width at phone width, to compare with the viewport. */
async function widthAtPhoneSize(): Promise<number> {
  await page.setViewportSize(PHONE);
  const width = (await page.evaluate("document.documentElement.scrollWidth")) as number;
  await page.setViewportSize(DESKTOP);
  return width;
}

async function openTab(id: string): Promise<void> {
  await page.click(`#tab-${id}`);
  await page.waitForSelector(`section.${id}:not([hidden])`);
}

test("root serves the console", async () => {
  const response = await fetch(`${baseUrl}/`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-security-policy")).toContain("default-src 'self'");
  expect(await response.text()).toContain("Pulse console");
});

test("API routes still answer", async () => {
  expect((await fetch(`${baseUrl}/healthz`)).status).toBe(200);
  const sandbox = await fetch(gateway.url, { headers: { accept: "text/html" } });
  expect(await sandbox.text()).toContain("Apollo");
});

test("console signs in and out", async () => {
  await page.goto(`${baseUrl}/`);
  await page.waitForSelector("#token");
  await screenshot("sign-in");

  // Keyboard only: the token field has focus, Tab reaches the button.
  await page.keyboard.insertText(await tokenFor(email));
  await page.keyboard.press("Tab");
  expect(await page.evaluate("document.activeElement.textContent")).toBe("Sign in");
  expect(await page.evaluate("getComputedStyle(document.activeElement).outlineStyle"))
    .toBe("solid");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#viewer-email");
  expect(await page.textContent("#viewer-email")).toBe(email);
  expect(await page.evaluate("sessionStorage.length")).toBe(1);

  await page.click("#viewer button");
  await page.waitForSelector("#token");
  expect(await page.evaluate("sessionStorage.length")).toBe(0);
});

test("rejected token shows the error", async () => {
  await page.fill("#token", "not-a-token");
  await page.click("form.signin button[type=submit]");
  await page.waitForSelector(".signin .status.error");
  expect(await page.textContent(".signin .status")).toMatch(/Sign-in failed/);
});

test("rejected saved token is removed", async () => {
  await page.evaluate(`sessionStorage.setItem("pulse-console-token", "stale")`);
  await page.reload();
  await page.waitForSelector(".signin .status.error");
  expect(await page.textContent(".signin .status")).toMatch(/Sign-in failed/);
  expect(await page.evaluate("sessionStorage.length")).toBe(0);
});

test("console creates account and queue", async () => {
  await page.fill("#token", await tokenFor(email));
  await page.click("form.signin button[type=submit]");
  await page.waitForSelector("#viewer-email");

  await openTab("accounts");
  await page.fill("#account-username", account);
  await page.click("form[aria-label='Create account'] button");
  await page.waitForSelector("#new-password");
  expect((await page.textContent("#new-password"))!.length).toBeGreaterThan(10);
  await page.waitForSelector(`[data-account='${account}']`);

  // The exchange must exist before a queue is bound to it, as on Pulse.
  await publishRecording(gateway.amqp, messages);

  await openTab("queues");
  await page.waitForSelector(`#queue-account option[value='${account}']`, { state: "attached" });
  await page.selectOption("#queue-account", account);
  await page.fill("#queue-name", queueName);
  await page.click("form[aria-label='Create queue'] button");
  const card = `[data-queue='${queue}']`;
  await page.waitForSelector(card);
  await page.fill(`${card} form input >> nth=0`, exchange);
  await page.click(`${card} form button`);
  await page.waitForSelector(`${card} .bindings code:text-is('${exchange}')`);

  const stored = await gql(gateway, `{ queue(name: "${queue}") { bindings { exchange } } }`,
    {}, await tokenFor(email));
  expect(stored.data?.queue.bindings).toEqual([{ exchange }]);
});

test("inspector shows published messages", async () => {
  const query = new URLSearchParams({ exchange, pattern: "#" });
  await page.goto(`${baseUrl}/?${query}#inspector`);
  await page.waitForSelector("section.inspector");
  expect(await page.textContent(".inspector .bindings")).toContain(exchange);
  // The console itself explains how to get messages on a local broker.
  expect(await page.textContent("#inspector-hint")).toContain(
    "npm run replay -- samples/taskcluster_pulse_messages.json",
  );

  await page.click("#inspector-start");
  await liveQueueBound(true);
  await publishRecording(gateway.amqp, messages);

  await page.locator("table.messages tr.message").nth(messages.length - 1).waitFor();
  const keys = await page.$$eval("table.messages td.routing-key", (cells) =>
    cells.map((cell) => cell.textContent));
  // Newest first: the table is the recording in reverse.
  expect(keys).toEqual(messages.map((m) => m.routingKey).reverse());

  await page.click("table.messages td.routing-key button >> nth=0");
  const detail = await page.textContent(".detail");
  expect(detail).toContain(messages[4].routingKey);
  expect(detail).toContain("Redelivered");
  expect(await page.$$(".detail .json details")).not.toHaveLength(0);
  expect(await widthAtPhoneSize()).toBeLessThanOrEqual(PHONE.width);
  await screenshot("inspector");
});

test("queue size grows in my queues", async () => {
  await openTab("queues");
  const figures = `[data-queue='${queue}'] .figures`;
  // The first replay ran before the queue was bound, so the queue contains
  // only the five messages of the second one.
  await page.locator(figures, { hasText: /^size 5 / }).waitFor({ timeout: 30_000 });
  expect(await page.getAttribute(`[data-queue='${queue}'] meter`, "value")).toBe("5");
  expect(await widthAtPhoneSize()).toBeLessThanOrEqual(PHONE.width);
  await screenshot("queues");
});

test("guardian feed shows warning", async () => {
  await openTab("guardian");
  await page.fill("#guardian-queue", queue);
  await page.click("form[aria-label='Filter guardian events'] button");
  await page.waitForSelector(".guardian .status:text('Watching')");

  const token = await tokenFor(email);
  const policy = await gql(gateway,
    `mutation { setQueuePolicy(name: "${queue}", warnSize: 2, deleteSize: 100) { warnSize } }`,
    {}, token);
  expect(policy.errors).toBeUndefined();
  const guardian = guardianFor(gateway);
  await eventually(async () => {
    await guardian.check(await gateway.stats.refresh());
    return (await page.$("tr.kind-warned")) ? true : undefined;
  }, 30_000, 500);
  expect(await page.textContent("tr.kind-warned")).toContain(queue);
});

test("purge and delete queue", async () => {
  await openTab("queues");
  const card = `[data-queue='${queue}']`;
  await page.click(`${card} button:text-is('Purge')`);
  await page
    .locator(`${card} .figures`, { hasText: /^size 0 / })
    .waitFor({ timeout: 30_000 });
  await page.click(`${card} button:text-is('Delete')`);
  await page.waitForSelector(card, { state: "detached" });
});

test("inspector filters on payload", async () => {
  await openTab("inspector");
  await page.click("#inspector-start");
  await liveQueueBound(false);
  await page.click("button:text-is('Clear')");
  // Not valid JSON, so the console sends it as a string.
  await page.fill("#inspector-path", "status.workerType");
  await page.fill("#inspector-equals", "gecko-t-osx-1010");
  await page.press("#inspector-equals", "Tab");
  expect(new URL(page.url()).searchParams.get("path")).toBe("status.workerType");

  await page.click("#inspector-start");
  await liveQueueBound(true);
  await publishRecording(gateway.amqp, messages);
  // Messages of one binding arrive in order, so once this last matching
  // message is shown, every earlier one has been filtered.
  await publishRecording(gateway.amqp, [messages[1]]);
  await page.locator("table.messages tr.message").nth(2).waitFor();

  const matching = messages.filter((m) =>
    (m.payload as { status: { workerType: string } }).status.workerType ===
      "gecko-t-osx-1010");
  const keys = await page.$$eval("table.messages td.routing-key", (cells) =>
    cells.map((cell) => cell.textContent));
  expect(keys).toEqual([messages[1], ...matching.reverse()].map((m) => m.routingKey));
});

test("inspector downloads messages as JSON", async () => {
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.click("button:text-is('Download JSON')"),
  ]);
  const saved = JSON.parse(await readFile((await download.path())!, "utf8"));
  expect(saved).toHaveLength(3);
  expect(saved[0].routingKey).toBe(messages[1].routingKey);
  expect(saved[0].payload).toEqual(messages[1].payload);
  await page.click("#inspector-start");
});

test("accounts manage owners and passwords", async () => {
  await openTab("accounts");
  const card = `[data-account='${account}']`;
  const other = uniqueEmail("other");
  await page.fill(`${card} input[type=email]`, other);
  await page.click(`${card} form button`);
  await page.waitForSelector(`${card} li:has-text('${other}')`);

  await page.click(`${card} button[aria-label='Remove owner ${other} from ${account}']`);
  await page.waitForSelector(`${card} li:has-text('${other}')`, { state: "detached" });

  // The page was loaded again since the account was created, so the first
  // password is no longer shown.
  expect(await page.$("#new-password")).toBeNull();
  await page.click(`${card} button:text-is('Rotate password')`);
  await page.waitForSelector("#new-password");
  const password = (await page.textContent("#new-password"))!;
  expect(password.length).toBeGreaterThan(10);
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl });
  await page.click(".secret button:text-is('Copy')");
  await page.waitForSelector(".secret button:text-is('Copied')");
  expect(await page.evaluate("navigator.clipboard.readText()")).toBe(password);

  await page.click(`${card} button:text-is('Delete account')`);
  await page.waitForSelector(card, { state: "detached" });
  expect(await brokerAdmin().userExists(account)).toBe(false);
});

test("inspector reports a missing exchange", async () => {
  await openTab("inspector");
  const missing = `exchange/${account}/missing`;
  await page.click(`button[aria-label='Remove binding ${exchange} #']`);
  await page.fill("#inspector-path", "");
  await page.fill("#inspector-exchange", missing);
  await page.click("form[aria-label='Add binding'] button");
  expect(new URL(page.url()).searchParams.getAll("exchange")).toEqual([missing]);

  await page.click("#inspector-start");
  await page.waitForSelector(".inspector .status.error");
  expect(await page.textContent(".inspector .status")).toContain(missing);
  expect(await page.textContent("#inspector-start")).toBe("Start");
});

test("console logs no errors", () => {
  expect(consoleProblems).toEqual([]);
});
