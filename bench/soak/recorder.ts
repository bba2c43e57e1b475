// Counts and latencies of the soak's operations, by kind and error code.

export interface KindSummary {
  count: number;
  succeeded: number;
  /** Failed operations by `extensions.code` of their first error. */
  errors: Record<string, number>;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

/** Code of a failure that never reached GraphQL, such as a refused connection. */
export const TRANSPORT_ERROR = "TRANSPORT_ERROR";

export class Recorder {
  private readonly latencies = new Map<string, number[]>();
  private readonly errors = new Map<string, Map<string, number>>();
  private readonly successes = new Map<string, number>();
  /** One example message per kind and code, to tell causes apart. */
  readonly examples = new Map<string, string>();

  record(kind: string, latencyMs: number, code: string | null, message = ""): void {
    list(this.latencies, kind).push(latencyMs);
    if (code === null) {
      this.successes.set(kind, (this.successes.get(kind) ?? 0) + 1);
      return;
    }
    const byCode = this.errors.get(kind) ?? new Map<string, number>();
    byCode.set(code, (byCode.get(code) ?? 0) + 1);
    this.errors.set(kind, byCode);
    const key = `${kind} ${code}`;
    if (!this.examples.has(key)) this.examples.set(key, message.slice(0, 300));
  }

  /** Operations by kind, sorted by kind. */
  byKind(): Record<string, KindSummary> {
    const kinds = [...this.latencies.keys()].sort();
    return Object.fromEntries(kinds.map((kind) => [kind, this.summarize(kind)]));
  }

  /** Failed operations by code, over every kind. */
  errorsByCode(): Record<string, number> {
    const totals: Record<string, number> = {};
    for (const byCode of this.errors.values()) {
      for (const [code, count] of byCode) totals[code] = (totals[code] ?? 0) + count;
    }
    return totals;
  }

  private summarize(kind: string): KindSummary {
    const sorted = [...(this.latencies.get(kind) ?? [])].sort((a, b) => a - b);
    return {
      count: sorted.length,
      succeeded: this.successes.get(kind) ?? 0,
      errors: Object.fromEntries(this.errors.get(kind) ?? []),
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      maxMs: sorted.length ? round(sorted[sorted.length - 1]) : null,
    };
  }
}

function list<K, V>(map: Map<K, V[]>, key: K): V[] {
  let values = map.get(key);
  if (!values) map.set(key, (values = []));
  return values;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], fraction: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil(fraction * sorted.length) - 1;
  return round(sorted[Math.max(0, rank)]);
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
