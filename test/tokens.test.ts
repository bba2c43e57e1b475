// Hostile tokens against a gateway that reads its keys from a JWKS served
// on 127.0.0.1: each is rejected over HTTP (UNAUTHENTICATED) and over
// graphql-ws (close 4403), and the mutation it carried changes nothing.
// The JWKS server rotates keys to check jose's cache and refetch.
import http from "node:http";
import type { AddressInfo } from "node:net";

import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from "jose";

import { ConfigError, loadConfig, type Config } from "../src/config";
import type { Gateway } from "../src/server";
import {
  Cleanup,
  errorCodes,
  gql,
  startGateway,
  testConfig,
  uniqueEmail,
  uniqueName,
  wsClient,
} from "./harness";

const ISSUER = "https://issuer.example.com";
const AUDIENCE = "pulse-gateway-test";
const MAX_TOKEN_AGE_SECONDS = 3600;

interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

/** A JWKS endpoint whose key list a test can replace, counting fetches. */
class JwksServer {
  keys: SigningKey[] = [];
  fetches = 0;
  private readonly server = http.createServer((_req, res) => {
    this.fetches += 1;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ keys: this.keys.map((key) => key.jwk) }));
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/.well-known/jwks.json`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

async function newKey(alg: "RS256" | "ES256"): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = uniqueName(alg.toLowerCase());
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, publicKey, jwk };
}

const cleanup = new Cleanup();
const jwks = new JwksServer();
let gateway: Gateway;
let rsaKey: SigningKey;
let ecKey: SigningKey;

beforeAll(async () => {
  rsaKey = await newKey("RS256");
  ecKey = await newKey("ES256");
  jwks.keys = [rsaKey, ecKey];
  const jwksUrl = await jwks.start();
  cleanup.add(() => jwks.stop());
  const jwt: Config["jwt"] = {
    jwksUrl,
    issuer: ISSUER,
    audience: AUDIENCE,
    // ES256 keys are in the JWKS but not allowed.
    algorithms: ["RS256"],
    maxTokenAgeSeconds: MAX_TOKEN_AGE_SECONDS,
    clockToleranceSeconds: 5,
    jwksCacheMaxAgeMs: 60_000,
    jwksCooldownMs: 0,
    usesDevelopmentSecret: false,
  };
  gateway = await startGateway({ jwt });
  cleanup.add(() => gateway.stop());
});

afterAll(() => cleanup.run());

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Claims of a valid token; a case removes or changes some of them. */
function validClaims(email: string): JWTPayload {
  return {
    email,
    iss: ISSUER,
    aud: AUDIENCE,
    iat: nowSeconds(),
    exp: nowSeconds() + 600,
  };
}

async function sign(
  claims: JWTPayload,
  key: SigningKey = rsaKey,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.privateKey);
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

type Case = [
  name: string,
  build: (email: string) => Promise<string>,
  message: RegExp,
];

const HOSTILE_TOKENS: Case[] = [
  [
    "alg none",
    async (email) =>
      `${base64url({ alg: "none", typ: "JWT" })}.${base64url(validClaims(email))}.`,
    /algorithm is not accepted/,
  ],
  [
    "HS256 with the RSA public key as secret",
    async (email) => {
      const secret = new TextEncoder().encode(await exportSPKI(rsaKey.publicKey));
      return new SignJWT(validClaims(email))
        .setProtectedHeader({ alg: "HS256", kid: rsaKey.kid })
        .sign(secret);
    },
    /algorithm is not accepted/,
  ],
  [
    "HS256 with the public JWK as secret",
    async (email) => {
      const secret = new TextEncoder().encode(JSON.stringify(rsaKey.jwk));
      return new SignJWT(validClaims(email))
        .setProtectedHeader({ alg: "HS256", kid: rsaKey.kid })
        .sign(secret);
    },
    /algorithm is not accepted/,
  ],
  [
    "ES256 outside the allow-list",
    (email) => sign(validClaims(email), ecKey),
    /algorithm is not accepted/,
  ],
  [
    "missing exp",
    (email) => {
      const { exp: _exp, ...claims } = validClaims(email);
      return sign(claims);
    },
    /"exp" .*missing/,
  ],
  [
    "missing aud",
    (email) => {
      const { aud: _aud, ...claims } = validClaims(email);
      return sign(claims);
    },
    /"aud" .*missing/,
  ],
  [
    "wrong aud",
    (email) => sign({ ...validClaims(email), aud: "another-service" }),
    /"aud" is invalid/,
  ],
  [
    "wrong iss",
    (email) => sign({ ...validClaims(email), iss: "https://evil.example.com" }),
    /"iss" is invalid/,
  ],
  [
    "expired",
    (email) =>
      sign({
        ...validClaims(email),
        iat: nowSeconds() - 900,
        exp: nowSeconds() - 600,
      }),
    /Token expired/,
  ],
  [
    "not yet valid",
    (email) => sign({ ...validClaims(email), nbf: nowSeconds() + 600 }),
    /not valid yet/,
  ],
  [
    "missing iat with a maximum age",
    (email) => {
      const { iat: _iat, ...claims } = validClaims(email);
      return sign(claims);
    },
    /"iat" .*missing/,
  ],
  [
    "older than the maximum age",
    (email) =>
      sign({
        ...validClaims(email),
        iat: nowSeconds() - MAX_TOKEN_AGE_SECONDS - 60,
        exp: nowSeconds() + 600,
      }),
    /JWT_MAX_TOKEN_AGE_SECONDS/,
  ],
  [
    "iat in the future with a maximum age",
    (email) => sign({ ...validClaims(email), iat: nowSeconds() + 3600 }),
    /"iat" is in the future/,
  ],
  [
    "unknown key id",
    async (email) => {
      const stranger = await newKey("RS256");
      return sign(validClaims(email), stranger);
    },
    /key id is unknown/,
  ],
  [
    "known kid, other key",
    async (email) => {
      const stranger = await newKey("RS256");
      return sign(validClaims(email), { ...stranger, kid: rsaKey.kid });
    },
    /signature is invalid/,
  ],
];

const CREATE_ACCOUNT = `mutation ($username: String!) {
  createAccount(input: { username: $username }) { password }
}`;

async function accountExists(username: string): Promise<boolean> {
  const row = await gateway.db.account.findUnique({ where: { username } });
  const onBroker = await gateway.management.userExists(username);
  return row !== null || onBroker;
}

async function closeEvent(token: string): Promise<{ code: number; reason: string }> {
  const client = wsClient(gateway, token);
  try {
    return await new Promise((resolve) => {
      client.subscribe(
        { query: "subscription { guardianEvents { kind } }" },
        {
          next: () => undefined,
          error: (error) => resolve(error as { code: number; reason: string }),
          complete: () => resolve({ code: -1, reason: "completed" }),
        },
      );
    });
  } finally {
    await client.dispose();
  }
}

test("valid RS256 token creates an account", async () => {
  const username = uniqueName("tok");
  const token = await sign(validClaims(uniqueEmail()));
  const response = await gql(gateway, CREATE_ACCOUNT, { username }, token);
  cleanup.add(() => gql(gateway, `mutation { deleteAccount(username: "${username}") }`, {}, token));
  expect(response.errors).toBeUndefined();
  expect(await accountExists(username)).toBe(true);
});

describe.each(HOSTILE_TOKENS)("token with %s", (_name, build, message) => {
  test("HTTP mutation unauthenticated, no account", async () => {
    const username = uniqueName("tok");
    const token = await build(uniqueEmail());
    const response = await gql(gateway, CREATE_ACCOUNT, { username }, token);
    expect(errorCodes(response)).toEqual(["UNAUTHENTICATED"]);
    expect(response.errors?.[0].message).toMatch(message);
    expect(response.data).toBeNull();
    expect(await accountExists(username)).toBe(false);
  });

  test("graphql-ws closes with 4403", async () => {
    const event = await closeEvent(await build(uniqueEmail()));
    expect(event.code).toBe(4403);
    expect(event.reason).toMatch(message);
  });
});

describe("JWKS rotation", () => {
  test("keys cached, rotated key fetched", async () => {
    const query = "{ viewer { email } }";
    const email = uniqueEmail();
    const before = jwks.fetches;
    for (let i = 0; i < 3; i += 1) {
      const response = await gql(gateway, query, {}, await sign(validClaims(email)));
      expect(response.data?.viewer.email).toBe(email);
    }
    // Known key ids are served from the cache.
    expect(jwks.fetches).toBe(before);

    const rotated = await newKey("RS256");
    jwks.keys = [rotated];
    const response = await gql(gateway, query, {}, await sign(validClaims(email), rotated));
    expect(response.data?.viewer.email).toBe(email);
    expect(jwks.fetches).toBe(before + 1);

    // The retired key is gone from the refetched set.
    const retired = await gql(gateway, query, {}, await sign(validClaims(email), rsaKey));
    expect(errorCodes(retired)).toEqual(["UNAUTHENTICATED"]);
    expect(retired.errors?.[0].message).toMatch(/key id is unknown/);

    jwks.keys = [rsaKey, ecKey];
  });
});

describe("JWT_ALGORITHMS setting", () => {
  const env = (extra: Record<string, string>) => ({
    DATABASE_URL: testConfig().databaseUrl,
    ...extra,
  });

  test("HS256 with a JWKS URL rejected", () => {
    expect(() =>
      loadConfig(env({ JWT_JWKS_URL: "http://127.0.0.1:1/jwks", JWT_ALGORITHMS: "RS256,HS256" })),
    ).toThrow(ConfigError);
  });

  test("RS256 with a secret rejected", () => {
    expect(() =>
      loadConfig(env({ JWT_SECRET: "s".repeat(40), JWT_ALGORITHMS: "RS256" })),
    ).toThrow(/JWT_ALGORITHMS contains "RS256"/);
  });

  test("none rejected", () => {
    expect(() =>
      loadConfig(env({ JWT_SECRET: "s".repeat(40), JWT_ALGORITHMS: "none" })),
    ).toThrow(ConfigError);
  });

  test("defaults follow the key", () => {
    expect(loadConfig(env({ JWT_SECRET: "s".repeat(40) })).jwt.algorithms).toEqual(["HS256"]);
    expect(
      loadConfig(env({ JWT_JWKS_URL: "http://127.0.0.1:1/jwks" })).jwt.algorithms,
    ).toEqual(["RS256", "ES256"]);
  });
});
