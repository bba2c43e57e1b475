// Writes schema.graphql at the top of the repository: `npm run schema`.
import "reflect-metadata";

import path from "node:path";

import { emitSchemaDefinitionFile } from "type-graphql";

import { buildGatewaySchema } from "./build";

export const SCHEMA_FILE = path.resolve(__dirname, "../../schema.graphql");

async function main(): Promise<void> {
  const schema = await buildGatewaySchema();
  await emitSchemaDefinitionFile(SCHEMA_FILE, schema);
  process.stdout.write(`wrote ${SCHEMA_FILE}\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? error}\n`);
    process.exit(1);
  });
}
