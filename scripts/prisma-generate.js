#!/usr/bin/env node
// Generates the Prisma client into src/db/generated without the network.
// `prisma generate` never starts the schema engine, but the Prisma CLI tries
// to download one unless PRISMA_SCHEMA_ENGINE_BINARY names an existing file,
// so this points it at a file that exists when the caller has not.
const { spawnSync } = require("node:child_process");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const env = { ...process.env };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= __filename;
env.PRISMA_HIDE_UPDATE_MESSAGE ??= "1";

const cli = require.resolve("prisma/build/index.js", { paths: [root] });
const result = spawnSync(process.execPath, [cli, "generate"], {
  cwd: root,
  env,
  stdio: "inherit",
});
process.exit(result.status ?? 1);
