// The driver side of the IPC protocol: starts a child process, waits for
// it to be ready, sends requests and stops it, or kills it once its time
// is up.
import { fork, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";

import type { ChildMessage, MemoryReport, Request } from "./ipc";

export interface ChildOptions {
  /** Compiled script to run. */
  script: string;
  /** File receiving the child's standard output and error. */
  logFile: string;
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class ChildHandle {
  readonly process: ChildProcess;
  readonly logFile: string;
  /** Address sent in the child's ready message ("" for the publisher). */
  url = "";
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private exitCode: number | null | undefined = undefined;
  private readonly exited: Promise<number | null>;

  private constructor(options: ChildOptions) {
    this.logFile = options.logFile;
    const log = openSync(options.logFile, "a");
    this.process = fork(options.script, [], {
      execArgv: options.execArgv ?? [],
      env: options.env ?? process.env,
      stdio: ["ignore", log, log, "ipc"],
    });
    closeSync(log);
    this.exited = new Promise((resolve) => {
      this.process.once("exit", (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        for (const [id, pending] of this.pending) {
          clearTimeout(pending.timer);
          pending.reject(
            new Error(
              `${options.script} exited (code ${code}, signal ${signal}) ` +
                `before answering request ${id}; see ${this.logFile}.`,
            ),
          );
        }
        this.pending.clear();
        resolve(code);
      });
    });
    this.process.on("message", (message: ChildMessage) => {
      if (message.type !== "reply") return;
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      clearTimeout(pending.timer);
      if (message.error) pending.reject(new Error(message.error));
      else pending.resolve(message.result);
    });
  }

  /** Forks the script and resolves once it reports ready. */
  static async start(options: ChildOptions): Promise<ChildHandle> {
    const child = new ChildHandle(options);
    const timeoutMs = options.readyTimeoutMs ?? 90_000;
    try {
      child.url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`not ready after ${timeoutMs} ms`)),
          timeoutMs,
        );
        child.process.on("message", (message: ChildMessage) => {
          if (message.type === "ready") {
            clearTimeout(timer);
            resolve(message.url);
          } else if (message.type === "failed") {
            clearTimeout(timer);
            reject(new Error(message.error));
          }
        });
        void child.exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`exited with code ${code} before it was ready`));
        });
      });
    } catch (error) {
      child.kill();
      throw new Error(
        `${options.script} failed to start: ${(error as Error).message}\n` +
          `Last lines of ${options.logFile}:\n${tail(options.logFile, 20)}`,
      );
    }
    return child;
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  request<T>(request: Request, timeoutMs = 60_000): Promise<T> {
    if (!this.running) {
      return Promise.reject(new Error(`child ${this.pid} is not running`));
    }
    const id = this.nextId;
    this.nextId += 1;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`request ${request.type} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (value) => resolve(value as T),
        reject,
        timer,
      });
      this.process.send({ id, request });
    });
  }

  /** Memory as the child's own process.memoryUsage() reports it. */
  memory(gc: boolean): Promise<MemoryReport> {
    return this.request<MemoryReport>({ type: "memory", gc });
  }

  /** Resident set size read from /proc, which does not disturb the child. */
  rssBytes(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    if (!match) throw new Error(`no VmRSS in /proc/${this.pid}/status`);
    return Number(match[1]) * 1024;
  }

  /** Asks the child to stop, then kills it if it has not exited in time. */
  async stop(timeoutMs = 20_000): Promise<number | null> {
    if (!this.running) return this.exitCode ?? null;
    await this.request({ type: "stop" }, 5_000).catch(() => undefined);
    const timer = setTimeout(() => this.kill(), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  kill(): void {
    if (this.running) this.process.kill("SIGKILL");
  }
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
