// Compares the gateway's database with the broker at the end of the soak.
// Every account, queue and binding row must exist on the broker. Every
// user, queue and binding of the soak vhost with a Pulse name must have
// its row. The gateway's own user and its live queues are left out,
// because the gateway keeps no rows for them.
import { Client } from "pg";

import type { VhostAdmin } from "./environment";

export interface StateDiff {
  /** Rows without their broker object. */
  missingOnBroker: { accounts: string[]; queues: string[]; bindings: string[] };
  /** Broker objects without their row. */
  missingInDatabase: { users: string[]; queues: string[]; bindings: string[] };
  counts: {
    databaseAccounts: number;
    databaseQueues: number;
    databaseBindings: number;
    brokerUsers: number;
    brokerQueues: number;
    brokerBindings: number;
  };
}

interface Sets {
  accounts: Set<string>;
  queues: Set<string>;
  bindings: Set<string>;
}

const PULSE_QUEUE = /^queue\/([^/]+)\/./;

/** Compares the database at `databaseUrl` with the soak vhost. */
export async function diffState(
  databaseUrl: string,
  admin: VhostAdmin,
): Promise<StateDiff> {
  const database = await readDatabase(databaseUrl);
  const broker = await readBroker(admin);
  return {
    missingOnBroker: {
      accounts: minus(database.accounts, broker.accounts),
      queues: minus(database.queues, broker.queues),
      bindings: minus(database.bindings, broker.bindings),
    },
    missingInDatabase: {
      users: minus(broker.accounts, database.accounts),
      queues: minus(broker.queues, database.queues),
      bindings: minus(broker.bindings, database.bindings),
    },
    counts: {
      databaseAccounts: database.accounts.size,
      databaseQueues: database.queues.size,
      databaseBindings: database.bindings.size,
      brokerUsers: broker.accounts.size,
      brokerQueues: broker.queues.size,
      brokerBindings: broker.bindings.size,
    },
  };
}

/** True when the database and the broker agree. */
export function isEmptyDiff(diff: StateDiff): boolean {
  return [
    ...Object.values(diff.missingOnBroker),
    ...Object.values(diff.missingInDatabase),
  ].every((names) => names.length === 0);
}

async function readDatabase(databaseUrl: string): Promise<Sets> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const accounts = await client.query<{ username: string }>(
      `SELECT username FROM "Account"`,
    );
    const queues = await client.query<{ name: string }>(`SELECT name FROM "Queue"`);
    const bindings = await client.query<{
      name: string;
      exchange: string;
      routingKeyPattern: string;
    }>(
      `SELECT q.name, b.exchange, b."routingKeyPattern"
         FROM "Binding" b JOIN "Queue" q ON q.id = b."queueId"`,
    );
    return {
      accounts: new Set(accounts.rows.map((row) => row.username)),
      queues: new Set(queues.rows.map((row) => row.name)),
      bindings: new Set(
        bindings.rows.map((row) =>
          bindingKey(row.name, row.exchange, row.routingKeyPattern),
        ),
      ),
    };
  } finally {
    await client.end();
  }
}

async function readBroker(admin: VhostAdmin): Promise<Sets> {
  const isPulseQueue = (name: string) => {
    const match = PULSE_QUEUE.exec(name);
    return match !== null && match[1] !== admin.gatewayUser;
  };
  const queues = await admin.management.listQueues();
  const bindings = await admin.management.listBindings();
  return {
    accounts: new Set(await admin.usersWithRights()),
    queues: new Set(queues.map((q) => q.name).filter(isPulseQueue)),
    bindings: new Set(
      bindings
        .filter((b) => b.destination_type === "queue" && b.source !== "")
        .filter((b) => isPulseQueue(b.destination))
        .map((b) => bindingKey(b.destination, b.source, b.routing_key)),
    ),
  };
}

function bindingKey(queue: string, exchange: string, pattern: string): string {
  return `${queue} <- ${exchange} ${pattern}`;
}

function minus(a: Set<string>, b: Set<string>): string[] {
  return [...a].filter((value) => !b.has(value)).sort();
}

/**
 * Counts the guardian's events by kind, so that NOT_FOUND errors can be
 * set against the queues the guardian deleted or saw vanish.
 */
export async function countGuardianEvents(
  databaseUrl: string,
): Promise<Record<string, number>> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ kind: string; count: string }>(
      `SELECT "kind", count(*) AS "count" FROM "GuardianEvent" GROUP BY "kind" ORDER BY "kind"`,
    );
    return Object.fromEntries(rows.map((row) => [row.kind, Number(row.count)]));
  } finally {
    await client.end();
  }
}
