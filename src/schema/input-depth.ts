// Limits how deeply the arrays and objects of a variable nest. A payload
// filter's `equals` and `in` take any JSON value, and graphql-js and the
// filter code walk such values recursively. A value nested thousands of
// levels deep overflows the call stack, and over graphql-ws that error
// closes the whole socket with 4500 instead of failing one operation.
import { GraphQLError } from "graphql";

import { ErrorCode, quote } from "../errors";

/** Maximum nesting of arrays and objects in one variable's value. */
export const MAX_INPUT_DEPTH = 32;

/** Longest variable path quoted in the error message, in characters. */
const MAX_PATH_LENGTH = 80;

/**
 * Returns the path of the first value nested deeper than `maxDepth`, such
 * as `$filter[0].equals.a`, or null when every variable is within it.
 */
export function findDeepVariable(
  variables: Readonly<Record<string, unknown>> | null | undefined,
  maxDepth = MAX_INPUT_DEPTH,
): string | null {
  if (!variables) return null;
  for (const [name, value] of Object.entries(variables)) {
    const found = findDeepValue(value, `$${name}`, maxDepth);
    if (found) return found;
  }
  return null;
}

/** Returns the BAD_USER_INPUT error for a value too deep at `path`. */
export function inputDepthError(
  path: string,
  maxDepth = MAX_INPUT_DEPTH,
): GraphQLError {
  const shown =
    path.length <= MAX_PATH_LENGTH ? path : `${path.slice(0, MAX_PATH_LENGTH)}...`;
  return new GraphQLError(
    `Variable ${quote(variableName(path), 40)} nests arrays and objects more than ` +
      `${maxDepth} levels deep (at ${shown}), the maximum for input values ` +
      `such as payload filters; send a flatter value.`,
    {
      extensions: {
        code: ErrorCode.BAD_USER_INPUT,
        maxDepth,
        http: { status: 400 },
      },
    },
  );
}

/** Returns the BAD_USER_INPUT error for the variables, or null. */
export function checkInputDepth(
  variables: Readonly<Record<string, unknown>> | null | undefined,
): GraphQLError | null {
  const path = findDeepVariable(variables);
  return path ? inputDepthError(path) : null;
}

/** One step from a variable to a nested value, linked to its parent. */
interface PathStep {
  segment: string;
  parent: PathStep | null;
}

// Walks the value with an explicit stack, because the value may nest far
// deeper than the call stack allows. Paths are built only for the value
// reported, so long keys are not copied into every child's path.
function findDeepValue(root: unknown, rootPath: string, maxDepth: number): string | null {
  const pending: [value: unknown, step: PathStep, depth: number][] = [
    [root, { segment: rootPath, parent: null }, 0],
  ];
  while (pending.length > 0) {
    const [value, step, depth] = pending.pop()!;
    if (value === null || typeof value !== "object") continue;
    if (depth >= maxDepth) return joinPath(step);
    if (Array.isArray(value)) {
      value.forEach((item, index) =>
        pending.push([item, { segment: `[${index}]`, parent: step }, depth + 1]),
      );
    } else {
      for (const [key, item] of Object.entries(value)) {
        pending.push([item, { segment: `.${key}`, parent: step }, depth + 1]);
      }
    }
  }
  return null;
}

function joinPath(step: PathStep): string {
  const segments: string[] = [];
  for (let at: PathStep | null = step; at; at = at.parent) {
    segments.push(at.segment);
  }
  return segments.reverse().join("");
}

function variableName(path: string): string {
  return /^\$[^.[]*/.exec(path)![0];
}
