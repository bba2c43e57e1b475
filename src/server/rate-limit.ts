// A token bucket per user. Each HTTP request and each graphql-ws subscribe
// message takes one token, and tokens come back at a steady rate up to the
// bucket's size. So a user may send a burst, then the steady rate.

export interface RateLimitDecision {
  allowed: boolean;
  /** Time until one token is back, when the request was rejected. */
  retryAfterMs: number;
  /**
   * True for the first rejection after an allowed request, so callers can
   * log once per episode rather than once per rejected request.
   */
  firstRejection: boolean;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
  rejecting: boolean;
}

/** Buckets kept before full ones are dropped, to bound memory. */
const PRUNE_ABOVE_BUCKETS = 10_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  /**
   * @param burst bucket size, in requests (RATE_LIMIT_BURST)
   * @param perSecond tokens added back per second (RATE_LIMIT_PER_SECOND);
   *   0 turns the limiter off
   */
  constructor(
    readonly burst: number,
    readonly perSecond: number,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.perSecond > 0;
  }

  /**
   * Takes `count` tokens from the key's bucket if it has that many, else
   * none. A count above the bucket's size takes the whole bucket, so that
   * a full bucket always lets a request through.
   */
  take(key: string, count = 1): RateLimitDecision {
    if (!this.enabled) {
      return { allowed: true, retryAfterMs: 0, firstRejection: false };
    }
    const cost = Math.min(count, this.burst);
    const nowMs = this.now();
    const bucket = this.refill(key, nowMs);
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost;
      bucket.rejecting = false;
      return { allowed: true, retryAfterMs: 0, firstRejection: false };
    }
    const retryAfterMs = Math.ceil(
      ((cost - bucket.tokens) / this.perSecond) * 1000,
    );
    const firstRejection = !bucket.rejecting;
    bucket.rejecting = true;
    return { allowed: false, retryAfterMs, firstRejection };
  }

  private refill(key: string, nowMs: number): Bucket {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= PRUNE_ABOVE_BUCKETS) this.prune(nowMs);
      bucket = { tokens: this.burst, updatedMs: nowMs, rejecting: false };
      this.buckets.set(key, bucket);
      return bucket;
    }
    const elapsedSeconds = Math.max(0, nowMs - bucket.updatedMs) / 1000;
    bucket.tokens = Math.min(
      this.burst,
      bucket.tokens + elapsedSeconds * this.perSecond,
    );
    bucket.updatedMs = nowMs;
    return bucket;
  }

  // A bucket that has refilled completely is the same as no bucket.
  private prune(nowMs: number): void {
    for (const [key, bucket] of this.buckets) {
      const elapsedSeconds = (nowMs - bucket.updatedMs) / 1000;
      if (bucket.tokens + elapsedSeconds * this.perSecond >= this.burst) {
        this.buckets.delete(key);
      }
    }
  }
}

/** Builds the message of a rejected request, naming both settings. */
export function rateLimitMessage(limiter: RateLimiter, retryAfterMs: number): string {
  return (
    `Too many requests: the limit is ${limiter.perSecond} per second ` +
    `after a burst of ${limiter.burst} (RATE_LIMIT_PER_SECOND, ` +
    `RATE_LIMIT_BURST); retry in ${Math.ceil(retryAfterMs / 1000)} s.`
  );
}
