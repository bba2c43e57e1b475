import { randomUUID } from "node:crypto";

import express, {
  type ErrorRequestHandler,
  type Express,
  type RequestHandler,
} from "express";

import type { Viewer, VerifyBearer } from "../auth";
import { ErrorCode } from "../errors";
import type { Logger } from "../logger";
import { rateLimitMessage, type RateLimiter } from "./rate-limit";

/**
 * Request headers a browser may send cross-origin: the token, JSON, and
 * the headers Apollo Sandbox and Studio's Explorer add to each operation.
 */
const ALLOWED_HEADERS = [
  "authorization",
  "content-type",
  "apollo-require-preflight",
  "x-apollo-operation-name",
  "apollographql-client-name",
  "apollographql-client-version",
].join(", ");

/** Allows the configured origins, or any origin when none is configured. */
export function corsMiddleware(origins: string[]): RequestHandler {
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (origin && (origins.length === 0 || origins.includes(origin))) {
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("vary", "origin");
      res.setHeader("access-control-allow-headers", ALLOWED_HEADERS);
      res.setHeader("access-control-allow-methods", "GET, POST, OPTIONS");
      res.setHeader("access-control-max-age", "600");
      // Chrome sends a preflight to a gateway on a private address before
      // a public page such as https://studio.apollographql.com may call it
      // (Private Network Access).
      if (req.headers["access-control-request-private-network"] === "true") {
        res.setHeader("access-control-allow-private-network", "true");
      }
    }
    if (req.method === "OPTIONS") {
      res.status(204).end();
      return;
    }
    next();
  };
}

/** Gives every request an id (x-request-id if sent) and logs its end. */
export function requestLogger(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const header = req.headers["x-request-id"];
    const requestId =
      typeof header === "string" && header.length <= 128 ? header : randomUUID();
    res.locals.requestId = requestId;
    res.locals.logger = logger.child({ requestId });
    res.setHeader("x-request-id", requestId);
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      res.locals.logger.debug(
        { method: req.method, path: req.path, status: res.statusCode, ms },
        "request",
      );
    });
    next();
  };
}

export function createApp(): Express {
  const app = express();
  app.disable("x-powered-by");
  return app;
}

/** Result of checking a request's token, shared by later handlers. */
export interface RequestAuth {
  viewer: Viewer | null;
  error: Error | null;
}

/**
 * Verifies the bearer token once per request and keeps the result in
 * `res.locals.auth`, for the rate limiter and the GraphQL context.
 */
export function authenticate(verify: VerifyBearer): RequestHandler {
  return async (req, res, next) => {
    try {
      const viewer = await verify(req.headers.authorization);
      res.locals.auth = { viewer, error: null } satisfies RequestAuth;
    } catch (error) {
      res.locals.auth = { viewer: null, error: error as Error } satisfies RequestAuth;
    }
    next();
  };
}

/**
 * Takes one token from the caller's bucket: the viewer's e-mail, or the
 * client address for requests without a valid token. Without a token left,
 * responds 429 with Retry-After and a GraphQL error body.
 * NOTE: behind a reverse proxy every request without a token comes from the
 * proxy's address and shares one bucket, because X-Forwarded-For is not read.
 */
export function rateLimit(limiter: RateLimiter, logger: Logger): RequestHandler {
  return (req, res, next) => {
    const auth = res.locals.auth as RequestAuth | undefined;
    const key = auth?.viewer
      ? `user:${auth.viewer.email}`
      : `address:${req.socket.remoteAddress ?? "unknown"}`;
    const decision = limiter.take(key);
    if (decision.allowed) {
      next();
      return;
    }
    if (decision.firstRejection) {
      (res.locals.logger ?? logger).warn(
        { key, retryAfterMs: decision.retryAfterMs },
        "rate limit reached; rejecting requests until the bucket refills",
      );
    }
    res.setHeader("retry-after", String(Math.ceil(decision.retryAfterMs / 1000)));
    res.status(429).json(
      errorBody(rateLimitMessage(limiter, decision.retryAfterMs), ErrorCode.RATE_LIMITED),
    );
  };
}

/**
 * Responds to body-parser failures and other unhandled errors with a GraphQL
 * error body in JSON, not Express's HTML page with a stack trace.
 */
export function jsonErrorHandler(
  logger: Logger,
  maxBodyBytes: number,
): ErrorRequestHandler {
  return (error, _req, res, _next) => {
    const type = (error as { type?: string }).type;
    if (type === "entity.too.large") {
      res.status(413).json(errorBody(
        `The request body is larger than ${maxBodyBytes} bytes, the limit ` +
          `set by MAX_BODY_BYTES; send a smaller request.`,
        "BAD_USER_INPUT",
      ));
      return;
    }
    if (type === "entity.parse.failed") {
      // BAD_REQUEST, as Apollo Server returns for the other malformed bodies.
      res.status(400).json(errorBody(
        `The request body is not valid JSON: ${(error as Error).message}. ` +
          `Send a JSON object such as {"query": "{ viewer { email } }"}.`,
        "BAD_REQUEST",
      ));
      return;
    }
    (res.locals.logger ?? logger).error({ err: error }, "request failed");
    res.status(500).json(errorBody("Internal server error.", "INTERNAL_SERVER_ERROR"));
  };
}

function errorBody(message: string, code: string) {
  return { errors: [{ message, extensions: { code } }] };
}
