// Records every mutation in the audit log by wrapping the resolvers of the
// schema's Mutation type once it is built, so a mutation added later is
// recorded with no change here, over HTTP and graphql-ws alike.
import {
  defaultFieldResolver,
  GraphQLError,
  type GraphQLFieldResolver,
  type GraphQLSchema,
} from "graphql";

import { redactUrl, redactUrlPasswords } from "../config";
import { isDatabaseUnavailable } from "../db";
import { ErrorCode } from "../errors";
import { queueAccount } from "../services/pulse-names";
import { AUDIT_OK, type NewAuditEntry } from "../services/audit";
import type { GraphQLContext } from "./context";
import { toGatewayError } from "./errors";

/** Argument names whose values are replaced before they are stored. */
const SECRET_KEY = /pass(word)?|secret|token|authorization|credential/i;

export const REDACTED = "[redacted]";

/** Maximum length of a stored error message, in characters. */
const MAX_ERROR_LENGTH = 1000;

/** Maximum size of an entry's stored arguments, in bytes of JSON. */
export const MAX_ARGUMENTS_BYTES = 4096;

/**
 * Maximum size of the stored arguments of a request without a valid
 * token, in bytes of JSON. Anyone can send such a request, so its entry
 * stays small.
 */
export const MAX_ANONYMOUS_ARGUMENTS_BYTES = 256;

/** Maximum length of a stored account or object name, in characters. */
const MAX_TARGET_LENGTH = 200;

/** Wraps each Mutation field's resolver to write an audit entry. */
export function auditMutations(schema: GraphQLSchema): void {
  const fields = schema.getMutationType()?.getFields() ?? {};
  for (const field of Object.values(fields)) {
    field.resolve = auditedResolver(field.resolve ?? defaultFieldResolver);
  }
}

function auditedResolver(
  resolve: GraphQLFieldResolver<unknown, GraphQLContext>,
): GraphQLFieldResolver<unknown, GraphQLContext> {
  return async (root, args, context, info) => {
    let result: unknown;
    let failure: unknown = null;
    try {
      result = await resolve(root, args, context, info);
      return result;
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      const maxBytes = context.viewer
        ? MAX_ARGUMENTS_BYTES
        : MAX_ANONYMOUS_ARGUMENTS_BYTES;
      await writeEntry(context, {
        actor: context.viewer?.email ?? null,
        mutation: info.fieldName,
        ...describeTarget(args, result),
        arguments: capArguments(redactSecrets(args), maxBytes),
        outcome: failure === null ? AUDIT_OK : errorCode(failure),
        error: failure === null ? null : errorMessage(failure),
      });
    }
  };
}

/**
 * Writes the entry, logging a failed write rather than failing the
 * mutation, whose change has already been made. While the database is
 * away, the line is a warning, so that an outage does not log one error
 * per mutation.
 */
async function writeEntry(
  context: GraphQLContext,
  entry: NewAuditEntry,
): Promise<void> {
  try {
    await context.services.audit.record(entry);
  } catch (error) {
    const level = isDatabaseUnavailable(error) ? "warn" : "error";
    context.logger[level](
      {
        err: error,
        mutation: entry.mutation,
        actor: entry.actor,
        account: entry.account,
        object: entry.object,
      },
      "writing the audit entry failed",
    );
  }
}

/**
 * Names the account and object a mutation acted on, from its arguments:
 * the queue that an input with `account` and `name` requests, else the
 * first Pulse queue name found (or, failing that, a queue returned as the
 * result's `name`), then an `account` or `username` argument, then an
 * `email` or `name` argument.
 */
export function describeTarget(
  args: Record<string, unknown>,
  result?: unknown,
): { account: string | null; object: string | null } {
  const strings = collectStrings(args);
  const resultName = (result as { name?: unknown } | null | undefined)?.name;
  if (typeof resultName === "string") strings.push(["name", resultName]);
  // A failed createQueue returns no queue, so its name is built from the
  // input's account and name, as createQueue builds it.
  const requested = requestedQueueName(args.input);
  if (requested !== null) strings.unshift(["name", requested]);

  const queue = strings.find(([, value]) => queueAccount(value) !== null)?.[1];
  const byKey = (keys: string[]) =>
    strings.find(([key]) => keys.includes(key))?.[1] ?? null;
  const account =
    byKey(["account", "username"]) ?? (queue ? queueAccount(queue) : null);
  const object = queue ?? account ?? byKey(["email", "name"]);
  return { account: capTarget(account), object: capTarget(object) };
}

function capTarget(name: string | null): string | null {
  if (name === null || name.length <= MAX_TARGET_LENGTH) return name;
  return cutString(name, MAX_TARGET_LENGTH);
}

/**
 * Returns queue/<account>/<name> for an input object with string
 * `account` and `name` fields, such as createQueue's, or null.
 */
function requestedQueueName(input: unknown): string | null {
  const { account, name } = (input ?? {}) as Record<string, unknown>;
  if (typeof account !== "string" || typeof name !== "string") return null;
  const prefix = `queue/${account}/`;
  return name.startsWith(prefix) ? name : prefix + name;
}

/** Pairs of argument name and string value, depth first. */
function collectStrings(value: unknown, key = ""): [string, string][] {
  if (typeof value === "string") return [[key, value]];
  if (Array.isArray(value)) {
    return value.flatMap((item) => collectStrings(item, key));
  }
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([name, item]) =>
      collectStrings(item, name),
    );
  }
  return [];
}

/**
 * Copies the arguments with the value of every secret-looking key replaced,
 * and the password of every URL in a string replaced with "***".
 */
export function redactSecrets(value: unknown): unknown {
  if (typeof value === "string") return redactUrl(value);
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === "object") {
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      copy[key] = SECRET_KEY.test(key) ? REDACTED : redactSecrets(item);
    }
    return copy;
  }
  return value === undefined ? null : value;
}

/**
 * Returns the arguments unchanged when their JSON fits in `maxBytes`.
 * Otherwise each string is cut to an equal share of the limit, with a
 * marker giving its full length. Arguments still too large after that,
 * such as long lists, are replaced by one marker giving their size.
 */
export function capArguments(value: unknown, maxBytes: number): unknown {
  const size = jsonBytes(value);
  if (size <= maxBytes) return value;
  const strings = countStrings(value);
  const share = Math.floor(maxBytes / Math.max(strings, 1) / 2);
  const cut = cutStrings(value, Math.max(share - 40, 16));
  if (jsonBytes(cut) <= maxBytes) return cut;
  const note = `The arguments took ${size} bytes of JSON, over the limit of ${maxBytes}.`;
  return { "[cut]": note };
}

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? "null");
}

function countStrings(value: unknown): number {
  if (typeof value === "string") return 1;
  if (Array.isArray(value)) {
    return value.reduce((sum: number, item) => sum + countStrings(item), 0);
  }
  if (value && typeof value === "object") {
    return countStrings(Object.values(value));
  }
  return 0;
}

function cutStrings(value: unknown, maxLength: number): unknown {
  if (typeof value === "string") {
    return value.length > maxLength ? cutString(value, maxLength) : value;
  }
  if (Array.isArray(value)) {
    return value.map((item) => cutStrings(item, maxLength));
  }
  if (value && typeof value === "object") {
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      copy[key] = cutStrings(item, maxLength);
    }
    return copy;
  }
  return value;
}

/** Cuts a string to `maxLength` characters and appends its length. */
function cutString(value: string, maxLength: number): string {
  return `${value.slice(0, maxLength)}... [cut from ${value.length} characters]`;
}

function errorCode(error: unknown): string {
  const known = toGatewayError(error);
  if (known) return known.code;
  if (error instanceof GraphQLError) {
    const code = error.extensions?.code;
    if (typeof code === "string") return code;
  }
  return ErrorCode.INTERNAL_SERVER_ERROR;
}

function errorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return redactUrlPasswords(message).slice(0, MAX_ERROR_LENGTH);
}
