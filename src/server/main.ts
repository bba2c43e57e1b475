// Entry point of `npm start`: loads the configuration, starts the gateway
// and stops it on SIGINT or SIGTERM, the first signal winning.
import "reflect-metadata";

import { ConfigError, loadConfig } from "../config";
import { createLogger } from "../logger";
import { Gateway } from "./gateway";

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
    const graceMs = config.shutdownGraceMs;
    logger.info({ signal, graceMs }, "shutting down");
    setTimeout(() => {
      logger.error(
        { graceMs },
        `shutdown timed out after ${graceMs} ms with work still pending; ` +
          "exiting with status 1 (raise SHUTDOWN_GRACE_MS to allow more time)",
      );
      process.exit(1);
    }, graceMs).unref();
    gateway.stop().then(
      () => {
        logger.info({ signal }, "shutdown complete");
        process.exit(0);
      },
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
