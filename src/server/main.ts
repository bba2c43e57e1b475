// Entry point of `npm start`: loads the configuration, starts the gateway
// and stops it on SIGINT or SIGTERM, the first signal winning.
import "reflect-metadata";

import { ConfigError, loadConfig } from "../config";
import { createLogger } from "../logger";
import { Gateway } from "./gateway";

/** Time allowed for draining before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`Invalid configuration: ${error.message}\n`);
    process.exit(2);
  }
  const logger = createLogger({ level: config.logLevel });
  const gateway = new Gateway(config, logger);

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    setTimeout(() => {
      logger.error({ graceMs: SHUTDOWN_GRACE_MS }, "shutdown timed out");
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    gateway.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);

  await gateway.start();
}

main().catch((error: unknown) => {
  process.stderr.write(`Gateway failed to start: ${(error as Error).stack}\n`);
  process.exit(1);
});
