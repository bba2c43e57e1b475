import { GraphQLError, type ValidationRule } from "graphql";

/**
 * Maximum number of fields, aliases included, in one request. A field such
 * as `queue(name:)` costs a broker request each, so a thousand aliases of it
 * would cost a thousand.
 */
export const MAX_FIELDS_PER_REQUEST = 200;

/**
 * Rejects a document with more than `limit` field selections. Apollo
 * reports it with the code GRAPHQL_VALIDATION_FAILED, as any invalid
 * document.
 * NOTE: a fragment's fields count once however often it is spread, so a
 * document of many spreads can still cost more than the limit.
 */
export function maxFieldsRule(limit = MAX_FIELDS_PER_REQUEST): ValidationRule {
  return (context) => {
    let fields = 0;
    return {
      Field(node) {
        fields += 1;
        if (fields === limit + 1) {
          context.reportError(
            new GraphQLError(
              `The request selects more than ${limit} fields (aliases ` +
                `included); split it into smaller requests.`,
              { nodes: node },
            ),
          );
        }
      },
    };
  };
}
