// `npm run watch -- --exchange NAME [--pattern P]`: prints the live messages
// of a binding, or the guardian's events, as JSON lines, from a terminal.
import { parseArgs } from "node:util";

import { createClient } from "graphql-ws";
import WebSocket from "ws";

import { signToken } from "../auth";
import { loadConfig } from "../config";
import type { CliStreams } from "./token";

type Env = Record<string, string | undefined>;

const USAGE = `Usage: npm run watch -- --exchange NAME [--pattern PATTERN] [options]
       npm run watch -- --guardian [--queue NAME] [options]

Subscribes to the gateway over graphql-ws and prints each event as one
line of JSON on standard output.

Options:
  --exchange NAME     exchange of the binding to watch
  --pattern PATTERN   routing-key pattern of the binding (default #)
  --guardian          watch guardian events instead of messages
  --queue NAME        with --guardian: only this queue's events
  --count N           exit after N events (default: run until Ctrl-C)
  --url URL           gateway address (default http://127.0.0.1:4000/graphql)
  --email ADDRESS     sign a token for this address with JWT_SECRET or the
                      development secret; without it, TOKEN must hold one
  -h, --help          print this help
`;

const MESSAGES = `subscription ($exchange: String!, $pattern: String!) {
  messages(exchange: $exchange, routingKeyPattern: $pattern) {
    exchange routingKey ccRoutingKeys redelivered payload
  }
}`;

const GUARDIAN = `subscription ($queue: String) {
  guardianEvents(queue: $queue) { queue account kind size threshold at }
}`;

interface WatchOptions {
  query: string;
  variables: Record<string, unknown>;
  url: string;
  count: number;
  email?: string;
}

class UsageError extends Error {}

/** Runs the command until interrupted or `--count` events; returns the exit code. */
export async function main(
  argv: string[],
  env: Env,
  streams: CliStreams,
  signal?: AbortSignal,
): Promise<number> {
  let options: WatchOptions | null;
  try {
    options = parseOptions(argv);
  } catch (error) {
    const message = (error as Error).message;
    streams.stderr.write(`${message} Run with --help to list the options.\n`);
    return 2;
  }
  if (!options) {
    streams.stdout.write(USAGE);
    return 0;
  }
  let token: string | undefined;
  try {
    token = await resolveToken(options, env);
  } catch (error) {
    streams.stderr.write(`Signing a token failed: ${(error as Error).message}\n`);
    return 2;
  }
  if (!token) {
    streams.stderr.write(
      "No token: set TOKEN (see `npm run token`) or pass --email ADDRESS.\n",
    );
    return 2;
  }
  return watch(options, token, streams, signal);
}

function parseOptions(argv: string[]): WatchOptions | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      exchange: { type: "string" },
      pattern: { type: "string", default: "#" },
      guardian: { type: "boolean", default: false },
      queue: { type: "string" },
      count: { type: "string" },
      url: { type: "string", default: "http://127.0.0.1:4000/graphql" },
      email: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return null;
  const count = values.count === undefined ? Infinity : Number(values.count);
  if (!(count === Infinity || (Number.isInteger(count) && count > 0))) {
    throw new UsageError(`Invalid --count "${values.count}": use a positive whole number.`);
  }
  const base = { url: parseUrl(values.url!), count, email: values.email };
  if (values.guardian) {
    return { ...base, query: GUARDIAN, variables: { queue: values.queue ?? null } };
  }
  if (!values.exchange) {
    throw new UsageError("Missing --exchange (or --guardian).");
  }
  return {
    ...base,
    query: MESSAGES,
    variables: { exchange: values.exchange, pattern: values.pattern },
  };
}

/** Returns the graphql-ws address for an http(s) or ws(s) gateway URL. */
function parseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(
      `Invalid --url "${value}": use an address such as ` +
        "http://127.0.0.1:4000/graphql.",
    );
  }
  if (!["http:", "https:", "ws:", "wss:"].includes(url.protocol)) {
    throw new UsageError(
      `Invalid --url "${value}": use an http, https, ws or wss address, ` +
        "such as http://127.0.0.1:4000/graphql.",
    );
  }
  return url.toString().replace(/^http/, "ws");
}

async function resolveToken(
  options: WatchOptions,
  env: Env,
): Promise<string | undefined> {
  if (!options.email) return env.TOKEN || undefined;
  const { jwt } = loadConfig(env);
  if (!jwt.secret) return undefined;
  return signToken(jwt.secret, { email: options.email }, {
    issuer: jwt.issuer,
    audience: jwt.audience,
  });
}

function watch(
  options: WatchOptions,
  token: string,
  streams: CliStreams,
  signal?: AbortSignal,
): Promise<number> {
  const client = createClient({
    url: options.url,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  let received = 0;
  let finished = false;
  return new Promise<number>((resolve) => {
    const finish = (code: number) => {
      if (finished) return;
      finished = true;
      unsubscribe();
      void client.dispose();
      resolve(code);
    };
    const unsubscribe = client.subscribe(
      { query: options.query, variables: options.variables },
      {
        next: (result) => {
          // Frames that arrived in the same read as the last counted event
          // are still delivered after finish.
          if (finished) return;
          if (result.errors) {
            streams.stderr.write(`Subscription failed: ${describeErrors(result.errors)}\n`);
            finish(1);
            return;
          }
          const [event] = Object.values(result.data ?? {});
          streams.stdout.write(`${JSON.stringify(event)}\n`);
          received += 1;
          if (received >= options.count) finish(0);
        },
        error: (error) => {
          if (finished) return;
          streams.stderr.write(`Subscription failed: ${describe(error, options.url)}\n`);
          finish(1);
        },
        complete: () => finish(0),
      },
    );
    signal?.addEventListener("abort", () => finish(0));
  });
}

/** Formats GraphQL errors as one line: "CODE: message; CODE: message". */
function describeErrors(
  errors: readonly { message: string; extensions?: Record<string, unknown> }[],
): string {
  return errors
    .map((error) => {
      const code = error.extensions?.code;
      const message = error.message.replace(/\s+/g, " ");
      return typeof code === "string" ? `${code}: ${message}` : message;
    })
    .join("; ");
}

function describe(error: unknown, url: string): string {
  if (Array.isArray(error)) return describeErrors(error);
  const closed = error as { code?: number; reason?: string; message?: string };
  if (closed.code !== undefined) {
    const reason = closed.reason ? ` ${closed.reason}` : "";
    return `socket to ${url} closed with ${closed.code}${reason}`;
  }
  if (closed.message) return `cannot reach ${url}: ${closed.message}`;
  return `cannot reach ${url}`;
}

if (require.main === module) {
  const abort = new AbortController();
  process.once("SIGINT", () => abort.abort());
  main(process.argv.slice(2), process.env, process, abort.signal).then(
    (code) => process.exit(code),
    (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`watch failed: ${message}\n`);
      process.exit(1);
    },
  );
}
