// The built gateway (dist/server/main.js, as `npm start` runs it) in a
// child process on 127.0.0.1, with its log lines watched for crashes,
// unhandled rejections and errors. Its inspector listens on 127.0.0.1 so
// that memory can be read after a full garbage collection.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";

import WebSocket from "ws";

/** This file is compiled to dist/bench/bench/soak/. */
const PROJECT_ROOT = path.resolve(__dirname, "../../../..");
const MAIN = path.join(PROJECT_ROOT, "dist", "server", "main.js");

/** pino's number for level "error". */
const PINO_ERROR = 50;

export interface GatewayMemory {
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
}

export interface GatewayExit {
  code: number | null;
  signal: string | null;
}

export class GatewayProcess {
  /** Exit before stop() was called. */
  crash: GatewayExit | null = null;
  /** Lines of standard error and log messages that mention an unhandled rejection. */
  readonly unhandled: string[] = [];
  /** Error-level log lines, counted by message. */
  readonly errorLogs = new Map<string, number>();
  /** The `err.message` of the first error-level line of each message. */
  readonly errorLogExamples = new Map<string, string>();
  readonly stderrTail: string[] = [];
  /** The inspector's WebSocket address, printed on standard error. */
  private inspectorUrl: string | null = null;
  private stopping = false;
  private readonly exited: Promise<GatewayExit>;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    followLines(child.stdout!, (line) => this.readLogLine(line));
    followLines(child.stderr!, (line) => this.readStderrLine(line));
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        if (!this.stopping) this.crash = { code, signal };
        resolve({ code, signal });
      });
    });
  }

  static async start(env: Record<string, string>): Promise<GatewayProcess> {
    if (!existsSync(MAIN)) {
      throw new Error(
        `The gateway build ${MAIN} is missing. Run \`npm run build\` ` +
          `(npm run soak does).`,
      );
    }
    const port = await freePort();
    // Port 0: the inspector picks a free port and prints its address.
    const child = spawn(process.execPath, ["--inspect=127.0.0.1:0", MAIN], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...env, HOST: "127.0.0.1", PORT: String(port) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const gateway = new GatewayProcess(child, port);
    await gateway.waitUntilReady(120_000);
    return gateway;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/graphql`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Reads the memory gauges of /metrics. */
  async memory(): Promise<GatewayMemory> {
    const response = await fetch(`http://127.0.0.1:${this.port}/metrics`, {
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    const gauge = (name: string): number => {
      const line = text.split("\n").find((l) => l.startsWith(`${name} `));
      if (!line) {
        throw new Error(
          `/metrics has no ${name} gauge; rebuild the gateway with npm run build.`,
        );
      }
      return Number(line.split(" ")[1]);
    };
    return {
      rssBytes: gauge("process_resident_memory_bytes"),
      heapUsedBytes: gauge("nodejs_heap_size_used_bytes"),
      heapTotalBytes: gauge("nodejs_heap_size_total_bytes"),
    };
  }

  /**
   * Runs a full garbage collection in the gateway through its inspector,
   * so that a memory reading shows what is still referenced rather than
   * what V8 has not collected yet.
   */
  async collectGarbage(): Promise<void> {
    if (!this.inspectorUrl) {
      throw new Error("The gateway printed no inspector address on standard error.");
    }
    const socket = new WebSocket(this.inspectorUrl);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once("open", () => resolve());
        socket.once("error", reject);
      });
      const done = new Promise<void>((resolve, reject) => {
        socket.on("message", (data) => {
          const reply = JSON.parse(String(data)) as { id?: number; error?: unknown };
          if (reply.id !== 1) return;
          if (reply.error) reject(new Error(JSON.stringify(reply.error)));
          else resolve();
        });
      });
      socket.send(JSON.stringify({ id: 1, method: "HeapProfiler.collectGarbage" }));
      await done;
    } finally {
      socket.close();
    }
  }

  /** Reads memory after a full garbage collection. */
  async collectedMemory(): Promise<GatewayMemory> {
    await this.collectGarbage();
    return this.memory();
  }

  /** Sends SIGTERM and waits for the exit, with SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 30_000): Promise<GatewayExit> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return this.exited;
    }
    this.stopping = true;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  private async waitUntilReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.crash) {
        throw new Error(
          `The gateway exited during start-up (${JSON.stringify(this.crash)}): ` +
            this.stderrTail.join("\n"),
        );
      }
      const response = await fetch(`http://127.0.0.1:${this.port}/readyz`, {
        signal: AbortSignal.timeout(5_000),
      }).catch(() => null);
      if (response?.status === 200) return;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    throw new Error(
      `The gateway was not ready within ${timeoutMs} ms; its /readyz ` +
        `names the dependency it waits for.`,
    );
  }

  private readLogLine(line: string): void {
    let entry: { level?: number; msg?: string; err?: { message?: string } };
    try {
      entry = JSON.parse(line);
    } catch {
      this.readStderrLine(line);
      return;
    }
    const message = entry.msg ?? "";
    if (/unhandled/i.test(message)) this.unhandled.push(line);
    if ((entry.level ?? 0) >= PINO_ERROR) {
      this.errorLogs.set(message, (this.errorLogs.get(message) ?? 0) + 1);
      if (!this.errorLogExamples.has(message)) {
        this.errorLogExamples.set(message, (entry.err?.message ?? "").slice(0, 2000));
      }
    }
  }

  private readStderrLine(line: string): void {
    const inspector = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/\S+)/.exec(line);
    if (inspector) {
      this.inspectorUrl = inspector[1];
      return;
    }
    if (/unhandled/i.test(line)) this.unhandled.push(line);
    this.stderrTail.push(line);
    if (this.stderrTail.length > 50) this.stderrTail.shift();
  }
}

function followLines(
  stream: NodeJS.ReadableStream,
  onLine: (line: string) => void,
): void {
  let buffered = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) if (line.trim()) onLine(line);
  });
}

/** Returns a port that was free a moment ago on 127.0.0.1. */
async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
