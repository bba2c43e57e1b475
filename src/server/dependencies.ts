// Start-up of the gateway's dependencies. Failure messages name the missing
// dependency, the address tried and how to start it.
import { setTimeout as sleep } from "node:timers/promises";

import {
  applyMigrations,
  describeDatabase,
  ensureDatabase,
  isDatabaseUnavailable,
  socketErrorCode,
} from "../db";
import { RateLimitedLog, type Logger } from "../logger";
import { ManagementApiError, type ManagementClient } from "../rabbitmq";

/**
 * Explains why a running gateway cannot query PostgreSQL, for /readyz: the
 * same words as the start-up log when the server is unreachable, and the
 * failure otherwise, never Prisma's invocation text.
 */
export function describeDatabaseProbeError(
  databaseUrl: string,
  error: unknown,
): string {
  const { address } = describeDatabase(databaseUrl);
  if (!isDatabaseUnavailable(error)) {
    // Prisma's message opens with the invocation; its last line is the fact.
    const lines = String((error as Error).message).split("\n");
    const fact = lines.filter((line) => line.trim()).pop() ?? "no message";
    return (
      `PostgreSQL at ${address} did not answer "SELECT 1": ${fact.trim()}; ` +
      `check that it runs and that DATABASE_URL points at it.`
    );
  }
  const code = socketErrorCode(error);
  return (
    `PostgreSQL is not reachable at ${address}` +
    (code ? ` (${code})` : "") +
    `; ${START_POSTGRES}`
  );
}

const START_POSTGRES =
  "start it (`pg_ctlcluster <version> main start`, or " +
  "`docker compose up postgres`) or set DATABASE_URL.";

/** Explains a PostgreSQL failure with the address and a next step. */
export function describeDatabaseError(
  databaseUrl: string,
  error: unknown,
): string {
  const { name, address } = describeDatabase(databaseUrl);
  const code = (error as { code?: string }).code;
  const message = (error as Error).message;
  if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "ETIMEDOUT") {
    return `PostgreSQL is not reachable at ${address} (${code}); ${START_POSTGRES}`;
  }
  if (code === "28P01" || code === "28000") {
    return (
      `PostgreSQL at ${address} rejected the credentials in DATABASE_URL ` +
      `(${message}); fix the user or password there.`
    );
  }
  return `Preparing database "${name}" at ${address} failed: ${message}`;
}

/**
 * Creates the database if missing and applies pending migrations, retrying
 * every retryIntervalMs until it succeeds or the signal aborts.
 */
export async function prepareDatabase(
  databaseUrl: string,
  logger: Logger,
  retryIntervalMs: number,
  signal: AbortSignal,
): Promise<void> {
  await retryUntilDone(
    "database",
    async () => {
      await ensureDatabase(databaseUrl, logger);
      const applied = await applyMigrations(databaseUrl, logger);
      logger.info(
        { database: describeDatabase(databaseUrl).name, applied },
        "database ready",
      );
    },
    (error) => describeDatabaseError(databaseUrl, error),
    { logger, retryIntervalMs, signal },
  );
}

/**
 * Runs `step` until it succeeds or the signal aborts, logging each failure
 * with `describe` (at most once a minute per dependency) and waiting
 * retryIntervalMs between attempts.
 */
async function retryUntilDone(
  dependency: string,
  step: () => Promise<void>,
  describe: (error: unknown) => string,
  options: { logger: Logger; retryIntervalMs: number; signal: AbortSignal },
): Promise<void> {
  const { logger, retryIntervalMs, signal } = options;
  const errors = new RateLimitedLog(logger);
  for (let attempt = 1; !signal.aborted; attempt += 1) {
    try {
      await step();
      return;
    } catch (error) {
      errors.error(
        dependency,
        { err: error, attempt, retryInMs: retryIntervalMs },
        describe(error),
      );
      await sleep(retryIntervalMs, undefined, { signal }).catch(() => undefined);
    }
  }
}

/** Explains a management API failure with the address and a next step. */
export function describeManagementError(
  management: ManagementClient,
  error: unknown,
): string {
  if (error instanceof ManagementApiError && error.status === 401) {
    return (
      `The RabbitMQ management API at ${management.address} rejected the ` +
      `user and password in RABBITMQ_MANAGEMENT_URL; fix them there (the ` +
      `user needs the administrator tag).`
    );
  }
  return (error as Error).message;
}

/**
 * Checks the management API until it responds, logging what is missing and
 * how to fix it, so a missing plugin is reported at start-up.
 */
export async function waitForManagement(
  management: ManagementClient,
  logger: Logger,
  retryIntervalMs: number,
  signal: AbortSignal,
): Promise<void> {
  await retryUntilDone(
    "management",
    async () => {
      const overview = await management.overview();
      logger.info(
        {
          managementUrl: management.address,
          rabbitmqVersion: overview.rabbitmq_version,
        },
        "RabbitMQ management API reachable",
      );
    },
    (error) => describeManagementError(management, error),
    { logger, retryIntervalMs, signal },
  );
}
