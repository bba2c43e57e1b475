import type { Server as HttpServer } from "node:http";

import {
  getOperationAST,
  validate,
  type DocumentNode,
  type GraphQLSchema,
} from "graphql";
import { CloseCode } from "graphql-ws";
import { WebSocketServer } from "ws";

import type { Viewer, VerifyBearer } from "../auth";
import type { LimitsConfig } from "../config";
import type { Logger } from "../logger";
import {
  checkInputDepth,
  createErrorFormatter,
  findNulInVariables,
  formatResultErrors,
  hasNulLiteral,
  nulCharacterError,
  type GraphQLContext,
  type Services,
} from "../schema";
import { closeReason } from "./close-reason";
import { DocumentCache } from "./documents";
import { SharedFrames, sharedFrameHooks } from "./shared-frames";
import { serveGraphQLWs } from "./ws-adapter";
import type { RateLimiter } from "./rate-limit";
import { mutationFieldCount, takeMutationTokens } from "./request-checks";
import {
  checkSubscribeLimits,
  SocketsPerUser,
  socketValidationRules,
} from "./ws-limits";

/**
 * Counts the top-level fields of the operation a subscribe message names,
 * or returns 1 when its document does not parse, which fails later.
 */
function socketMutationFieldCount(
  documents: DocumentCache,
  payload: { query: string; operationName?: string | null },
): number {
  let document: DocumentNode;
  try {
    document = documents.parse(payload.query);
  } catch {
    return 1;
  }
  const operation = getOperationAST(document, payload.operationName);
  return operation ? mutationFieldCount(document, operation) : 1;
}

/** Close code for a socket whose token expired while it was open. */
export const TOKEN_EXPIRED_CLOSE_CODE = CloseCode.Forbidden;

export const TOKEN_EXPIRED_CLOSE_REASON =
  "Token expired: get a new token and reconnect with it.";

/** The fix kept at the end of a token error cut to fit a close frame. */
const TOKEN_ACTION = "Get a new token and reconnect.";

// The HTTP message also explains the Authorization header, which does not
// fit a close frame.
const MISSING_TOKEN_CLOSE_REASON =
  'Missing token: put {"authorization": "Bearer <jwt>"} in the ' +
  "connection_init payload.";

/**
 * Close code of every open socket when the gateway stops (RFC 6455
 * "Going away").
 */
export const SHUTDOWN_CLOSE_CODE = 1001;

export const SHUTDOWN_CLOSE_REASON =
  "The gateway is shutting down; reconnect to subscribe again.";

type SocketExtra = {
  viewer?: Viewer;
  anonymous?: boolean;
  expiryTimer?: NodeJS.Timeout;
};

export interface WebSocketOptions {
  httpServer: HttpServer;
  path: string;
  schema: GraphQLSchema;
  verify: VerifyBearer;
  services: Services;
  logger: Logger;
  production: boolean;
  /** Accept sockets without a token, for the messages subscription only. */
  allowAnonymous: boolean;
  limits: LimitsConfig;
  introspection: boolean;
  /** Shared with HTTP, so each subscribe message takes from the same bucket. */
  rateLimiter: RateLimiter;
}

/**
 * Serves graphql-ws on the HTTP server's port. The token is checked once at
 * connection_init: a missing or invalid one closes the socket with 4403,
 * and the socket is closed with 4403 when the token expires.
 */
export function startWebSocketServer(options: WebSocketOptions) {
  const { logger } = options;
  const wsServer = new WebSocketServer({
    server: options.httpServer,
    path: options.path,
    // The HTTP body limit also bounds each WebSocket message; a larger one
    // closes the socket with 1009 before it is parsed.
    maxPayload: options.limits.maxBodyBytes,
  });
  let connections = 0;
  const sockets = new SocketsPerUser(options.limits.maxSocketsPerUser);
  const format = createErrorFormatter(logger, options.production);
  // `messages` events depend on the event alone, so subscriptions to the
  // same document share their execution and serialization.
  const sharedFrames = sharedFrameHooks(
    "messages",
    new SharedFrames((errors) => formatResultErrors(format, errors)),
  );
  const documents = new DocumentCache();
  const rules = socketValidationRules(options.limits, options.introspection);
  const cleanup = serveGraphQLWs<Record<string, unknown>, SocketExtra>(
    {
      schema: options.schema,
      parse: (query) => documents.parse(query),
      validate: (schema, document) =>
        documents.validate(document, () =>
          hasNulLiteral(document)
            ? [nulCharacterError("A string argument")]
            : validate(schema, document, rules),
        ),
      onConnect: async (ctx) => {
        const authorization = readAuthorization(ctx.connectionParams);
        if (!authorization && options.allowAnonymous) {
          ctx.extra.anonymous = true;
          logger.info("anonymous websocket connected");
          return true;
        }
        try {
          const viewer = await options.verify(authorization);
          const refusal = sockets.open(viewer.email);
          if (refusal) {
            logger.info({ viewer: viewer.email }, "websocket over the socket limit");
            ctx.extra.socket.close(
              refusal.code,
              closeReason(refusal.reason, "Close another socket first."),
            );
            return false;
          }
          ctx.extra.viewer = viewer;
          scheduleExpiry(ctx.extra, viewer, ctx.extra.socket, logger);
          connections += 1;
          logger.info({ viewer: viewer.email }, "websocket connected");
          return true;
        } catch (error) {
          const reason = authorization
            ? closeReason(
                (error as Error).message,
                TOKEN_ACTION,
                (error as { brief?: string }).brief,
              )
            : MISSING_TOKEN_CLOSE_REASON;
          logger.info({ reason }, "websocket rejected");
          // Closing here, before graphql-ws closes with a bare "Forbidden",
          // gives the client the reason its token was rejected.
          ctx.extra.socket.close(CloseCode.Forbidden, reason);
          return false;
        }
      },
      onClose: (ctx, code, reason) => {
        const extra = ctx.extra as SocketExtra;
        if (extra.expiryTimer) clearTimeout(extra.expiryTimer);
        if (extra.viewer) {
          connections -= 1;
          sockets.close(extra.viewer.email);
          logger.info(
            { viewer: extra.viewer.email, code, reason },
            "websocket closed",
          );
        }
      },
      onSubscribe: (ctx, _id, payload) => {
        const tooDeep = checkInputDepth(payload.variables);
        if (tooDeep) return [tooDeep];
        const variable = findNulInVariables(payload.variables);
        if (variable) return [nulCharacterError(`Variable ${variable}`)];
        const viewer = (ctx.extra as SocketExtra).viewer;
        const rateLimitKey = viewer
          ? `user:${viewer.email}`
          : `address:${ctx.extra.request.socket.remoteAddress ?? "unknown"}`;
        const errors = checkSubscribeLimits({
          limits: options.limits,
          rateLimiter: options.rateLimiter,
          logger,
          openOperations: Object.keys(ctx.subscriptions).length,
          rateLimitKey,
        });
        if (errors) return errors;
        // After the rate limit, so documents that fail to parse cost a token.
        const parseError = documents.parseError(payload.query);
        if (parseError) return [parseError];
        // The subscribe message has taken one token; a mutation takes one
        // more per further top-level field.
        const extra = socketMutationFieldCount(documents, payload) - 1;
        if (extra <= 0) return undefined;
        const rejection = takeMutationTokens(
          options.rateLimiter,
          rateLimitKey,
          extra,
          logger,
        );
        return rejection ? [rejection] : undefined;
      },
      context: (ctx, id, payload): GraphQLContext => {
        const context: GraphQLContext = {
          viewer: (ctx.extra as SocketExtra).viewer ?? null,
          allowAnonymous: (ctx.extra as SocketExtra).anonymous === true,
          closeSocket: (code, reason, action) =>
            ctx.extra.socket.close(code, closeReason(reason, action)),
          authError: null,
          services: options.services,
          logger,
        };
        sharedFrames.register(context, ctx.extra, id, payload);
        return context;
      },
      subscribe: (args) => sharedFrames.subscribe(args),
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors
          ? { ...result, errors: formatResultErrors(format, result.errors) }
          : undefined,
      onError: (_ctx, _id, _payload, errors) =>
        formatResultErrors(format, errors),
    },
    wsServer,
    { logger, production: options.production },
  );
  return {
    /**
     * Closes every open socket with 1001 and a reason that names the
     * shutdown, then stops the WebSocket server. graphql-ws would close
     * them with a bare "Going away".
     */
    dispose: async () => {
      const open = wsServer.clients.size;
      for (const socket of wsServer.clients) {
        socket.close(SHUTDOWN_CLOSE_CODE, SHUTDOWN_CLOSE_REASON);
      }
      logger.info({ sockets: open }, "websockets closed for shutdown");
      await cleanup.dispose();
    },
    connections: () => connections,
  };
}


function readAuthorization(
  params: Readonly<Record<string, unknown>> | undefined,
): string | undefined {
  const value = params?.authorization ?? params?.Authorization;
  return typeof value === "string" ? value : undefined;
}

function scheduleExpiry(
  extra: SocketExtra,
  viewer: Viewer,
  socket: { close(code: number, reason: string): void },
  logger: Logger,
): void {
  const remainingMs = viewer.expiresAt * 1000 - Date.now();
  // setTimeout fires at once for delays above 2^31-1 ms (24.8 days), so a
  // longer-lived token is cut at that age.
  const delayMs = Math.min(Math.max(remainingMs, 0), 2 ** 31 - 1);
  extra.expiryTimer = setTimeout(() => {
    logger.info({ viewer: viewer.email }, "websocket token expired");
    socket.close(TOKEN_EXPIRED_CLOSE_CODE, TOKEN_EXPIRED_CLOSE_REASON);
  }, delayMs);
}
