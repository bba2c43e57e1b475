// Checks of each HTTP operation once Apollo Server has parsed and
// validated it, before it runs.
import type { ApolloServerPlugin } from "@apollo/server";
import { GraphQLError } from "graphql";

import { checkNulCharacters, type GraphQLContext } from "../schema";

/**
 * Rejects strings containing U+0000 with BAD_USER_INPUT, and subscriptions
 * with BAD_REQUEST: over HTTP they would run once with no event and fail
 * with an internal error.
 */
export function requestChecksPlugin(): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ document, operation, request }) {
          if (operation?.operation === "subscription") {
            throw new GraphQLError(
              "Subscriptions run over graphql-ws (WebSocket) on this same " +
                "address, not over HTTP; connect with a graphql-ws client.",
              { extensions: { code: "BAD_REQUEST", http: { status: 400 } } },
            );
          }
          const error = checkNulCharacters(document, request.variables);
          if (error) throw error;
        },
      };
    },
  };
}
