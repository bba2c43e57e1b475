// Recognizes a database that is away, as opposed to a query that failed,
// from the shapes Prisma 7, its pg driver adapter and pg itself give the
// failure.

/**
 * Prisma error codes of a server that cannot be reached, timed out or
 * closed the connection, and of a pool that found no connection in time.
 */
const PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024"]);

/** `kind` values of @prisma/adapter-pg for socket failures. */
const ADAPTER_KINDS = new Set([
  "DatabaseNotReachable",
  "ConnectionClosed",
  "SocketTimeout",
]);

/** Socket error codes that Node sets on a failed connection. */
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "ETIMEDOUT",
  "EPIPE",
]);

/**
 * PostgreSQL SQLSTATEs of a server that is shutting down, crashed or does
 * not accept connections yet (57P01 to 57P03). Class 08 is checked apart.
 */
const SERVER_GONE_STATES = new Set(["57P01", "57P02", "57P03"]);

/** pg's messages for a connection that ended without an error code. */
const CLOSED_MESSAGE =
  /^Connection terminated|connection error and is not queryable/;

/**
 * Returns true when the error, or an error it wraps, shows that
 * PostgreSQL cannot be reached or dropped the connection.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === "object" && !seen.has(current)) {
    seen.add(current);
    if (describesUnavailable(current as FailureShape)) return true;
    current = nextInChain(current as FailureShape);
  }
  return false;
}

interface FailureShape {
  code?: unknown;
  kind?: unknown;
  message?: unknown;
  cause?: unknown;
  meta?: { driverAdapterError?: unknown };
}

function describesUnavailable(failure: FailureShape): boolean {
  const code = typeof failure.code === "string" ? failure.code : "";
  if (PRISMA_CODES.has(code) || SOCKET_CODES.has(code)) return true;
  // The adapter keeps a PostgreSQL error as kind "postgres" with its code.
  if (SERVER_GONE_STATES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) {
    return true;
  }
  if (typeof failure.kind === "string" && ADAPTER_KINDS.has(failure.kind)) {
    return true;
  }
  return (
    typeof failure.message === "string" && CLOSED_MESSAGE.test(failure.message)
  );
}

/**
 * Returns the first socket error code (such as ECONNREFUSED) in the error
 * or an error it wraps, or null.
 */
export function socketErrorCode(error: unknown): string | null {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === "object" && !seen.has(current)) {
    seen.add(current);
    const code = (current as FailureShape).code;
    if (typeof code === "string" && SOCKET_CODES.has(code)) return code;
    current = nextInChain(current as FailureShape);
  }
  return null;
}

/** Returns the adapter's error inside Prisma's, or else the cause. */
function nextInChain(failure: FailureShape): unknown {
  return failure.meta?.driverAdapterError ?? failure.cause;
}
