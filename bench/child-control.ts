// The child side of the IPC protocol: serves memory requests, stops on
// request and exits when the driver goes away, so that no child outlives
// a benchmark run.
import { Session } from "node:inspector";

import type { ChildMessage, MemoryReport, Request, RequestEnvelope } from "./ipc";
import { summarizeHeapProfile, type HeapProfileNode } from "./profile";

/** Time a child waits for its stop function before exiting anyway. */
const STOP_GRACE_MS = 15_000;

type Handler = (request: Request) => Promise<unknown>;

export function send(message: ChildMessage): void {
  process.send?.(message);
}

/** Reads this process's memory, after a full collection when gc is true. */
export function readMemory(gc: boolean): MemoryReport {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (gc && collect) {
    collect();
    collect();
  }
  const usage = process.memoryUsage();
  return {
    rss: usage.rss,
    heapUsed: usage.heapUsed,
    heapTotal: usage.heapTotal,
    external: usage.external,
    arrayBuffers: usage.arrayBuffers,
  };
}

let heapSession: Session | null = null;

function post<T>(method: string, params: object = {}): Promise<T> {
  const session = heapSession;
  if (!session) return Promise.reject(new Error("heap sampling is not running"));
  return new Promise((resolve, reject) => {
    session.post(method, params, (error, result) =>
      error ? reject(error) : resolve(result as T),
    );
  });
}

/**
 * Starts or stops V8's sampling heap profiler, the one behind
 * --heap-prof. Stopping first collects garbage, so the summary holds only
 * what was allocated since the start and is still reachable.
 */
async function heapSampling(action: "start" | "stop"): Promise<unknown> {
  if (action === "start") {
    heapSession = new Session();
    heapSession.connect();
    await post("HeapProfiler.enable");
    await post("HeapProfiler.startSampling", { samplingInterval: 4096 });
    return null;
  }
  await post("HeapProfiler.collectGarbage");
  const { profile } = await post<{ profile: { head: HeapProfileNode } }>(
    "HeapProfiler.stopSampling",
  );
  heapSession?.disconnect();
  heapSession = null;
  return summarizeHeapProfile(profile.head);
}

/**
 * Serves requests from the driver. `stop` runs once; the process then
 * exits with code 0, which lets --cpu-prof write its profile.
 */
export function serveControl(
  stop: () => Promise<void>,
  handle: Handler = async () => undefined,
): void {
  if (!process.send) {
    process.stderr.write("This script is started by bench/main.ts.\n");
    process.exit(2);
  }
  let stopping = false;
  const stopAndExit = (code: number) => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(code === 0 ? 3 : code), STOP_GRACE_MS).unref();
    stop().then(
      () => process.exit(code),
      (error: unknown) => {
        process.stderr.write(`stop failed: ${String(error)}\n`);
        process.exit(code === 0 ? 1 : code);
      },
    );
  };
  process.on("message", (envelope: RequestEnvelope) => {
    const { id, request } = envelope;
    if (request.type === "stop") {
      send({ type: "reply", id, result: null });
      stopAndExit(0);
      return;
    }
    let answer: Promise<unknown>;
    if (request.type === "memory") answer = Promise.resolve(readMemory(request.gc));
    else if (request.type === "heapSampling") answer = heapSampling(request.action);
    else answer = handle(request);
    answer.then(
      (result) => send({ type: "reply", id, result }),
      (error: unknown) =>
        send({ type: "reply", id, error: (error as Error).stack ?? String(error) }),
    );
  });
  // The driver exited or crashed: nothing may keep running.
  process.on("disconnect", () => stopAndExit(1));
}
