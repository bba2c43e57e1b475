// Request limits: fields, aliases, depth, cost, body size, operations per
// socket, sockets per user and the per-user rate limit. Each rejection
// names the limit's setting. One gateway with small limits serves them all,
// and every test signs in as its own user so rate-limit buckets stay apart.
import "reflect-metadata";

import {
  getIntrospectionQuery,
  parse,
  validate,
  type GraphQLSchema,
} from "graphql";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

import { ConfigError, loadConfig, type Config } from "../src/config";
import { buildGatewaySchema, maxCostRule, maxDepthRule } from "../src/schema";
import type { Gateway } from "../src/server";
import { RateLimiter } from "../src/server/rate-limit";
import { mutationFieldCount } from "../src/server/request-checks";
import {
  Cleanup,
  Collected,
  errorCodes,
  gql,
  startGateway,
  testConfig,
  tokenFor,
  uniqueEmail,
  wsClient,
} from "./harness";

const LIMITS: Config["limits"] = {
  ...testConfig().limits,
  maxFields: 12,
  maxAliases: 3,
  maxDepth: 3,
  maxCost: 2000,
  costListSize: 10,
  maxBodyBytes: 4096,
  maxSubscriptionsPerSocket: 2,
  maxSocketsPerUser: 2,
  rateLimitBurst: 5,
  rateLimitPerSecond: 0.5,
};

const cleanup = new Cleanup();
let gateway: Gateway;
let schema: GraphQLSchema;

beforeAll(async () => {
  gateway = await startGateway({ limits: LIMITS });
  cleanup.add(() => gateway.stop());
  schema = await buildGatewaySchema();
});

afterAll(() => cleanup.run());

async function freshToken(): Promise<string> {
  return tokenFor(uniqueEmail("limits"));
}

function aliases(count: number): string {
  const fields = Array.from({ length: count }, (_, i) => `a${i}: viewer { email }`);
  return `{ ${fields.join(" ")} }`;
}

describe("document limits over HTTP", () => {
  test("aliases at the limit accepted", async () => {
    const response = await gql(gateway, aliases(LIMITS.maxAliases), {}, await freshToken());
    expect(response.errors).toBeUndefined();
    expect(Object.keys(response.data ?? {})).toHaveLength(LIMITS.maxAliases);
  });

  test("too many aliases rejected", async () => {
    const response = await gql(
      gateway,
      aliases(LIMITS.maxAliases + 1),
      {},
      await freshToken(),
    );
    expect(errorCodes(response)).toEqual(["GRAPHQL_VALIDATION_FAILED"]);
    expect(response.errors?.[0].message).toContain("MAX_ALIASES");
  });

  test("too many fields rejected", async () => {
    const fields = Array.from({ length: LIMITS.maxFields + 1 }, () => "email");
    const response = await gql(
      gateway,
      `{ viewer { ${fields.join(" ")} } }`,
      {},
      await freshToken(),
    );
    expect(errorCodes(response)).toEqual(["GRAPHQL_VALIDATION_FAILED"]);
    expect(response.errors?.[0].message).toContain("MAX_FIELDS");
  });

  test.each([
    ["__typename", "__typename"],
    ["viewer { email }", "viewer { email }"],
  ])("1000 × %s names MAX_FIELDS", async (_name, field) => {
    // Documents this size pass the body limit and the cost limit by
    // default, so graphql-js's own limits are what the field check meets.
    const roomy = await startGateway({
      limits: { ...testConfig().limits, maxCost: 100_000 },
    });
    cleanup.add(() => roomy.stop());

    const response = await gql(
      roomy,
      `{ ${Array(1000).fill(field).join(" ")} }`,
      {},
      await freshToken(),
    );

    expect(errorCodes(response)[0]).toBe("GRAPHQL_VALIDATION_FAILED");
    expect(response.errors?.[0].message).toContain("MAX_FIELDS");
  });

  test("depth at the limit accepted", async () => {
    const response = await gql(
      gateway,
      "{ accounts { queues { name } } }",
      {},
      await freshToken(),
    );
    expect(response.errors).toBeUndefined();
  });

  test("depth over the limit rejected", async () => {
    const response = await gql(
      gateway,
      "{ accounts { queues { bindings { queue } } } }",
      {},
      await freshToken(),
    );
    expect(errorCodes(response)).toEqual(["GRAPHQL_VALIDATION_FAILED"]);
    expect(response.errors?.[0].message).toContain("4 fields deep");
    expect(response.errors?.[0].message).toContain("MAX_QUERY_DEPTH");
  });

  test("cost over the limit rejected", async () => {
    const response = await gql(
      gateway,
      "{ guardianEvents(limit: 500) { kind queue account size threshold } }",
      {},
      await freshToken(),
    );
    expect(errorCodes(response)).toEqual(["GRAPHQL_VALIDATION_FAILED"]);
    expect(response.errors?.[0].message).toContain("MAX_QUERY_COST");
  });

  test("cost with a small limit accepted", async () => {
    const response = await gql(
      gateway,
      "{ guardianEvents(limit: 5) { kind queue account size threshold } }",
      {},
      await freshToken(),
    );
    expect(response.errors).toBeUndefined();
  });

  test("subscription over HTTP rejected", async () => {
    const response = await gql(
      gateway,
      "subscription { guardianEvents { kind } }",
      {},
      await freshToken(),
    );
    expect(response.status).toBe(400);
    expect(errorCodes(response)).toEqual(["BAD_REQUEST"]);
    expect(response.errors?.[0].message).toContain("graphql-ws");
  });

  test("oversized body gets JSON 413", async () => {
    const response = await fetch(gateway.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${await freshToken()}`,
      },
      body: JSON.stringify({
        query: `{ viewer { email } } #${"x".repeat(LIMITS.maxBodyBytes)}`,
      }),
    });
    const body = (await response.json()) as { errors: { message: string }[] };
    expect(response.status).toBe(413);
    expect(body.errors[0].message).toContain(`${LIMITS.maxBodyBytes} bytes`);
    expect(body.errors[0].message).toContain("MAX_BODY_BYTES");
  });

  test("oversized WebSocket message closes with 1009", async () => {
    const socket = new WebSocket(
      gateway.url.replace(/^http/, "ws"),
      "graphql-transport-ws",
    );
    await new Promise((resolve) => socket.once("open", resolve));
    const closed = new Promise<number>((resolve) =>
      socket.once("close", (code) => resolve(code)),
    );
    socket.send(
      JSON.stringify({
        type: "connection_init",
        payload: { padding: "x".repeat(LIMITS.maxBodyBytes) },
      }),
    );
    expect(await closed).toBe(1009);
  });

  test("invalid JSON body gets JSON 400", async () => {
    const response = await fetch(gateway.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${await freshToken()}`,
      },
      body: "{not json",
    });
    const body = (await response.json()) as { errors: { message: string }[] };
    expect(response.status).toBe(400);
    expect(body.errors[0].message).toMatch(/not valid JSON/);
  });
});

describe("document limits as rules", () => {
  function costErrors(query: string, limit: number): string[] {
    return validate(schema, parse(query), [maxCostRule(limit, 10)]).map(
      (error) => error.message,
    );
  }

  test("nested lists multiply the cost", () => {
    // accounts 1, queues 10, bindings 100, two fields of each binding 2000.
    const query = "{ accounts { queues { bindings { queue exchange } } } }";
    expect(costErrors(query, 2111)).toEqual([]);
    expect(costErrors(query, 2110)).toHaveLength(1);
  });

  test("fragments count at each spread", () => {
    const query =
      "{ a: viewer { ...V } b: viewer { ...V } } fragment V on Viewer { email isAdmin }";
    expect(costErrors(query, 6)).toEqual([]);
    expect(costErrors(query, 5)).toHaveLength(1);
  });

  test("introspection exempt from depth and cost", () => {
    const document = parse(getIntrospectionQuery());
    const errors = validate(schema, document, [maxDepthRule(3), maxCostRule(10, 10)]);
    expect(errors).toEqual([]);
  });

  test("exploding fragments rejected quickly", () => {
    // Each fragment spreads the next twice, so a naive count would visit
    // 2^40 fields.
    const levels = 40;
    const fragments = Array.from({ length: levels }, (_, i) =>
      i === levels - 1
        ? `fragment F${i} on Viewer { email }`
        : `fragment F${i} on Viewer { ...F${i + 1} ...F${i + 1} }`,
    );
    const query = `{ viewer { ...F0 } } ${fragments.join(" ")}`;
    const started = Date.now();
    expect(costErrors(query, 5000)).toHaveLength(1);
    const depth = validate(schema, parse(query), [maxDepthRule(12)]);
    expect(depth).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe("graphql-ws limits", () => {
  const GUARDIAN = "subscription { guardianEvents { kind } }";

  test("operations per socket limited", async () => {
    const client = wsClient(gateway, await freshToken());
    cleanup.add(() => client.dispose());
    const open = [new Collected(client, GUARDIAN), new Collected(client, GUARDIAN)];
    const extra = new Collected(client, GUARDIAN);
    await extra.until(() => extra.errors.length > 0);
    const error = extra.errors[0] as { message: string; extensions: { code: string } };
    expect(error.extensions.code).toBe("BAD_USER_INPUT");
    expect(error.message).toContain("MAX_SUBSCRIPTIONS_PER_SOCKET");
    expect(open.flatMap((c) => c.errors)).toEqual([]);
    for (const collected of open) collected.stop();
  });

  test("subscriptions per socket free up", async () => {
    const client = wsClient(gateway, await freshToken());
    cleanup.add(() => client.dispose());
    const first = new Collected(client, GUARDIAN);
    const second = new Collected(client, GUARDIAN);
    first.stop();
    second.stop();
    // Completing the first two leaves room for two more.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const third = new Collected(client, GUARDIAN);
    const fourth = new Collected(client, GUARDIAN);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(third.errors).toEqual([]);
    expect(fourth.errors).toEqual([]);
    third.stop();
    fourth.stop();
  });

  test("sockets per user limited", async () => {
    const token = await freshToken();
    const sockets = Array.from({ length: LIMITS.maxSocketsPerUser + 1 }, () =>
      openSocket(token),
    );
    for (const socket of sockets) cleanup.add(() => socket.client.dispose());
    const accepted = sockets.slice(0, -1);
    const subscriptions = accepted.map((s) => new Collected(s.client, GUARDIAN));
    await Promise.all(accepted.map((s) => s.connected));

    const rejected = sockets.at(-1)!;
    new Collected(rejected.client, GUARDIAN);
    const close = await rejected.closed;
    expect(close.code).toBe(4291);
    expect(close.reason).toContain("MAX_SOCKETS_PER_USER");
    expect(subscriptions.flatMap((c) => c.errors)).toEqual([]);

    // A closed socket frees its place.
    await accepted[0].client.dispose();
    await accepted[0].closed;
    const another = openSocket(token);
    cleanup.add(() => another.client.dispose());
    const subscription = new Collected(another.client, GUARDIAN);
    await another.connected;
    expect(subscription.errors).toEqual([]);
  });
});

/**
 * Creates a lazy graphql-ws client that connects on its first subscribe,
 * with promises for its acknowledgement and its close event.
 */
function openSocket(token: string) {
  let onConnected!: () => void;
  let onClosed!: (event: { code: number; reason: string }) => void;
  const connected = new Promise<void>((resolve) => (onConnected = resolve));
  const closed = new Promise<{ code: number; reason: string }>(
    (resolve) => (onClosed = resolve),
  );
  const client = createClient({
    url: gateway.url.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
    lazy: true,
    on: {
      connected: () => onConnected(),
      closed: (event) => onClosed(event as { code: number; reason: string }),
    },
  });
  return { client, connected, closed };
}

/** Builds a mutation of three aliased fields that fail and change nothing. */
function threeOwnerRemovals(): string {
  const fields = ["a", "b", "c"].map(
    (alias) =>
      `${alias}: removeAccountOwner(username: "missing-${alias}", ` +
      `email: "nobody@example.com") { username }`,
  );
  return `mutation { ${fields.join(" ")} }`;
}

describe("rate limit", () => {
  test("burst then 429 over HTTP", async () => {
    const token = await freshToken();
    for (let i = 0; i < LIMITS.rateLimitBurst; i += 1) {
      const response = await gql(gateway, "{ viewer { email } }", {}, token);
      expect(response.status).toBe(200);
    }
    const response = await fetch(gateway.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: "{ viewer { email } }" }),
    });
    const body = (await response.json()) as {
      errors: { message: string; extensions: { code: string } }[];
    };
    expect(response.status).toBe(429);
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(body.errors[0].extensions.code).toBe("RATE_LIMITED");
    expect(body.errors[0].message).toContain("RATE_LIMIT_PER_SECOND");
    expect(body.errors[0].message).toContain("RATE_LIMIT_BURST");
  });

  test("other users keep their bucket", async () => {
    const busy = await freshToken();
    for (let i = 0; i <= LIMITS.rateLimitBurst; i += 1) {
      await gql(gateway, "{ viewer { email } }", {}, busy);
    }
    const response = await gql(gateway, "{ viewer { email } }", {}, await freshToken());
    expect(response.status).toBe(200);
    expect(response.errors).toBeUndefined();
  });

  test("subscribe shares the HTTP bucket", async () => {
    const token = await freshToken();
    for (let i = 0; i < LIMITS.rateLimitBurst; i += 1) {
      await gql(gateway, "{ viewer { email } }", {}, token);
    }
    const client = wsClient(gateway, token);
    cleanup.add(() => client.dispose());
    const collected = new Collected(client, "subscription { guardianEvents { kind } }");
    await collected.until(() => collected.errors.length > 0);
    const error = collected.errors[0] as { message: string; extensions: { code: string } };
    expect(error.extensions.code).toBe("RATE_LIMITED");
    expect(error.message).toContain("RATE_LIMIT_BURST");
  });

  test("bucket refills at the set rate", () => {
    let nowMs = 0;
    const limiter = new RateLimiter(2, 4, () => nowMs);
    expect(limiter.take("a").allowed).toBe(true);
    expect(limiter.take("a").allowed).toBe(true);
    const rejected = limiter.take("a");
    expect(rejected.allowed).toBe(false);
    expect(rejected.retryAfterMs).toBe(250);
    expect(rejected.firstRejection).toBe(true);
    expect(limiter.take("a").firstRejection).toBe(false);
    nowMs = 250;
    expect(limiter.take("a").allowed).toBe(true);
    expect(limiter.take("a").allowed).toBe(false);
  });

  test("each mutation field costs a token", async () => {
    const token = await freshToken();
    const first = await gql(gateway, threeOwnerRemovals(), {}, token);
    expect(first.status).toBe(200);
    expect(errorCodes(first)).not.toContain("RATE_LIMITED");

    // The bucket has 5 tokens and the first request took 3. The second
    // takes one for itself, and its two further fields find only one left.
    const second = await gql(gateway, threeOwnerRemovals(), {}, token);

    expect(second.status).toBe(429);
    expect(errorCodes(second)).toEqual(["RATE_LIMITED"]);
    expect(second.errors![0].message).toContain("this operation has 3");
    // The rejected fields took nothing, so one token is left.
    const third = await gql(gateway, "{ viewer { email } }", {}, token);
    expect(third.status).toBe(200);
    const fourth = await gql(gateway, "{ viewer { email } }", {}, token);
    expect(fourth.status).toBe(429);
  });

  test("mutation-field 429 sends Retry-After", async () => {
    const token = await freshToken();
    await gql(gateway, threeOwnerRemovals(), {}, token);

    const response = await fetch(gateway.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: threeOwnerRemovals() }),
    });

    expect(response.status).toBe(429);
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0);
    const body = (await response.json()) as {
      errors: { extensions: Record<string, unknown> }[];
    };
    expect(body.errors[0].extensions.http).toBeUndefined();
  });

  test("mutation fields cost tokens over graphql-ws", async () => {
    const token = await freshToken();
    const client = wsClient(gateway, token);
    cleanup.add(() => client.dispose());
    const first = new Collected(client, threeOwnerRemovals());
    await first.until(() => first.completed || first.errors.length > 0);
    expect(first.errors).not.toContainEqual(
      expect.objectContaining({ extensions: { code: "RATE_LIMITED" } }),
    );

    const second = new Collected(client, threeOwnerRemovals());
    await second.until(() => second.errors.length > 0);

    const error = second.errors[0] as { message: string; extensions: { code: string } };
    expect(error.extensions.code).toBe("RATE_LIMITED");
    expect(error.message).toContain("this operation has 3");
  });

  test("mutation field count follows fragments", () => {
    const document = parse(`
      mutation {
        a: removeAccountOwner(username: "x", email: "a@example.com") { username }
        ... on Mutation { b: grantAdmin(email: "b@example.com") { email } }
        ...More
      }
      fragment More on Mutation {
        c: revokeAdmin(email: "c@example.com") { email }
        d: revokeAdmin(email: "d@example.com") { email }
      }
    `);
    const operation = document.definitions[0];
    if (operation.kind !== "OperationDefinition") throw new Error("no operation");
    expect(mutationFieldCount(document, operation)).toBe(4);
    const query = parse("{ a: viewer { email } b: viewer { email } }");
    const queryOperation = query.definitions[0];
    if (queryOperation.kind !== "OperationDefinition") throw new Error("no operation");
    expect(mutationFieldCount(query, queryOperation)).toBe(1);
  });

  test("take with a count is all or nothing", () => {
    const limiter = new RateLimiter(5, 1, () => 0);
    expect(limiter.take("a", 3).allowed).toBe(true);
    const rejected = limiter.take("a", 3);
    expect(rejected.allowed).toBe(false);
    expect(rejected.retryAfterMs).toBe(1000);
    expect(limiter.take("a", 2).allowed).toBe(true);
    expect(limiter.take("b", 50).allowed).toBe(true);
    expect(limiter.take("b").allowed).toBe(false);
  });

  test("zero rate turns the limiter off", () => {
    const limiter = new RateLimiter(1, 0);
    for (let i = 0; i < 10; i += 1) expect(limiter.take("a").allowed).toBe(true);
  });
});

describe("limit settings", () => {
  test.each([
    ["MAX_QUERY_DEPTH", "0"],
    ["MAX_QUERY_COST", "-1"],
    ["MAX_ALIASES", "many"],
    ["MAX_BODY_BYTES", "10"],
    ["MAX_SOCKETS_PER_USER", "1.5"],
    ["RATE_LIMIT_PER_SECOND", "fast"],
  ])("invalid %s stops start-up", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });

  test("settings reach the config", () => {
    const config = loadConfig({
      MAX_QUERY_DEPTH: "7",
      MAX_QUERY_COST: "99",
      RATE_LIMIT_PER_SECOND: "0.5",
      INTROSPECTION: "false",
      LANDING_PAGE: "off",
    });
    expect(config.limits.maxDepth).toBe(7);
    expect(config.limits.maxCost).toBe(99);
    expect(config.limits.rateLimitPerSecond).toBe(0.5);
    expect(config.introspection).toBe(false);
    expect(config.landingPage).toBe(false);
  });
});
