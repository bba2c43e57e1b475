import type { GraphQLError, GraphQLFormattedError } from "graphql";
import { unwrapResolverError } from "@apollo/server/errors";

import { ErrorCode, isGatewayError } from "../errors";
import type { Logger } from "../logger";
import { ManagementApiError } from "../rabbitmq/management";

/**
 * Gives every error an `extensions.code` from ErrorCode. Gateway errors
 * keep their message and details; a broker reply keeps its status and
 * reason; anything else is logged and, in production, hidden.
 */
export function createErrorFormatter(logger: Logger, production: boolean) {
  return (
    formatted: GraphQLFormattedError,
    error: unknown,
  ): GraphQLFormattedError => {
    const original = unwrapOriginal(error);
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
