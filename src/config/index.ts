// Every setting of the gateway, read from the environment once, here, and
// passed down. Each default points at a local service on its standard port,
// so a developer machine with RabbitMQ and PostgreSQL needs no settings.
import path from "node:path";

export interface JwtConfig {
  /** HS256 secret (JWT_SECRET). Exactly one of secret and jwksUrl is set. */
  secret?: string;
  /** JWKS address for RS256 and ES256 tokens (JWT_JWKS_URL). */
  jwksUrl?: string;
  /** Required `iss` claim (JWT_ISSUER), checked when set. */
  issuer?: string;
  /** Required `aud` claim (JWT_AUDIENCE), checked when set. */
  audience?: string;
  /** Accepted `alg` header values (JWT_ALGORITHMS). */
  algorithms: string[];
  /**
   * Maximum age of a token from its `iat` claim, in seconds
   * (JWT_MAX_TOKEN_AGE_SECONDS); when set, `iat` is required.
   */
  maxTokenAgeSeconds?: number;
  /** Leeway for `exp`, `nbf` and `iat`, in seconds (JWT_CLOCK_TOLERANCE_SECONDS, 5). */
  clockToleranceSeconds: number;
  /** Time a fetched JWKS is used before it is fetched again (JWKS_CACHE_MAX_AGE_MS, 600000). */
  jwksCacheMaxAgeMs: number;
  /**
   * Minimum time between two JWKS fetches triggered by an unknown key id
   * (JWKS_COOLDOWN_MS, 30000).
   */
  jwksCooldownMs: number;
  /** True when no secret was configured and the development one is used. */
  usesDevelopmentSecret: boolean;
}

/** Request limits; each error that enforces one names its setting. */
export interface LimitsConfig {
  /** Maximum nesting of selections in an operation (MAX_QUERY_DEPTH, 12). */
  maxDepth: number;
  /** Maximum estimated cost of an operation (MAX_QUERY_COST, 5000). */
  maxCost: number;
  /** Size assumed for a list field without a `limit` argument (QUERY_COST_LIST_SIZE, 10). */
  costListSize: number;
  /** Maximum number of aliased fields in an operation (MAX_ALIASES, 30). */
  maxAliases: number;
  /** Maximum number of field selections in a document (MAX_FIELDS, 200). */
  maxFields: number;
  /** Largest accepted HTTP request body, in bytes (MAX_BODY_BYTES, 1048576). */
  maxBodyBytes: number;
  /**
   * Operations running at once on one graphql-ws socket, subscriptions
   * included (MAX_SUBSCRIPTIONS_PER_SOCKET, 25).
   */
  maxSubscriptionsPerSocket: number;
  /** Open graphql-ws sockets per user (MAX_SOCKETS_PER_USER, 10). */
  maxSocketsPerUser: number;
  /** Size of each user's token bucket, in requests (RATE_LIMIT_BURST, 200). */
  rateLimitBurst: number;
  /** Requests added back to each bucket per second (RATE_LIMIT_PER_SECOND, 20); 0 turns rate limiting off. */
  rateLimitPerSecond: number;
  /**
   * Accounts one user may own, counted when an account is created or an
   * owner added (MAX_ACCOUNTS_PER_USER, 10); 0 turns the quota off.
   * Admins are exempt.
   */
  maxAccountsPerUser: number;
  /**
   * Queues the gateway records for one account, counted when createQueue
   * runs (MAX_QUEUES_PER_ACCOUNT, 50); 0 turns the quota off. Admins are
   * exempt.
   */
  maxQueuesPerAccount: number;
}

export interface GuardianConfig {
  enabled: boolean;
  /** Stats poll and guardian interval (GUARDIAN_INTERVAL_MS, 5000). */
  intervalMs: number;
  /**
   * Maximum delay between stats polls, or between guardian passes, after
   * failures. The delay doubles up to it (GUARDIAN_MAX_BACKOFF_MS, 60000).
   */
  maxBackoffMs: number;
  /** A queue whose `messages` exceeds this is warned (2000). */
  warnSize: number;
  /** A queue whose `messages` exceeds this is deleted (8000). */
  deleteSize: number;
  /**
   * Highest warn or delete size that owners may set on their accounts and
   * queues (GUARDIAN_MAX_DELETE_SIZE, 100000). Admins may set any size.
   */
  maxDeleteSize: number;
  /**
   * Time a queue may hold messages without a consumer before the guardian
   * sends CONSUMER_GONE (GUARDIAN_CONSUMER_GONE_MS, 600000).
   */
  consumerGoneMs: number;
  /** Days of queue history kept (GUARDIAN_HISTORY_RETENTION_DAYS, 30). */
  historyRetentionDays: number;
  notifications: NotificationConfig;
}

export interface NotificationConfig {
  /** SMTP server for e-mail notices (SMTP_URL); no e-mail when unset. */
  smtpUrl?: string;
  /** Sender address of e-mail notices (SMTP_FROM). */
  smtpFrom: string;
  /**
   * Key of the HMAC-SHA256 signature of webhook bodies
   * (GUARDIAN_WEBHOOK_SECRET); no webhook is sent while it is unset.
   */
  webhookSecret?: string;
  /** Attempts per webhook delivery (GUARDIAN_WEBHOOK_ATTEMPTS, 5). */
  webhookAttempts: number;
  /** Delay before the first retry, doubled for each next one (1000). */
  webhookBackoffMs: number;
  /** Webhooks that receive admin notices (GUARDIAN_ADMIN_WEBHOOKS). */
  adminWebhookUrls: string[];
}

export interface LiveConfig {
  /** Unacknowledged deliveries per live queue (LIVE_PREFETCH, 1000). */
  prefetch: number;
  /** Events buffered per subscriber before the oldest are dropped (1000). */
  bufferSize: number;
  /** Time a subscriber may stay behind before it is disconnected (60000). */
  maxBehindMs: number;
}

export interface Config {
  production: boolean;
  host: string;
  port: number;
  databaseUrl: string;
  amqpUrl: string;
  managementUrl: string;
  vhost: string;
  /** RabbitMQ user of the gateway itself, taken from AMQP_URL. */
  gatewayAccount: string;
  jwt: JwtConfig;
  adminEmails: string[];
  reservedAccounts: RegExp;
  guardian: GuardianConfig;
  live: LiveConfig;
  limits: LimitsConfig;
  corsOrigins: string[];
  /** Allows schema introspection queries (INTROSPECTION, true). */
  introspection: boolean;
  /**
   * Adds `extensions.stacktrace` to HTTP error responses
   * (INCLUDE_STACKTRACE_IN_ERRORS, false), whatever NODE_ENV is.
   */
  includeStacktraceInErrors: boolean;
  /** Serves Apollo Sandbox on GET /graphql from a browser (LANDING_PAGE, true). */
  landingPage: boolean;
  /** Lets sockets without a token use the messages subscription (false). */
  allowAnonymousSubscriptions: boolean;
  /** Built web console served at "/" (CONSOLE_DIR, dist/console). */
  consoleDir: string;
  logLevel: string;
  /** Delay between attempts to reach a missing dependency (5000). */
  retryIntervalMs: number;
  /**
   * Time a stopping gateway has to finish requests in flight and close its
   * connections before the process exits with status 1
   * (SHUTDOWN_GRACE_MS, 10000).
   */
  shutdownGraceMs: number;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Secret used when neither JWT_SECRET nor JWT_JWKS_URL is set outside
 * production, so that `npm start` and `npm run token` work with no setup.
 */
export const DEVELOPMENT_JWT_SECRET =
  "pulse-gateway-development-secret-do-not-use-in-production";

// `vite build` writes the console to <repository>/dist/console. This file
// runs as src/config under ts-jest and as dist/config once compiled, and
// both lie two levels below the repository.
const DEFAULT_CONSOLE_DIR = path.resolve(__dirname, "../../dist/console");

const DEFAULT_RESERVED_ACCOUNTS = "^(guest|admin|administrator|root)$";

type Env = Record<string, string | undefined>;

/** Reads and validates every setting; throws ConfigError naming the value. */
export function loadConfig(
  env: Env = process.env,
  overrides: Partial<Config> = {},
): Config {
  const production = env.NODE_ENV === "production";
  const { amqpUrl, vhost } = readBroker(env);
  const config: Config = {
    production,
    host: env.HOST ?? "127.0.0.1",
    port: readPort(env),
    databaseUrl: readUrl(
      env,
      "DATABASE_URL",
      "postgresql://postgres@127.0.0.1:5432/pulse_gateway",
    ),
    amqpUrl,
    managementUrl: readUrl(
      env,
      "RABBITMQ_MANAGEMENT_URL",
      "http://guest:guest@127.0.0.1:15672",
    ),
    vhost,
    gatewayAccount: decodeURIComponent(new URL(amqpUrl).username || "guest"),
    jwt: readJwt(env, production),
    // The same NFC and lower-case spelling as canonicalEmail in src/auth.
    adminEmails: readList(env.ADMIN_EMAILS).map((e) =>
      e.normalize("NFC").toLowerCase(),
    ),
    reservedAccounts: readRegExp(
      env,
      "RESERVED_ACCOUNTS",
      DEFAULT_RESERVED_ACCOUNTS,
    ),
    guardian: readGuardian(env),
    live: {
      prefetch: readInt(env, "LIVE_PREFETCH", 1000, 1),
      bufferSize: readInt(env, "LIVE_BUFFER_SIZE", 1000, 1),
      maxBehindMs: readInt(env, "LIVE_MAX_BEHIND_MS", 60_000, 0),
    },
    limits: readLimits(env),
    corsOrigins: readList(env.CORS_ORIGINS),
    introspection: readBool(env, "INTROSPECTION", true),
    includeStacktraceInErrors: readBool(
      env,
      "INCLUDE_STACKTRACE_IN_ERRORS",
      false,
    ),
    landingPage: readBool(env, "LANDING_PAGE", true),
    allowAnonymousSubscriptions: readBool(
      env,
      "ALLOW_ANONYMOUS_SUBSCRIPTIONS",
      false,
    ),
    consoleDir: path.resolve(env.CONSOLE_DIR || DEFAULT_CONSOLE_DIR),
    logLevel: readLogLevel(env),
    retryIntervalMs: readInt(env, "RETRY_INTERVAL_MS", 5000, 10),
    shutdownGraceMs: readInt(env, "SHUTDOWN_GRACE_MS", 10_000, 1),
  };
  return { ...config, ...overrides };
}

/**
 * Reads AMQP_URL and RABBITMQ_VHOST so that AMQP and the management API use
 * one vhost. Either setting alone names it for both: RABBITMQ_VHOST is
 * written into an AMQP_URL without a vhost path, and the vhost in
 * AMQP_URL's path is used when RABBITMQ_VHOST is unset. Two different
 * vhosts stop start-up.
 */
function readBroker(env: Env): { amqpUrl: string; vhost: string } {
  const raw = readUrl(env, "AMQP_URL", "amqp://guest:guest@127.0.0.1:5672");
  const url = new URL(raw);
  if (url.protocol !== "amqp:" && url.protocol !== "amqps:") {
    throw new ConfigError(
      `AMQP_URL is "${redactUrlPasswords(raw)}", expected an amqp:// or ` +
        `amqps:// URL.`,
    );
  }
  const fromUrl = readAmqpVhost(url);
  const fromEnv = env.RABBITMQ_VHOST || null;
  if (fromUrl !== null && fromEnv !== null && fromUrl !== fromEnv) {
    throw new ConfigError(
      `RABBITMQ_VHOST is "${fromEnv}" but AMQP_URL names the vhost ` +
        `"${fromUrl}"; the management API and AMQP must use the same ` +
        `vhost, so make them equal or leave out one of them.`,
    );
  }
  if (fromEnv === null || fromUrl !== null) {
    return { amqpUrl: raw, vhost: fromUrl ?? "/" };
  }
  // WHATWG URL keeps the amqp: scheme's authority when the path changes.
  url.pathname = `/${encodeURIComponent(fromEnv)}`;
  return { amqpUrl: url.toString(), vhost: fromEnv };
}

/**
 * Returns the vhost in an AMQP URL's path, or null when the path is empty
 * or "/", which amqplib (2.3.1) reads as the default vhost "/".
 */
function readAmqpVhost(url: URL): string | null {
  if (url.pathname === "" || url.pathname === "/") return null;
  try {
    return decodeURIComponent(url.pathname.slice(1));
  } catch {
    throw new ConfigError(
      `AMQP_URL has an invalid percent-encoded vhost ` +
        `"${url.pathname.slice(1)}"; write "/" as %2F.`,
    );
  }
}

function readGuardian(env: Env): GuardianConfig {
  const guardian: GuardianConfig = {
    enabled: readBool(env, "GUARDIAN_ENABLED", true),
    intervalMs: readInt(env, "GUARDIAN_INTERVAL_MS", 5000, 100),
    maxBackoffMs: readInt(env, "GUARDIAN_MAX_BACKOFF_MS", 60_000, 100),
    warnSize: readInt(env, "GUARDIAN_WARN_SIZE", 2000, 0),
    deleteSize: readInt(env, "GUARDIAN_DELETE_SIZE", 8000, 1),
    maxDeleteSize: readInt(env, "GUARDIAN_MAX_DELETE_SIZE", 100_000, 1),
    consumerGoneMs: readInt(env, "GUARDIAN_CONSUMER_GONE_MS", 600_000, 0),
    historyRetentionDays: readInt(
      env,
      "GUARDIAN_HISTORY_RETENTION_DAYS",
      30,
      1,
    ),
    notifications: readNotifications(env),
  };
  if (guardian.warnSize >= guardian.deleteSize) {
    throw new ConfigError(
      `GUARDIAN_WARN_SIZE (${guardian.warnSize}) must be below ` +
        `GUARDIAN_DELETE_SIZE (${guardian.deleteSize}); lower the first ` +
        `or raise the second.`,
    );
  }
  if (guardian.maxBackoffMs < guardian.intervalMs) {
    throw new ConfigError(
      `GUARDIAN_MAX_BACKOFF_MS (${guardian.maxBackoffMs}) must be at least ` +
        `GUARDIAN_INTERVAL_MS (${guardian.intervalMs}); raise the first or ` +
        `lower the second.`,
    );
  }
  if (guardian.maxDeleteSize < guardian.deleteSize) {
    throw new ConfigError(
      `GUARDIAN_MAX_DELETE_SIZE (${guardian.maxDeleteSize}) must be at ` +
        `least GUARDIAN_DELETE_SIZE (${guardian.deleteSize}); raise the ` +
        `first or lower the second.`,
    );
  }
  return guardian;
}

function readNotifications(env: Env): NotificationConfig {
  const smtpUrl = env.SMTP_URL || undefined;
  if (smtpUrl) readUrl(env, "SMTP_URL", smtpUrl);
  const adminWebhookUrls = readList(env.GUARDIAN_ADMIN_WEBHOOKS);
  for (const url of adminWebhookUrls) {
    const problem = webhookUrlProblem(url);
    if (problem) throw new ConfigError(`GUARDIAN_ADMIN_WEBHOOKS: ${problem}`);
  }
  return {
    smtpUrl,
    smtpFrom: env.SMTP_FROM || "pulse-guardian@localhost",
    webhookSecret: env.GUARDIAN_WEBHOOK_SECRET || undefined,
    webhookAttempts: readInt(env, "GUARDIAN_WEBHOOK_ATTEMPTS", 5, 1),
    webhookBackoffMs: readInt(env, "GUARDIAN_WEBHOOK_BACKOFF_MS", 1000, 0),
    adminWebhookUrls,
  };
}

function readLimits(env: Env): LimitsConfig {
  return {
    maxDepth: readInt(env, "MAX_QUERY_DEPTH", 12, 1),
    maxCost: readInt(env, "MAX_QUERY_COST", 5000, 1),
    costListSize: readInt(env, "QUERY_COST_LIST_SIZE", 10, 1),
    maxAliases: readInt(env, "MAX_ALIASES", 30, 0),
    maxFields: readInt(env, "MAX_FIELDS", 200, 1),
    maxBodyBytes: readInt(env, "MAX_BODY_BYTES", 1024 * 1024, 1024),
    maxSubscriptionsPerSocket: readInt(env, "MAX_SUBSCRIPTIONS_PER_SOCKET", 25, 1),
    maxSocketsPerUser: readInt(env, "MAX_SOCKETS_PER_USER", 10, 1),
    rateLimitBurst: readInt(env, "RATE_LIMIT_BURST", 200, 1),
    rateLimitPerSecond: readNumber(env, "RATE_LIMIT_PER_SECOND", 20, 0),
    maxAccountsPerUser: readInt(env, "MAX_ACCOUNTS_PER_USER", 10, 0),
    maxQueuesPerAccount: readInt(env, "MAX_QUEUES_PER_ACCOUNT", 50, 0),
  };
}

/** Algorithms jose can verify, by the kind of key each needs. */
const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"];
const PUBLIC_KEY_ALGORITHMS = [
  "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
  "ES256", "ES384", "ES512", "EdDSA", "Ed25519",
];

function readJwt(env: Env, production: boolean): JwtConfig {
  const secret = env.JWT_SECRET || undefined;
  const jwksUrl = env.JWT_JWKS_URL || undefined;
  if (secret && jwksUrl) {
    throw new ConfigError(
      "JWT_SECRET and JWT_JWKS_URL are both set; set JWT_SECRET for HS256 " +
        "tokens or JWT_JWKS_URL for RS256/ES256 tokens, not both.",
    );
  }
  if (jwksUrl) readUrl(env, "JWT_JWKS_URL", jwksUrl);
  if (!secret && !jwksUrl && production) {
    throw new ConfigError(
      "Neither JWT_SECRET nor JWT_JWKS_URL is set; production needs one of " +
        "them to verify tokens.",
    );
  }
  const maxTokenAge = readInt(env, "JWT_MAX_TOKEN_AGE_SECONDS", 0, 0);
  return {
    secret: secret ?? (jwksUrl ? undefined : DEVELOPMENT_JWT_SECRET),
    jwksUrl,
    issuer: env.JWT_ISSUER || undefined,
    audience: env.JWT_AUDIENCE || undefined,
    algorithms: readAlgorithms(env, jwksUrl !== undefined),
    maxTokenAgeSeconds: maxTokenAge > 0 ? maxTokenAge : undefined,
    clockToleranceSeconds: readInt(env, "JWT_CLOCK_TOLERANCE_SECONDS", 5, 0),
    jwksCacheMaxAgeMs: readInt(env, "JWKS_CACHE_MAX_AGE_MS", 600_000, 0),
    jwksCooldownMs: readInt(env, "JWKS_COOLDOWN_MS", 30_000, 0),
    usesDevelopmentSecret: !secret && !jwksUrl,
  };
}

/**
 * Reads JWT_ALGORITHMS and checks it against the key: HMAC algorithms
 * with JWT_SECRET, public-key algorithms with JWT_JWKS_URL. Mixing them
 * would let a token signed with a public key as HMAC secret pass.
 */
function readAlgorithms(env: Env, usesJwks: boolean): string[] {
  const allowed = usesJwks ? PUBLIC_KEY_ALGORITHMS : HMAC_ALGORITHMS;
  const keySetting = usesJwks ? "JWT_JWKS_URL" : "JWT_SECRET";
  const algorithms = readList(env.JWT_ALGORITHMS);
  if (algorithms.length === 0) return usesJwks ? ["RS256", "ES256"] : ["HS256"];
  for (const algorithm of algorithms) {
    if (!allowed.includes(algorithm)) {
      throw new ConfigError(
        `JWT_ALGORITHMS contains "${algorithm}", which cannot be used with ` +
          `${keySetting}; choose from ${allowed.join(", ")}.`,
      );
    }
  }
  return algorithms;
}

function readInt(env: Env, name: string, fallback: number, min: number) {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigError(
      `${name} is "${raw}", expected an integer of at least ${min}.`,
    );
  }
  return value;
}

function readPort(env: Env): number {
  const port = readInt(env, "PORT", 4000, 0);
  if (port > 65535) {
    throw new ConfigError(
      `PORT is "${env.PORT}", expected a TCP port from 0 to 65535.`,
    );
  }
  return port;
}

/** Levels pino accepts by name. */
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

function readLogLevel(env: Env): string {
  const level = env.LOG_LEVEL || "info";
  if (!LOG_LEVELS.includes(level)) {
    throw new ConfigError(
      `LOG_LEVEL is "${level}", expected one of ${LOG_LEVELS.join(", ")}.`,
    );
  }
  return level;
}

function readNumber(env: Env, name: string, fallback: number, min: number) {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) {
    throw new ConfigError(
      `${name} is "${raw}", expected a number of at least ${min}.`,
    );
  }
  return value;
}

function readBool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.toLowerCase();
  if (raw === undefined || raw === "") return fallback;
  if (["1", "true", "yes", "on"].includes(raw)) return true;
  if (["0", "false", "no", "off"].includes(raw)) return false;
  throw new ConfigError(`${name} is "${env[name]}", expected true or false.`);
}

function readUrl(env: Env, name: string, fallback: string): string {
  const raw = env[name] || fallback;
  try {
    new URL(raw);
  } catch {
    throw new ConfigError(
      `${name} is not a valid URL: "${redactUrlPasswords(raw)}".`,
    );
  }
  return raw;
}

// Case-insensitive, so that "Guest" cannot slip past a reserved "guest".
function readRegExp(env: Env, name: string, fallback: string): RegExp {
  const raw = env[name] ?? fallback;
  try {
    return new RegExp(raw, "i");
  } catch (error) {
    throw new ConfigError(
      `${name} is not a valid regular expression: "${raw}" ` +
        `(${(error as Error).message}).`,
    );
  }
}

function readList(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/**
 * Returns a URL, or any text that may hold one, with every password
 * replaced by "***", for logs, messages, the audit log and the API. A
 * string that parses as a URL is redacted by the WHATWG parser, so it
 * reads the user and password exactly as a sender would; whatever does
 * not parse is searched for anything shaped like `user:password@`.
 */
export function redactUrl(raw: string): string {
  const url = URL.canParse(raw) ? new URL(raw) : null;
  if (url?.password) {
    url.password = "***";
    return url.toString();
  }
  // A user name without a password is often a token, so it goes too.
  if (url?.username) {
    url.username = "***";
    return url.toString();
  }
  return redactUrlPasswords(raw);
}

/** Maximum length of a webhook URL, in characters. */
export const MAX_WEBHOOK_URL_LENGTH = 2048;

/** The password a redacted URL shows in place of the real one. */
export const REDACTED_PASSWORD = "***";

/**
 * Checks a webhook URL and returns what is wrong with it, or null. The
 * description shows the URL with its password replaced. The URL must
 * start with "http://" or "https://" exactly as given: WHATWG parsers
 * also accept forms such as "http:user:password@host", read a password
 * from them and trim spaces, which would let a password pass every
 * check that looks for "scheme://user:password@".
 */
export function webhookUrlProblem(url: string): string | null {
  if (url.length > MAX_WEBHOOK_URL_LENGTH) {
    return (
      `Webhook URL is ${url.length} characters long; the maximum is ` +
      `${MAX_WEBHOOK_URL_LENGTH}. Use a shorter URL.`
    );
  }
  // Shown as typed, not as a parser would rewrite it, with secrets gone.
  const shown = JSON.stringify(redactUrlPasswords(url).slice(0, 200));
  if (!/^https?:\/\//.test(url)) {
    return (
      `Webhook URL ${shown} does not start with "http://" or "https://"; ` +
      `write it in that form, in lower case and with no leading spaces.`
    );
  }
  if (/[\s\u0000-\u001f\u007f]/.test(url)) {
    return (
      `Webhook URL ${shown} contains a space or control character; ` +
      `remove it, or percent-encode it (a space is %20).`
    );
  }
  if (!URL.canParse(url)) {
    return (
      `Webhook URL ${shown} is not a valid URL; check the host name and ` +
      `the port (1 to 65535), and percent-encode any "@", ":" or "/" in ` +
      `the user or password.`
    );
  }
  return null;
}

/**
 * Matches the password of every `scheme:user:password@` in a text, with
 * or without slashes after the scheme. The password runs to the last "@"
 * before the path, as URL parsers read it.
 */
const URL_PASSWORD =
  /(\b[a-z][a-z0-9+.-]*:[/\\]*[^\s/\\?#:@]*:)[^\s/\\?#]*@/gi;

/**
 * Replaces the password of every URL in a text with "***". It takes any
 * text, such as an error message or an invalid URL; use redactUrl for a
 * single URL.
 */
export function redactUrlPasswords(text: string): string {
  return text.replace(URL_PASSWORD, "$1***@").replace(URL_USER_ONLY, "$1***@");
}

/** Matches the user of every `scheme://user@` that has no password. */
const URL_USER_ONLY = /(\b[a-z][a-z0-9+.-]*:\/\/)[^\s/\\?#:@*]+@/gi;
