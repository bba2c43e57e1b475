// Message bodies of the benchmark: 1 KiB of JSON carrying a sequence
// number and the publish time, so that clients can count losses and
// measure latency.

/** Size in bytes of every message body the publisher sends. */
export const PAYLOAD_BYTES = 1024;

/** Body of a benchmark message as the clients receive it. */
export interface BenchPayload {
  seq: number;
  /** Publish time in microseconds on the monotonic clock (see nowUs). */
  sentUs: number;
  /** Set on readiness probes, which the measures do not count. */
  probe?: boolean;
  pad: string;
}

/**
 * Returns microseconds on CLOCK_MONOTONIC, which process.hrtime reads on
 * Linux. Every process of the machine shares that clock, so a time taken
 * by the publisher process can be compared with one taken by the clients.
 */
export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

const paddings = new Map<number, string>();

/** Encodes a body of exactly PAYLOAD_BYTES bytes. */
export function encodePayload(
  seq: number,
  sentUs: number,
  probe = false,
): Buffer {
  const head = probe
    ? `{"probe":true,"seq":${seq},"sentUs":${sentUs},"pad":"`
    : `{"seq":${seq},"sentUs":${sentUs},"pad":"`;
  const tail = `"}`;
  const padLength = Math.max(0, PAYLOAD_BYTES - head.length - tail.length);
  let pad = paddings.get(padLength);
  if (pad === undefined) {
    pad = "x".repeat(padLength);
    paddings.set(padLength, pad);
  }
  return Buffer.from(head + pad + tail, "utf8");
}

/** Returns the payload as a benchmark body, or null for anything else. */
export function asBenchPayload(payload: unknown): BenchPayload | null {
  if (typeof payload !== "object" || payload === null) return null;
  const candidate = payload as Partial<BenchPayload>;
  if (typeof candidate.seq !== "number") return null;
  if (typeof candidate.sentUs !== "number") return null;
  return candidate as BenchPayload;
}
