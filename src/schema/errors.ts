import type { GraphQLError, GraphQLFormattedError } from "graphql";
import { unwrapResolverError } from "@apollo/server/errors";

import { isDatabaseUnavailable } from "../db";
import {
  DatabaseUnavailableError,
  ErrorCode,
  isGatewayError,
  type GatewayError,
} from "../errors";
import { RateLimitedLog, type Logger } from "../logger";
import { ManagementApiError } from "../rabbitmq/management";
import { MAX_NAME_BYTES } from "../services/pulse-names";

/**
 * Gives every error an `extensions.code` from ErrorCode. Gateway errors
 * keep their message and details. A database that is away becomes
 * DATABASE_UNAVAILABLE, logged at most once a minute. A broker reply keeps
 * its status and reason. Anything else is logged and, in production,
 * hidden.
 */
export function createErrorFormatter(logger: Logger, production: boolean) {
  const outages = new RateLimitedLog(logger);
  return (
    formatted: GraphQLFormattedError,
    error: unknown,
  ): GraphQLFormattedError => {
    const unwrapped = unwrapOriginal(error);
    const original = toGatewayError(unwrapped) ?? unwrapped;
    if (original instanceof DatabaseUnavailableError) {
      outages.error(
        "database",
        { err: unwrapped, path: formatted.path },
        "the database is unavailable; requests that need it fail with " +
          "DATABASE_UNAVAILABLE",
      );
    }
    if (isGatewayError(original)) {
      return {
        ...formatted,
        message: original.message,
        extensions: {
          ...formatted.extensions,
          ...original.details,
          code: original.code,
        },
      };
    }
    if (original instanceof ManagementApiError && original.status === 414) {
      return uriTooLong(formatted, original);
    }
    if (original instanceof ManagementApiError) {
      logger.error(
        { err: original, path: formatted.path },
        "RabbitMQ management API call failed",
      );
      return {
        ...formatted,
        extensions: {
          ...formatted.extensions,
          code: ErrorCode.INTERNAL_SERVER_ERROR,
          brokerStatus: original.status,
          brokerReason: original.reason,
        },
      };
    }
    if (formatted.extensions?.code) return formatted;
    logger.error({ err: original, path: formatted.path }, "unexpected error");
    return {
      ...formatted,
      message: production ? "Internal server error." : formatted.message,
      extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
    };
  };
}

/**
 * The management API returns 414 when a name in the request path is too
 * long. That is the caller's input, not a fault, so it is neither logged
 * nor shown with the API's path, which would echo the whole name.
 */
function uriTooLong(
  formatted: GraphQLFormattedError,
  error: ManagementApiError,
): GraphQLFormattedError {
  return {
    ...formatted,
    message:
      "A name in the request is too long for RabbitMQ: queue and exchange " +
      `names are at most ${MAX_NAME_BYTES} bytes of UTF-8; shorten it.`,
    extensions: {
      ...formatted.extensions,
      code: ErrorCode.BAD_USER_INPUT,
      brokerStatus: error.status,
    },
  };
}

/**
 * Returns the error as a GatewayError when it is one or when it is a
 * failure to reach the database, and null otherwise.
 */
export function toGatewayError(error: unknown): GatewayError | null {
  if (isGatewayError(error)) return error;
  if (isDatabaseUnavailable(error)) {
    return new DatabaseUnavailableError(
      "The gateway's database (PostgreSQL) cannot be reached, so the " +
        "request was not completed; retry in a few seconds. If it keeps " +
        "failing, the gateway's /readyz shows what is down.",
      {},
      error,
    );
  }
  return null;
}

/**
 * Formats the errors of an execution result the way Apollo's formatError
 * does over HTTP, for graphql-ws, which sends results as they are.
 */
export function formatResultErrors(
  format: ReturnType<typeof createErrorFormatter>,
  errors: readonly GraphQLError[],
): GraphQLFormattedError[] {
  return errors.map((error) => format(error.toJSON(), error));
}

/**
 * Returns the error a resolver or a subscription stream threw. Apollo's
 * unwrapResolverError needs a path, which errors of a subscription's
 * stream do not have over graphql-ws.
 */
function unwrapOriginal(error: unknown): unknown {
  const unwrapped = unwrapResolverError(error);
  if (unwrapped instanceof Error && "originalError" in unwrapped) {
    const inner = (unwrapped as { originalError?: unknown }).originalError;
    if (inner) return inner;
  }
  return unwrapped;
}
