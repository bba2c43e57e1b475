// Rejects the NUL character (U+0000) in every string a request sends.
// PostgreSQL text cannot store it, so a name containing it would fail in
// the database with an internal error. No account, queue, exchange, pattern
// or e-mail address may contain it, so one check up front covers them all.
// NOTE: a payload filter value with U+0000 is rejected too, although the
// filter never reaches the database.
import { GraphQLError, visit, type DocumentNode } from "graphql";

import { ErrorCode } from "../errors";

/**
 * Returns the path of the first variable string containing U+0000, such
 * as `$input.name`, or null when there is none.
 */
export function findNulInVariables(
  variables: Readonly<Record<string, unknown>> | null | undefined,
): string | null {
  if (!variables) return null;
  for (const [name, value] of Object.entries(variables)) {
    const found = findNul(value, `$${name}`);
    if (found) return found;
  }
  return null;
}

/** Returns whether a string literal of the document contains U+0000. */
export function hasNulLiteral(document: DocumentNode): boolean {
  let found = false;
  visit(document, {
    StringValue(node) {
      if (node.value.includes("\u0000")) found = true;
    },
  });
  return found;
}

/** Returns the BAD_USER_INPUT error for a NUL character at `where`. */
export function nulCharacterError(where: string): GraphQLError {
  return new GraphQLError(
    `${where} contains the NUL character (U+0000), which no name, pattern ` +
      `or e-mail address may contain; remove it.`,
    { extensions: { code: ErrorCode.BAD_USER_INPUT, http: { status: 400 } } },
  );
}

/** Returns the BAD_USER_INPUT error for a request, or null. */
export function checkNulCharacters(
  document: DocumentNode,
  variables: Readonly<Record<string, unknown>> | null | undefined,
): GraphQLError | null {
  const variable = findNulInVariables(variables);
  if (variable) return nulCharacterError(`Variable ${variable}`);
  if (hasNulLiteral(document)) return nulCharacterError("A string argument");
  return null;
}

// Walks the value with an explicit stack, because a hostile body may nest
// JSON arrays far deeper than the call stack allows.
function findNul(root: unknown, rootPath: string): string | null {
  const pending: [value: unknown, path: string][] = [[root, rootPath]];
  while (pending.length > 0) {
    const [value, path] = pending.pop()!;
    if (typeof value === "string") {
      if (value.includes("\u0000")) return path;
    } else if (Array.isArray(value)) {
      value.forEach((item, index) => pending.push([item, `${path}[${index}]`]));
    } else if (value !== null && typeof value === "object") {
      for (const [key, item] of Object.entries(value)) {
        if (key.includes("\u0000")) return `${path}.${JSON.stringify(key)}`;
        pending.push([item, `${path}.${key}`]);
      }
    }
  }
  return null;
}
