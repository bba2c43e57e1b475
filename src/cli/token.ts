// `npm run token -- --email ADDRESS`: prints an HS256 token that the
// gateway accepts when it runs with the same environment.
import { parseArgs } from "node:util";

import {
  canonicalEmail,
  describeInvisibleCharacter,
  isEmail,
  signToken,
} from "../auth";
import { ConfigError, loadConfig, type Config } from "../config";

export interface TextOutput {
  write(text: string): unknown;
}

export interface CliStreams {
  stdout: TextOutput;
  stderr: TextOutput;
}

type Env = Record<string, string | undefined>;

const USAGE = `Usage: npm run token -- --email ADDRESS [--expires-in DURATION] [--admin]

Prints an HS256 token for the gateway on standard output. It is signed with
JWT_SECRET, or with the development secret when JWT_SECRET is unset outside
production, and carries JWT_ISSUER and JWT_AUDIENCE as its iss and aud
claims when they are set. When JWT_JWKS_URL is set, tokens come from that
identity provider instead.

Options:
  --email ADDRESS          e-mail address of the caller (the email claim)
  --expires-in DURATION    lifetime: a whole number with the unit s, m, h,
                           d or w, for example 30m or 7d (default 12h)
  --admin                  print a reminder that admin rights come from
                           ADMIN_EMAILS; the token gets no extra claim
  -h, --help               print this help
`;

const SECONDS_PER_UNIT: Record<string, number> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
  w: 604_800,
};

/** Maximum lifetime of a local token: one year. */
const MAX_SECONDS = 365 * 86_400;

class UsageError extends Error {}

type TokenOptions =
  | { help: true }
  | { help: false; email: string; expiresInSeconds: number; admin: boolean };

/** Runs the command and returns its exit code. */
export async function main(
  argv: string[],
  env: Env,
  streams: CliStreams,
): Promise<number> {
  try {
    const options = parseOptions(argv);
    if (options.help) {
      streams.stdout.write(USAGE);
      return 0;
    }
    const config = loadConfig(env);
    const secret = requireSecret(config);
    if (config.jwt.usesDevelopmentSecret) {
      streams.stderr.write(
        "Note: JWT_SECRET is not set, so the token is signed with the " +
          "development secret, which only a gateway without JWT_SECRET " +
          "accepts.\n",
      );
    }
    if (options.admin) {
      streams.stderr.write(describeAdmin(options.email, config) + "\n");
    }

    const token = await signToken(
      secret,
      { email: options.email },
      {
        expiresIn: `${options.expiresInSeconds}s`,
        issuer: config.jwt.issuer,
        audience: config.jwt.audience,
      },
    );
    streams.stdout.write(`${token}\n`);
    return 0;
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      streams.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

function parseOptions(argv: string[]): TokenOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        email: { type: "string" },
        "expires-in": { type: "string", default: "12h" },
        admin: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(
      `${(error as Error).message}\nRun with --help for usage.`,
    );
  }

  const { values } = parsed;
  if (values.help) return { help: true };
  const expiresInSeconds = parseDuration(values["expires-in"]);
  const email = values.email;
  if (email === undefined) {
    throw new UsageError(
      "Missing --email: pass the caller's address, for example " +
        "--email you@example.com.",
    );
  }
  if (!isEmail(email)) {
    const reason =
      describeInvisibleCharacter(email) ?? "pass one like you@example.com";
    throw new UsageError(
      `--email is ${JSON.stringify(email)}, which is not a valid e-mail ` +
        `address; ${reason}.`,
    );
  }
  return { help: false, email, expiresInSeconds, admin: values.admin };
}

function parseDuration(raw: string): number {
  const match = /^(\d+)([smhdw])$/.exec(raw);
  const seconds = match ? Number(match[1]) * SECONDS_PER_UNIT[match[2]] : 0;
  if (!Number.isSafeInteger(seconds) || seconds <= 0 || seconds > MAX_SECONDS) {
    throw new UsageError(
      `--expires-in is "${raw}"; expected a positive whole number with ` +
        `the unit s, m, h, d or w, at most 365d, for example 30m, 12h or 7d.`,
    );
  }
  return seconds;
}

function requireSecret(config: Config): string {
  const { jwksUrl, secret } = config.jwt;
  if (jwksUrl) {
    throw new UsageError(
      `JWT_JWKS_URL is set (${jwksUrl}), so the gateway accepts only ` +
        `RS256 or ES256 tokens from that identity provider; get a token ` +
        `there, or unset JWT_JWKS_URL and set JWT_SECRET to sign tokens ` +
        `with this command.`,
    );
  }
  // loadConfig sets either a JWKS URL or a secret, the development one
  // included, so this only guards against a change there.
  if (!secret) throw new Error("loadConfig returned neither secret nor JWKS");
  return secret;
}

function describeAdmin(email: string, config: Config): string {
  const listed = config.adminEmails.includes(canonicalEmail(email));
  return (
    `Note: --admin adds no claim, because the gateway grants admin rights ` +
    `to the addresses in ADMIN_EMAILS, and ${email} is ` +
    `${listed ? "listed there" : "not listed there yet"}.`
  );
}

if (require.main === module) {
  main(process.argv.slice(2), process.env, process).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`token failed: ${(error as Error).stack}\n`);
      process.exitCode = 1;
    },
  );
}
