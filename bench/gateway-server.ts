// Child process of the benchmark: the gateway itself, from the build that
// `npm start` runs (dist/, made by `npm run build`), on 127.0.0.1 and a
// free port, with the guardian off so that only the live-message path is
// measured.
import "reflect-metadata";

import { existsSync } from "node:fs";
import path from "node:path";

import { send, serveControl } from "./child-control";
import { BENCH_DATABASE_URL, BENCH_JWT_SECRET } from "./settings";

// The gateway finds its migrations relative to its own compiled files, so
// it runs from the project's build rather than from a copy compiled here.
// This file is compiled to dist/bench/bench/.
const PROJECT_BUILD = path.resolve(__dirname, "../..");

function loadGatewayBuild() {
  if (!existsSync(path.join(PROJECT_BUILD, "server", "gateway.js"))) {
    throw new Error(
      `The gateway build is missing from ${PROJECT_BUILD}. Run ` +
        `\`npm run build\` (npm run bench does).`,
    );
  }
  const load = (name: string): unknown => require(path.join(PROJECT_BUILD, name));
  return {
    config: load("config") as typeof import("../src/config"),
    logger: load("logger") as typeof import("../src/logger"),
    server: load("server") as typeof import("../src/server"),
  };
}

async function main(): Promise<void> {
  const build = loadGatewayBuild();
  const config = build.config.loadConfig({
    ...process.env,
    DATABASE_URL: BENCH_DATABASE_URL,
    JWT_SECRET: BENCH_JWT_SECRET,
    JWT_JWKS_URL: "",
    PORT: "0",
    HOST: "127.0.0.1",
    GUARDIAN_ENABLED: "false",
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "warn",
    // Every benchmark client signs in as one user with many sockets and
    // subscriptions, which the per-user limits exist to stop.
    MAX_SOCKETS_PER_USER: "100000",
    MAX_SUBSCRIPTIONS_PER_SOCKET: "100000",
    RATE_LIMIT_PER_SECOND: "0",
  });
  const logger = build.logger.createLogger({ level: config.logLevel });
  const gateway = new build.server.Gateway(config, logger);
  serveControl(() => gateway.stop());
  await gateway.start();
  await gateway.ready(60_000);
  send({ type: "ready", url: gateway.url });
}

if (require.main === module) {
  main().catch((error: unknown) => {
    send({ type: "failed", error: (error as Error).stack ?? String(error) });
    process.exit(1);
  });
}
