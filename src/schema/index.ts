// The GraphQL layer: types and thin resolvers that validate, authorize and
// call a service.
export { buildGatewaySchema } from "./build";
export { createErrorFormatter, formatResultErrors } from "./errors";
export type { GraphQLContext, Services } from "./context";
export {
  checkInputDepth,
  findDeepVariable,
  inputDepthError,
  MAX_INPUT_DEPTH,
} from "./input-depth";
export {
  checkNulCharacters,
  findNulInVariables,
  hasNulLiteral,
  nulCharacterError,
} from "./nul-character";
export {
  maxAliasesRule,
  maxCostRule,
  maxDepthRule,
  maxFieldsRule,
  MAX_FIELDS_PER_REQUEST,
  requestLimitRules,
} from "./limits";
