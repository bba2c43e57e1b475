// Server-side payload filters for live messages: equality on a dot path,
// one of a list, present or absent. All conditions of a filter must hold.
import { BadInputError } from "../errors";

export interface PayloadCondition {
  /** Dot-separated path into the JSON payload, such as "status.state". */
  path: string;
  equals?: unknown;
  in?: unknown[] | null;
  exists?: boolean | null;
}

export type PayloadPredicate = (payload: unknown) => boolean;

const MAX_CONDITIONS = 20;

/** Checks the conditions and returns a predicate that applies them all. */
export function compileFilter(
  conditions: readonly PayloadCondition[],
): PayloadPredicate {
  if (conditions.length > MAX_CONDITIONS) {
    throw new BadInputError(
      `The filter has ${conditions.length} conditions; use at most ` +
        `${MAX_CONDITIONS}.`,
    );
  }
  const tests = conditions.map(compileCondition);
  return (payload) => tests.every((test) => test(payload));
}

function compileCondition(condition: PayloadCondition): PayloadPredicate {
  const segments = condition.path.split(".");
  if (condition.path === "" || segments.some((segment) => segment === "")) {
    throw new BadInputError(
      `Invalid filter path "${condition.path}": use dot-separated field ` +
        `names, such as "status.workerType".`,
      { path: condition.path },
    );
  }
  const given = ["equals", "in", "exists"].filter(
    (operator) => condition[operator as keyof PayloadCondition] !== undefined,
  );
  if (given.length !== 1) {
    throw new BadInputError(
      `Filter on "${condition.path}" sets ${given.length} of equals, in ` +
        `and exists; set exactly one.`,
      { path: condition.path },
    );
  }
  if (condition.exists !== undefined) {
    const wanted = condition.exists === true;
    return (payload) => (lookup(payload, segments) !== undefined) === wanted;
  }
  if (condition.in !== undefined) {
    if (!condition.in?.length) {
      throw new BadInputError(
        `Filter on "${condition.path}" has an empty \`in\` list, which ` +
          `matches no message; list at least one value, or use equals.`,
        { path: condition.path },
      );
    }
    const options = condition.in.map(canonical);
    return (payload) => {
      const value = lookup(payload, segments);
      return value !== undefined && options.includes(canonical(value));
    };
  }
  const expected = canonical(condition.equals);
  return (payload) => {
    const value = lookup(payload, segments);
    return value !== undefined && canonical(value) === expected;
  };
}

function lookup(payload: unknown, segments: string[]): unknown {
  let value = payload;
  for (const segment of segments) {
    if (value === null || typeof value !== "object") return undefined;
    if (!Object.prototype.hasOwnProperty.call(value, segment)) return undefined;
    value = (value as Record<string, unknown>)[segment];
  }
  return value;
}

/** JSON text with sorted keys, so equal values compare equal as strings. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) => {
    if (inner === null || typeof inner !== "object" || Array.isArray(inner)) {
      return inner;
    }
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(inner).sort()) {
      sorted[key] = (inner as Record<string, unknown>)[key];
    }
    return sorted;
  }) ?? "undefined";
}
