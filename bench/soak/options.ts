// Settings of one soak run, from the command line and the environment. A
// flag beats its variable. Every service address must be on this machine,
// because the run creates and drops a database and a vhost.

/** Settings of one soak run. */
export interface SoakOptions {
  /** Length of the load phase, in seconds (default 600). */
  seconds: number;
  /** Broker restarts, spread evenly over the run (default 2). */
  restarts: number;
  /** HTTP clients, each a user of its own (default 20). */
  httpClients: number;
  /** Operations per second of each HTTP client, at most (default 2). */
  clientRatePerSecond: number;
  /** graphql-ws subscribers, each a user of its own (default 10). */
  subscribers: number;
  /** Messages per second the publisher sends, over all exchanges (default 20). */
  publishRatePerSecond: number;
  /** Pause between the end of the load and the last memory reading (default 20). */
  settleSeconds: number;
  /** Path of the JSON report (default soak-report.json). */
  out: string;
  amqpUrl: string;
  managementUrl: string;
  /** An existing database on the server of the soak database, to connect to first. */
  postgresUrl: string;
}

/** Database and vhost of the soak, dropped and made afresh by each run. */
export const DATABASE = "pulse_gateway_soak";
export const VHOST = "soak";

/** HS256 secret of the soak's gateway, which listens on 127.0.0.1 only. */
export const JWT_SECRET = "soak-secret-for-the-local-gateway-only";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

const USAGE = `Usage: npm run soak -- [options]

  --seconds N        length of the load phase (SOAK_SECONDS, default 600)
  --restarts N       broker restarts during the run (SOAK_RESTARTS, default 2)
  --clients N        HTTP clients (SOAK_CLIENTS, default 20)
  --client-rate R    operations per second per HTTP client (SOAK_CLIENT_RATE, default 2)
  --subscribers N    graphql-ws subscribers (SOAK_SUBSCRIBERS, default 10)
  --publish-rate R   messages per second published (SOAK_PUBLISH_RATE, default 20)
  --settle N         seconds between the end of the load and the last
                     memory reading (SOAK_SETTLE_SECONDS, default 20)
  --out FILE         JSON report (SOAK_OUT, default soak-report.json)

AMQP_URL, RABBITMQ_MANAGEMENT_URL and SOAK_POSTGRES_URL name the services;
each must be on 127.0.0.1, ::1 or localhost.`;

export class OptionsError extends Error {
  override name = "OptionsError";

  /** True for --help, which is not an error. */
  constructor(message: string, readonly isHelp = false) {
    super(message);
  }
}

/** Reads the options, throwing OptionsError for bad values and --help. */
export function readOptions(
  argv: string[],
  env: NodeJS.ProcessEnv,
): SoakOptions {
  const flags = parseFlags(argv);
  const pick = (flag: string, variable: string, fallback: string) =>
    flags.get(flag) ?? env[variable] ?? fallback;
  const options: SoakOptions = {
    seconds: positive("--seconds", pick("seconds", "SOAK_SECONDS", "600")),
    restarts: count("--restarts", pick("restarts", "SOAK_RESTARTS", "2")),
    httpClients: positive("--clients", pick("clients", "SOAK_CLIENTS", "20")),
    clientRatePerSecond: positive(
      "--client-rate",
      pick("client-rate", "SOAK_CLIENT_RATE", "2"),
    ),
    subscribers: count(
      "--subscribers",
      pick("subscribers", "SOAK_SUBSCRIBERS", "10"),
    ),
    publishRatePerSecond: positive(
      "--publish-rate",
      pick("publish-rate", "SOAK_PUBLISH_RATE", "20"),
    ),
    settleSeconds: count("--settle", pick("settle", "SOAK_SETTLE_SECONDS", "20")),
    out: pick("out", "SOAK_OUT", "soak-report.json"),
    amqpUrl: env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672",
    managementUrl:
      env.RABBITMQ_MANAGEMENT_URL ?? "http://guest:guest@127.0.0.1:15672",
    postgresUrl:
      env.SOAK_POSTGRES_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres",
  };
  requireLoopback("AMQP_URL", options.amqpUrl);
  requireLoopback("RABBITMQ_MANAGEMENT_URL", options.managementUrl);
  requireLoopback("SOAK_POSTGRES_URL", options.postgresUrl);
  return options;
}

function parseFlags(argv: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") throw new OptionsError(USAGE, true);
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match) {
      throw new OptionsError(`Unknown argument "${arg}".\n\n${USAGE}`);
    }
    const value = match[2] ?? argv[(i += 1)];
    if (value === undefined) {
      throw new OptionsError(`Missing value after ${arg}.\n\n${USAGE}`);
    }
    flags.set(match[1], value);
  }
  const known = new Set([
    "seconds", "restarts", "clients", "client-rate", "subscribers",
    "publish-rate", "settle", "out",
  ]);
  for (const name of flags.keys()) {
    if (!known.has(name)) {
      throw new OptionsError(`Unknown option --${name}.\n\n${USAGE}`);
    }
  }
  return flags;
}

function positive(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    throw new OptionsError(
      `${name} is "${text}", expected a number greater than 0.`,
    );
  }
  return value;
}

function count(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) {
    throw new OptionsError(
      `${name} is "${text}", expected a whole number, 0 or more.`,
    );
  }
  return value;
}

/**
 * Rejects a service address off this machine: the soak drops a database
 * and a vhost, and restarts the broker with the local rabbitmqctl.
 */
function requireLoopback(variable: string, value: string): void {
  let host: string;
  try {
    host = new URL(value).hostname;
  } catch {
    throw new OptionsError(`${variable} is not a valid URL; fix or unset it.`);
  }
  if (!LOOPBACK_HOSTS.has(host)) {
    throw new OptionsError(
      `${variable} points at "${host}", but the soak runs only against ` +
        `services on 127.0.0.1, ::1 or localhost, because it drops a ` +
        `database and restarts the broker. Unset ${variable} or point it ` +
        `at this machine.`,
    );
  }
}
