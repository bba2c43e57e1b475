// The server: one port for GraphQL over HTTP and graphql-ws, health and
// metrics routes, and the gateway's lifecycle.
export { Gateway, GRAPHQL_PATH, type GatewayState } from "./gateway";
export {
  SHUTDOWN_CLOSE_CODE,
  SHUTDOWN_CLOSE_REASON,
  TOKEN_EXPIRED_CLOSE_CODE,
} from "./ws";
