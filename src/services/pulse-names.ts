// Pulse's naming rules: account names, queue and exchange names, and the
// RabbitMQ permissions that confine an account to its own names.
import { BadInputError, quote } from "../errors";

/**
 * PulseGuardian's rule for RabbitMQ user names. Accounts made elsewhere may
 * use upper case, but validateAccountName allows only lower case in new ones.
 */
export const ACCOUNT_NAME_PATTERN = /^[a-zA-Z][a-zA-Z0-9._-]*$/;

// The part of a queue name after queue/<account>/: words of letters,
// digits, `.`, `_`, `-` and `:`, separated by single slashes. Words made
// only of dots are rejected too, because they read as paths.
const QUEUE_SUFFIX_PATTERN = /^[A-Za-z0-9._:-]+(\/[A-Za-z0-9._:-]+)*$/;

/** RabbitMQ limits queue, exchange and user names to 255 bytes of UTF-8. */
export const MAX_NAME_BYTES = 255;

export interface Permissions {
  configure: string;
  write: string;
  read: string;
}

/**
 * Rejects a name that no RabbitMQ user can have before it reaches the
 * database or the broker, so a huge argument gets a short error.
 */
export function requireAccountNameLength(username: string): void {
  const bytes = byteLength(username);
  if (bytes <= MAX_NAME_BYTES) return;
  throw new BadInputError(
    `Account name ${quote(username, 40)} is ${bytes} bytes of UTF-8, longer ` +
      `than RabbitMQ allows (${MAX_NAME_BYTES}), so no such account exists; ` +
      "check the name with the accounts query.",
    { bytes },
  );
}

export function validateAccountName(
  username: string,
  reserved: RegExp,
  gatewayAccount: string,
): void {
  if (!ACCOUNT_NAME_PATTERN.test(username)) {
    throw new BadInputError(
      `Invalid account name ${quote(username)}: it must start with a letter ` +
        `and contain only letters, digits, ".", "_" and "-".`,
      { username },
    );
  }
  if (byteLength(username) > 200) {
    throw new BadInputError(
      `Account name ${quote(username)} is too long: use at most 200 characters, ` +
        `so that its queue names fit RabbitMQ's 255-byte limit.`,
      { username },
    );
  }
  if (reserved.test(username) || username === gatewayAccount) {
    throw new BadInputError(
      `Account name ${quote(username)} is reserved; choose another name.`,
      { username },
    );
  }
  // RabbitMQ user names are case-sensitive, so "Foo" and "foo" would be two
  // accounts that read alike. Pulse's names are lower case by convention.
  if (username !== username.toLowerCase()) {
    throw new BadInputError(
      `Invalid account name ${quote(username)}: new account names must be ` +
        `lower case; use ${quote(username.toLowerCase())}.`,
      { username },
    );
  }
}

/** Returns the permissions of an account exactly as Pulse defines them. */
export function accountPermissions(username: string): Permissions {
  const name = escapeRegExp(username);
  return {
    configure: `^(queue/${name}/.*|exchange/${name}/.*)`,
    write: `^(queue/${name}/.*|exchange/${name}/.*)`,
    read: `^(queue/${name}/.*|exchange/.*)`,
  };
}

/** Builds queue/<account>/<name> after checking the name part. */
export function buildQueueName(account: string, name: string): string {
  const suffix = name.startsWith(`queue/${account}/`)
    ? name.slice(`queue/${account}/`.length)
    : name;
  const dotSegment = suffix.split("/").some((part) => /^\.+$/.test(part));
  if (!QUEUE_SUFFIX_PATTERN.test(suffix) || dotSegment) {
    throw new BadInputError(
      `Invalid queue name ${quote(name)}: use letters, digits, ".", "_", "-" ` +
        `and ":", in words separated by single "/" (a word of dots alone is ` +
        `not allowed); the gateway adds the ` +
        `"queue/${account}/" prefix itself.`,
      { name },
    );
  }
  const full = `queue/${account}/${suffix}`;
  if (byteLength(full) > MAX_NAME_BYTES) {
    throw new BadInputError(
      `Queue name ${quote(full)} is longer than RabbitMQ's limit of ` +
        `${MAX_NAME_BYTES} bytes; shorten it.`,
      { name },
    );
  }
  return full;
}

/**
 * Returns the account a queue name belongs to by Pulse's convention
 * (queue/<account>/<rest>), or null for a name outside the convention.
 * The rest may be empty or contain any character, because the account's
 * permission regex `^(queue/<account>/.*|...)` lets it declare every name
 * that starts with its prefix, `queue/<account>/` itself included.
 */
export function queueAccount(queueName: string): string | null {
  const match = /^queue\/([^/]+)\//.exec(queueName);
  if (!match || !ACCOUNT_NAME_PATTERN.test(match[1])) return null;
  return match[1];
}

/**
 * Like queueAccount, but throws BAD_USER_INPUT for a foreign name or one
 * over RabbitMQ's length limit. Every argument naming an existing queue
 * passes here before the broker is asked, because the management API
 * rejects an overlong name with 414 rather than 404.
 */
export function requireQueueAccount(queueName: string): string {
  checkNameLength("Queue", queueName);
  const account = queueAccount(queueName);
  if (account === null) {
    throw new BadInputError(
      `Invalid queue name ${quote(queueName)}: Pulse queues are named ` +
        `"queue/<account>/<name>".`,
      { queue: queueName },
    );
  }
  return account;
}

/**
 * Throws BAD_USER_INPUT when a queue or exchange name is over RabbitMQ's
 * limit of 255 bytes of UTF-8. The message quotes only the start of it.
 */
export function checkNameLength(kind: "Queue" | "Exchange", name: string): void {
  const bytes = byteLength(name);
  if (bytes <= MAX_NAME_BYTES) return;
  throw new BadInputError(
    `${kind} name ${quote(name, 40)} is ${bytes} bytes long, longer than ` +
      `RabbitMQ's limit of ${MAX_NAME_BYTES} bytes of UTF-8; check the name.`,
    { [kind.toLowerCase()]: name.slice(0, 40), bytes },
  );
}

/** Checks an exchange name that an account may read and bind. */
export function validateExchangeName(exchange: string): void {
  if (!/^exchange\/[^\s]+$/.test(exchange) || exchange.endsWith("/")) {
    throw new BadInputError(
      `Invalid exchange name ${quote(exchange)}: Pulse exchanges are named ` +
        `"exchange/<owner>/<name>", for example ` +
        `"exchange/taskcluster-queue/v1/task-completed".`,
      { exchange },
    );
  }
  checkNameLength("Exchange", exchange);
}

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, "utf8");
}
