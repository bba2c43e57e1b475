import pino, { type Logger } from "pino";

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** Destination of log lines; standard output by default. */
  destination?: pino.DestinationStream;
}

/** Creates the gateway's one logger: JSON lines with a service name. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: "pulse-gateway",
      level: options.level ?? "info",
      redact: ["password", "*.password", "authorization", "*.authorization"],
    },
    options.destination,
  );
}

/**
 * Logs a repeated error at most once per interval per key, then logs how
 * many repeats it left out. Used for failures that recur on every poll or
 * retry, so a dead dependency does not flood the log.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; skipped: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 60_000,
  ) {}

  error(key: string, fields: object, message: string): void {
    this.log("error", key, fields, message);
  }

  warn(key: string, fields: object, message: string): void {
    this.log("warn", key, fields, message);
  }

  /** Forgets a key once its failure is over, so the next one logs at once. */
  clear(key: string): boolean {
    return this.last.delete(key);
  }

  private log(
    level: "error" | "warn",
    key: string,
    fields: object,
    message: string,
  ): void {
    const now = Date.now();
    const entry = this.last.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.skipped += 1;
      return;
    }
    const repeats = entry?.skipped ?? 0;
    this.last.set(key, { at: now, skipped: 0 });
    this.logger[level](
      repeats > 0 ? { ...fields, repeatsNotLogged: repeats } : fields,
      message,
    );
  }
}
