// Migrations are written by hand, so this compares the migrated database
// with the models that the generated Prisma client embeds, table by table
// and column by column.
import { Client } from "pg";

import { applyMigrations, createDatabase, ensureDatabase } from "../../src/db";
import { createLogger } from "../../src/logger";
import { TEST_DATABASE_URL } from "../harness";

interface RuntimeField {
  name: string;
  kind: "scalar" | "object" | "enum";
  dbName?: string | null;
}

interface RuntimeModel {
  fields: RuntimeField[];
  dbName: string | null;
}

// The generated client embeds its data model and keeps it on every client
// instance as `_runtimeDataModel`, which Prisma does not type.
function runtimeModels(): Record<string, RuntimeModel> {
  const prisma = createDatabase(TEST_DATABASE_URL) as unknown as {
    _runtimeDataModel: { models: Record<string, RuntimeModel> };
  };
  return prisma._runtimeDataModel.models;
}

let client: Client;

beforeAll(async () => {
  const logger = createLogger({ level: "silent" });
  await ensureDatabase(TEST_DATABASE_URL, logger);
  await applyMigrations(TEST_DATABASE_URL, logger);
  client = new Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
});

afterAll(() => client.end());

async function databaseColumns(): Promise<Map<string, Set<string>>> {
  const result = await client.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = 'public' AND table_name <> '_prisma_migrations'`,
  );
  const tables = new Map<string, Set<string>>();
  for (const row of result.rows) {
    const columns = tables.get(row.table_name) ?? new Set<string>();
    columns.add(row.column_name);
    tables.set(row.table_name, columns);
  }
  return tables;
}

function modelColumns(): Map<string, Set<string>> {
  const tables = new Map<string, Set<string>>();
  for (const [name, model] of Object.entries(runtimeModels())) {
    const columns = model.fields
      .filter((field) => field.kind !== "object")
      .map((field) => field.dbName ?? field.name);
    tables.set(model.dbName ?? name, new Set(columns));
  }
  return tables;
}

test("tables match the models", async () => {
  const database = await databaseColumns();
  expect([...database.keys()].sort()).toEqual([...modelColumns().keys()].sort());
});

test("columns match the fields", async () => {
  const database = await databaseColumns();
  for (const [table, columns] of modelColumns()) {
    expect({ table, columns: [...(database.get(table) ?? [])].sort() }).toEqual({
      table,
      columns: [...columns].sort(),
    });
  }
});

test("migrations recorded like Prisma's", async () => {
  const result = await client.query(
    `SELECT migration_name, finished_at, applied_steps_count
       FROM "_prisma_migrations" ORDER BY migration_name`,
  );
  expect(result.rows.length).toBeGreaterThan(0);
  for (const row of result.rows) {
    expect(row.finished_at).not.toBeNull();
    expect(row.applied_steps_count).toBe(1);
  }
});
