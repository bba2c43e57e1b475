// Messages between the benchmark driver and its child processes (the two
// servers and the publisher), sent over Node's IPC channel.

export interface MemoryReport {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export interface PublishRequest {
  type: "publish";
  exchange: string;
  routingKey: string;
  count: number;
  /** Messages per second, or 0 to publish as fast as the socket takes them. */
  ratePerSecond: number;
  probe: boolean;
}

export interface PublishResult {
  count: number;
  /** Monotonic microseconds (payload.nowUs) of the first and last publish. */
  firstUs: number;
  lastUs: number;
}

export type Request =
  | { type: "memory"; gc: boolean }
  | { type: "heapSampling"; action: "start" | "stop" }
  | { type: "stop" }
  | PublishRequest;

export interface RequestEnvelope {
  id: number;
  request: Request;
}

export type ChildMessage =
  | { type: "ready"; url: string }
  | { type: "failed"; error: string }
  | { type: "reply"; id: number; result?: unknown; error?: string };
