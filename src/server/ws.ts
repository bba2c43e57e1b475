import type { Server as HttpServer } from "node:http";

import {
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  specifiedRules,
  validate,
  type GraphQLSchema,
  type ValidationRule,
} from "graphql";
import { CloseCode } from "graphql-ws";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";

import type { Viewer, VerifyBearer } from "../auth";
import type { LimitsConfig } from "../config";
import { ErrorCode } from "../errors";
import type { Logger } from "../logger";
import {
  createErrorFormatter,
  findNulInVariables,
  formatResultErrors,
  hasNulLiteral,
  nulCharacterError,
  requestLimitRules,
  type GraphQLContext,
  type Services,
} from "../schema";
import { rateLimitMessage, type RateLimiter } from "./rate-limit";

/** Close code for a socket whose token expired while it was open. */
export const TOKEN_EXPIRED_CLOSE_CODE = CloseCode.Forbidden;

/**
 * Close code for a socket over MAX_SOCKETS_PER_USER. It is in the private
 * range next to 4290 for slow subscribers, because graphql-ws uses 44xx.
 */
export const TOO_MANY_SOCKETS_CLOSE_CODE = 4291;

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
  });
  let connections = 0;
  const socketsPerUser = new Map<string, number>();
  const format = createErrorFormatter(logger, options.production);
  const rules = validationRules(options);
  const cleanup = useServer<Record<string, unknown>, SocketExtra>(
    {
      schema: options.schema,
      validate: (schema, document) =>
        hasNulLiteral(document)
          ? [nulCharacterError("A string argument")]
          : validate(schema, document, rules),
      onConnect: async (ctx) => {
        const authorization = readAuthorization(ctx.connectionParams);
        if (!authorization && options.allowAnonymous) {
          ctx.extra.anonymous = true;
          logger.info("anonymous websocket connected");
          return true;
        }
        try {
          const viewer = await options.verify(authorization);
          const open = socketsPerUser.get(viewer.email) ?? 0;
          if (open >= options.limits.maxSocketsPerUser) {
            logger.info({ viewer: viewer.email, open }, "websocket over the socket limit");
            ctx.extra.socket.close(
              TOO_MANY_SOCKETS_CLOSE_CODE,
              `Too many sockets: this user has ${open} open, the limit set ` +
                `by MAX_SOCKETS_PER_USER; close one first.`,
            );
            return false;
          }
          socketsPerUser.set(viewer.email, open + 1);
          ctx.extra.viewer = viewer;
          scheduleExpiry(ctx.extra, viewer, ctx.extra.socket, logger);
          connections += 1;
          logger.info({ viewer: viewer.email }, "websocket connected");
          return true;
        } catch (error) {
          const reason = closeReason((error as Error).message);
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
          const open = (socketsPerUser.get(extra.viewer.email) ?? 1) - 1;
          if (open > 0) socketsPerUser.set(extra.viewer.email, open);
          else socketsPerUser.delete(extra.viewer.email);
          logger.info(
            { viewer: extra.viewer.email, code, reason },
            "websocket closed",
          );
        }
      },
      onSubscribe: (ctx, _id, payload) => {
        const variable = findNulInVariables(payload.variables);
        if (variable) return [nulCharacterError(`Variable ${variable}`)];
        return checkSubscribeLimits(
          options,
          ctx.subscriptions,
          ctx.extra as SocketExtra,
          ctx.extra.request.socket.remoteAddress,
        );
      },
      context: (ctx): GraphQLContext => ({
        viewer: (ctx.extra as SocketExtra).viewer ?? null,
        allowAnonymous: (ctx.extra as SocketExtra).anonymous === true,
        closeSocket: (code, reason) =>
          ctx.extra.socket.close(code, closeReason(reason)),
        authError: null,
        services: options.services,
        logger,
      }),
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors
          ? { ...result, errors: formatResultErrors(format, result.errors) }
          : undefined,
      onError: (_ctx, _id, _payload, errors) =>
        formatResultErrors(format, errors),
    },
    wsServer,
  );
  return {
    dispose: () => cleanup.dispose(),
    connections: () => connections,
  };
}

function validationRules(options: WebSocketOptions): ValidationRule[] {
  const rules = [...specifiedRules, ...requestLimitRules(options.limits)];
  if (!options.introspection) rules.push(NoSchemaIntrospectionCustomRule);
  return rules;
}

/**
 * Rejects a subscribe message over MAX_SUBSCRIPTIONS_PER_SOCKET or the
 * user's rate limit; graphql-ws then sends the errors for that operation
 * only and keeps the socket open.
 */
function checkSubscribeLimits(
  options: WebSocketOptions,
  subscriptions: Readonly<Record<string, unknown>>,
  extra: SocketExtra,
  remoteAddress: string | undefined,
): GraphQLError[] | undefined {
  // graphql-ws has already added the new operation's id.
  const open = Object.keys(subscriptions).length;
  const max = options.limits.maxSubscriptionsPerSocket;
  if (open > max) {
    return [
      new GraphQLError(
        `Too many operations on this socket: at most ${max} at a time, the ` +
          `limit set by MAX_SUBSCRIPTIONS_PER_SOCKET; complete one first ` +
          `or open another socket.`,
        { extensions: { code: ErrorCode.BAD_USER_INPUT, limit: max } },
      ),
    ];
  }
  const key = extra.viewer
    ? `user:${extra.viewer.email}`
    : `address:${remoteAddress ?? "unknown"}`;
  const decision = options.rateLimiter.take(key);
  if (decision.allowed) return undefined;
  if (decision.firstRejection) {
    options.logger.warn(
      { key, retryAfterMs: decision.retryAfterMs },
      "rate limit reached; rejecting subscribe messages until the bucket refills",
    );
  }
  return [
    new GraphQLError(rateLimitMessage(options.rateLimiter, decision.retryAfterMs), {
      extensions: {
        code: ErrorCode.RATE_LIMITED,
        retryAfterSeconds: Math.ceil(decision.retryAfterMs / 1000),
      },
    }),
  ];
}

/** Cuts a message to a WebSocket close reason's limit of 123 bytes. */
function closeReason(message: string): string {
  const limit = 123;
  if (Buffer.byteLength(message) <= limit) return message;
  let cut = message.slice(0, limit - 3);
  while (Buffer.byteLength(cut) > limit - 3) cut = cut.slice(0, -1);
  return `${cut}...`;
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
    socket.close(TOKEN_EXPIRED_CLOSE_CODE, "Token expired");
  }, delayMs);
}
