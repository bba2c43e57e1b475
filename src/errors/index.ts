// Domain errors. Services throw these; the GraphQL layer turns each into a
// GraphQLError whose extensions.code is the error's code, so services need
// no GraphQL import.

export enum ErrorCode {
  UNAUTHENTICATED = "UNAUTHENTICATED",
  FORBIDDEN = "FORBIDDEN",
  BAD_USER_INPUT = "BAD_USER_INPUT",
  NOT_FOUND = "NOT_FOUND",
  CONFLICT = "CONFLICT",
  BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE",
  /** A per-user or per-account quota is used up; delete something first. */
  QUOTA_EXCEEDED = "QUOTA_EXCEEDED",
  /** PostgreSQL cannot be reached or dropped the connection; retry later. */
  DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE",
  /** The caller's rate limit is used up; retry later. */
  RATE_LIMITED = "RATE_LIMITED",
  INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR",
}

/** Extra facts kept on an error and shown in its extensions. */
export type ErrorDetails = Record<string, unknown>;

export class GatewayError extends Error {
  override name = "GatewayError";

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
    options?: { cause?: unknown; brief?: string },
  ) {
    super(message, options);
    this.brief = options?.brief;
  }

  /**
   * The fact and the fix in few words, for where the message does not
   * fit, such as a WebSocket close reason (123 bytes).
   */
  readonly brief?: string;
}

export class UnauthenticatedError extends GatewayError {
  constructor(message: string, details?: ErrorDetails, brief?: string) {
    super(ErrorCode.UNAUTHENTICATED, message, details, { brief });
  }
}

export class ForbiddenError extends GatewayError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.FORBIDDEN, message, details);
  }
}

export class BadInputError extends GatewayError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.BAD_USER_INPUT, message, details);
  }
}

export class NotFoundError extends GatewayError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.NOT_FOUND, message, details);
  }
}

export class ConflictError extends GatewayError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.CONFLICT, message, details);
  }
}

export class QuotaExceededError extends GatewayError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.QUOTA_EXCEEDED, message, details);
  }
}

export class BrokerUnavailableError extends GatewayError {
  constructor(message: string, details?: ErrorDetails, cause?: unknown) {
    super(ErrorCode.BROKER_UNAVAILABLE, message, details, { cause });
  }
}

export class DatabaseUnavailableError extends GatewayError {
  constructor(message: string, details?: ErrorDetails, cause?: unknown) {
    super(ErrorCode.DATABASE_UNAVAILABLE, message, details, { cause });
  }
}

export function isGatewayError(error: unknown): error is GatewayError {
  return error instanceof GatewayError;
}

/**
 * Quotes a value for an error message, cut to `max` characters so that a
 * hostile input cannot make the message itself huge.
 */
export function quote(value: string, max = 80): string {
  if (value.length <= max) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, max))}... (${value.length} characters)`;
}
