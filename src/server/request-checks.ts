// Checks of each HTTP operation once Apollo Server has parsed and
// validated it, before it runs.
import type { ApolloServerPlugin } from "@apollo/server";
import {
  GraphQLError,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from "graphql";

import { ErrorCode } from "../errors";
import type { Logger } from "../logger";
import {
  checkInputDepth,
  checkNulCharacters,
  type GraphQLContext,
} from "../schema";
import { rateLimitMessage, type RateLimiter } from "./rate-limit";

/**
 * Rejects variables nested too deeply with BAD_USER_INPUT, then
 * subscriptions with BAD_REQUEST, because over HTTP they would run once
 * with no event and fail with an internal error. Then rejects strings
 * containing U+0000 with BAD_USER_INPUT, and takes a rate-limit token for
 * each mutation field after the first.
 */
export function requestChecksPlugin(
  rateLimiter: RateLimiter,
  logger: Logger,
): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ document, operation, request, contextValue }) {
          const tooDeep = checkInputDepth(request.variables);
          if (tooDeep) throw tooDeep;
          if (operation?.operation === "subscription") {
            throw new GraphQLError(
              "Subscriptions run over graphql-ws (WebSocket) on this same " +
                "address, not over HTTP; connect with a graphql-ws client.",
              { extensions: { code: "BAD_REQUEST", http: { status: 400 } } },
            );
          }
          const error = checkNulCharacters(document, request.variables);
          if (error) throw error;
          const viewer = contextValue.viewer;
          if (!operation || !viewer) return;
          // The HTTP request has already taken one token.
          const extra = mutationFieldCount(document, operation) - 1;
          if (extra <= 0) return;
          const rejection = takeMutationTokens(
            rateLimiter,
            `user:${viewer.email}`,
            extra,
            logger,
          );
          if (rejection) throw rejection;
        },
      };
    },
  };
}

/**
 * Takes `count` more tokens for the fields of a mutation, and returns the
 * error to send when the bucket does not have them.
 */
export function takeMutationTokens(
  rateLimiter: RateLimiter,
  key: string,
  count: number,
  logger: Logger,
): GraphQLError | null {
  const decision = rateLimiter.take(key, count);
  if (decision.allowed) return null;
  if (decision.firstRejection) {
    logger.warn(
      { key, tokens: count, retryAfterMs: decision.retryAfterMs },
      "rate limit reached by the fields of a mutation",
    );
  }
  const retryAfterSeconds = Math.ceil(decision.retryAfterMs / 1000);
  // Apollo Server sets the headers of extensions.http on the response, so
  // this 429 carries Retry-After like the one the HTTP rate limit sends.
  const headers = new Map([["retry-after", String(retryAfterSeconds)]]);
  return new GraphQLError(
    `${rateLimitMessage(rateLimiter, decision.retryAfterMs)} Each ` +
      `top-level field of a mutation, aliases included, counts as one ` +
      `request, and this operation has ${count + 1}; send fewer at once.`,
    {
      extensions: {
        code: ErrorCode.RATE_LIMITED,
        retryAfterSeconds,
        http: { status: 429, headers },
      },
    },
  );
}

/**
 * Counts the top-level fields of a mutation, aliases and fields in
 * fragments included. Returns 1 for a query or subscription.
 */
export function mutationFieldCount(
  document: DocumentNode,
  operation: OperationDefinitionNode,
): number {
  if (operation.operation !== "mutation") return 1;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) {
      fragments.set(definition.name.value, definition);
    }
  }
  return countFields(operation.selectionSet, fragments, new Set());
}

function countFields(
  selectionSet: SelectionSetNode,
  fragments: Map<string, FragmentDefinitionNode>,
  visited: Set<string>,
): number {
  let count = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      count += 1;
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      count += countFields(selection.selectionSet, fragments, visited);
    } else {
      // Validation rejects a cycle of spreads, but the WebSocket check runs
      // before validation, so a cycle is guarded against here.
      const name = selection.name.value;
      const fragment = fragments.get(name);
      if (!fragment || visited.has(name)) continue;
      visited.add(name);
      count += countFields(fragment.selectionSet, fragments, visited);
    }
  }
  return count;
}
