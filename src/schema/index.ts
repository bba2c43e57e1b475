// The GraphQL layer: types and thin resolvers that validate, authorize and
// call a service.
export { buildGatewaySchema } from "./build";
export { createErrorFormatter, toGraphQLError } from "./errors";
export type { GraphQLContext, Services } from "./context";
