// schema.graphql is generated from the resolvers and committed; this fails
// when it is stale. Regenerate it with `npm run schema`.
import "reflect-metadata";

import { readFile } from "node:fs/promises";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { emitSchemaDefinitionFile } from "type-graphql";

import { buildGatewaySchema } from "../src/schema";
import { SCHEMA_FILE } from "../src/schema/emit";

test("schema.graphql matches the code", async () => {
  const folder = await mkdtemp(path.join(os.tmpdir(), "schema-"));
  try {
    const fresh = path.join(folder, "schema.graphql");
    await emitSchemaDefinitionFile(fresh, await buildGatewaySchema());
    const committed = await readFile(SCHEMA_FILE, "utf8");
    expect(committed).toBe(await readFile(fresh, "utf8"));
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
});
