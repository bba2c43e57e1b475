import { randomUUID } from "node:crypto";

import express, {
  type ErrorRequestHandler,
  type Express,
  type RequestHandler,
} from "express";

import type { Logger } from "../logger";

/** Allows the configured origins, or any origin when none is configured. */
export function corsMiddleware(origins: string[]): RequestHandler {
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (origin && (origins.length === 0 || origins.includes(origin))) {
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("vary", "origin");
      res.setHeader(
        "access-control-allow-headers",
        "authorization, content-type, apollo-require-preflight, " +
          "x-apollo-operation-name, apollographql-client-name",
      );
      res.setHeader("access-control-allow-methods", "GET, POST, OPTIONS");
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

/** Largest accepted request body, for express.json(). */
export const MAX_BODY = "1mb";

/**
 * Responds to body-parser failures and other unhandled errors with a GraphQL
 * error body in JSON, not Express's HTML page with a stack trace.
 */
export function jsonErrorHandler(logger: Logger): ErrorRequestHandler {
  return (error, _req, res, _next) => {
    const type = (error as { type?: string }).type;
    if (type === "entity.too.large") {
      res.status(413).json(errorBody(
        `The request body is larger than ${MAX_BODY}; send a smaller request.`,
        "BAD_USER_INPUT",
      ));
      return;
    }
    if (type === "entity.parse.failed") {
      res.status(400).json(errorBody(
        `The request body is not valid JSON: ${(error as Error).message}.`,
        "BAD_USER_INPUT",
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
