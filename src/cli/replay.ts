// `npm run replay -- FILE [FILE...]`: publishes recorded Pulse messages to
// the broker at AMQP_URL.
import { parseArgs } from "node:util";

import { ConfigError, loadConfig } from "../config";
import { BrokerUnavailableError } from "../errors";
import { createLogger } from "../logger";
import { AmqpConnection } from "../rabbitmq";
import {
  publishRecording,
  readRecording,
  RecordingError,
  type RecordedMessage,
} from "../replay";

export interface TextOutput {
  write(text: string): unknown;
}

export interface CliStreams {
  stdout: TextOutput;
  stderr: TextOutput;
}

type Env = Record<string, string | undefined>;

/** One hour: longer pauses are surely a typing mistake. */
const MAX_DELAY_MS = 3_600_000;

const USAGE = `Usage: npm run replay -- [--delay-ms N] FILE [FILE...]

Publishes the messages of each recorded Pulse file to the RabbitMQ broker at
AMQP_URL (default amqp://guest:guest@127.0.0.1:5672), on the vhost in its
path or in RABBITMQ_VHOST, as the gateway does. Each exchange that is
missing is declared as a durable topic exchange. A file may be an object
keyed by task id, one message with payload._meta, or an array of messages
as a Pulse client receives them. Messages the broker nacks (for example,
for a full queue with overflow reject-publish) are counted and the rest
are still published; the command then exits with status 1.

Options:
  --delay-ms N  pause between two messages, in milliseconds (default 0)
  -h, --help    print this help
`;

// Long enough for a broker that is still starting, because the connection
// keeps retrying in the background until then.
const CONNECT_TIMEOUT_MS = 10_000;

class UsageError extends Error {}

interface ReplayOptions {
  help: boolean;
  delayMs: number;
  files: string[];
}

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

    // Every file is read before connecting, so a bad file publishes nothing.
    const recordings: Array<[string, RecordedMessage[]]> = [];
    for (const file of options.files) {
      recordings.push([file, await readRecording(file)]);
    }

    const nacked = await publishAll(
      config.amqpUrl,
      recordings,
      options.delayMs,
      env,
      streams,
    );
    if (nacked > 0) {
      streams.stderr.write(
        `The broker nacked ${count(nacked, "message")}, so they reached ` +
          `no queue. A full queue with overflow reject-publish refuses ` +
          `messages this way; check the queues bound to the exchanges and ` +
          `their policies (rabbitmqctl list_queues name messages policy).\n`,
      );
      return 1;
    }
    return 0;
  } catch (error) {
    if (
      error instanceof UsageError ||
      error instanceof ConfigError ||
      error instanceof RecordingError ||
      error instanceof BrokerUnavailableError
    ) {
      streams.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

function parseOptions(argv: string[]): ReplayOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        "delay-ms": { type: "string", default: "0" },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(
      `${(error as Error).message}\nRun with --help for usage.`,
    );
  }

  const help = parsed.values.help;
  const rawDelay = parsed.values["delay-ms"];
  const delayMs = Number(rawDelay);
  if (!/^\d+$/.test(rawDelay) || delayMs > MAX_DELAY_MS) {
    throw new UsageError(
      `--delay-ms is "${rawDelay}"; expected a whole number of ` +
        `milliseconds from 0 to ${MAX_DELAY_MS}.`,
    );
  }
  if (!help && parsed.positionals.length === 0) {
    throw new UsageError(
      "Missing FILE: pass one or more recording files.\n" +
        "Run with --help for usage.",
    );
  }
  return { help, delayMs, files: parsed.positionals };
}

async function publishAll(
  amqpUrl: string,
  recordings: Array<[string, RecordedMessage[]]>,
  delayMs: number,
  env: Env,
  streams: CliStreams,
): Promise<number> {
  // Logs go to standard error so that standard output contains only the
  // summaries. The "error" level leaves out connection retries, whose
  // cause the final error names, unless LOG_LEVEL requests them.
  const logger = createLogger({
    level: env.LOG_LEVEL || "error",
    destination: streams.stderr,
  });
  const connection = new AmqpConnection({ url: amqpUrl, logger });
  let nacked = 0;
  try {
    await connection.start();
    await connection.waitForConnection(CONNECT_TIMEOUT_MS);
    for (const [file, messages] of recordings) {
      const result = await publishRecording(connection, messages, { delayMs });
      nacked += result.nacked;
      const rejected =
        result.nacked > 0 ? `; ${result.nacked} nacked by the broker` : "";
      streams.stdout.write(
        `${file}: published ${count(result.published, "message")} to ` +
          `${count(result.exchanges.length, "exchange")}: ` +
          `${result.exchanges.join(", ")}${rejected}\n`,
      );
    }
    return nacked;
  } finally {
    await connection.close();
  }
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

if (require.main === module) {
  main(process.argv.slice(2), process.env, process).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`replay failed: ${(error as Error).stack}\n`);
      process.exitCode = 1;
    },
  );
}
