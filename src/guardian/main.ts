// Entry point of `npm run guardian`: the guardian alone, without the
// GraphQL server, for deployments that scale the gateway out. It takes
// the same advisory lock as the guardian inside each gateway, so only one
// of them acts at a time.
import { loadConfig } from "../config";
import { createDatabase } from "../db";
import { createLogger } from "../logger";
import { ManagementClient } from "../rabbitmq";
import { prepareDatabase } from "../server/dependencies";
import { StatsPoller } from "../stats";
import { GuardianEventLog } from "./events";
import { Guardian } from "./guardian";
import { QueueHistory } from "./history";
import { GuardianLock } from "./lock";
import { Notifier } from "./notifier";
import { guardianSettings } from "./settings";

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel }).child({
    component: "guardian",
  });
  const abort = new AbortController();
  await prepareDatabase(
    config.databaseUrl,
    logger,
    config.retryIntervalMs,
    abort.signal,
  );
  const db = createDatabase(config.databaseUrl);
  const management = new ManagementClient(config.managementUrl, config.vhost);
  const stats = new StatsPoller({
    management,
    intervalMs: config.guardian.intervalMs,
    maxBackoffMs: config.guardian.maxBackoffMs,
    logger,
  });
  const notifier = new Notifier(config.guardian.notifications, logger);
  const guardian = new Guardian({
    ...guardianSettings(config),
    db,
    management,
    stats,
    events: new GuardianEventLog(db, logger),
    logger,
    lock: new GuardianLock(config.databaseUrl, logger),
    notifier,
    history: new QueueHistory(db, config.guardian.historyRetentionDays),
  });
  guardian.start();
  stats.start();

  const shutdown = async (signal: NodeJS.Signals) => {
    logger.info({ signal }, "guardian shutting down");
    abort.abort();
    await stats.stop();
    await guardian.stop();
    notifier.close();
    await db.$disconnect();
    process.exit(0);
  };
  process.once("SIGINT", (signal) => void shutdown(signal));
  process.once("SIGTERM", (signal) => void shutdown(signal));
}

main().catch((error: unknown) => {
  process.stderr.write(`Guardian failed: ${(error as Error).stack}\n`);
  process.exit(1);
});
