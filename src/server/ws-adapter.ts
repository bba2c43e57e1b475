// Runs graphql-ws's transport-free server on a `ws` WebSocketServer, in
// place of graphql-ws's own `useServer`. In graphql-ws 6.4.2, that adapter
// writes every socket error to console.error as "Internal error", including
// the error that `ws` raises for a message over maxPayload after it has
// already closed the socket with 1009. This one logs through the gateway's
// logger instead and leaves the close code that `ws` chose.
import type { IncomingMessage } from "node:http";

import {
  CloseCode,
  handleProtocols,
  makeServer,
  type ConnectionInitMessage,
  type ServerOptions,
} from "graphql-ws";
import type { WebSocket, WebSocketServer } from "ws";

import type { Logger } from "../logger";

/** Interval between pings, and the time allowed for each pong, in ms. */
export const KEEP_ALIVE_MS = 12_000;

/** Maximum length of a WebSocket close reason (RFC 6455), in bytes. */
const MAX_CLOSE_REASON_BYTES = 123;

/** Facts graphql-ws passes to every hook as `ctx.extra`. */
export interface SocketContext {
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
}

export interface AdapterOptions {
  logger: Logger;
  /** True to keep internal error messages out of close reasons. */
  production: boolean;
  keepAliveMs?: number;
}

/**
 * Serves graphql-transport-ws on every connection of `wsServer`, and
 * returns a disposer that closes the sockets with 1001 and the server.
 */
export function serveGraphQLWs<
  P extends ConnectionInitMessage["payload"],
  E extends Record<PropertyKey, unknown>,
>(
  options: ServerOptions<P, SocketContext & Partial<E>>,
  wsServer: WebSocketServer,
  adapter: AdapterOptions,
): { dispose: () => Promise<void> } {
  const server = makeServer(options);
  const { logger } = adapter;
  wsServer.options.handleProtocols = handleProtocols;

  wsServer.on("error", (error) => {
    logger.error({ err: error }, "WebSocket server failed; closing its sockets");
    for (const socket of wsServer.clients) {
      socket.close(CloseCode.InternalServerError, closeReason(error, adapter.production));
    }
  });

  wsServer.on("connection", (socket, request) => {
    watchSocketErrors(socket, adapter);
    const stopKeepAlive = keepAlive(socket, adapter.keepAliveMs ?? KEEP_ALIVE_MS);
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) => send(socket, data),
        close: (code, reason) => socket.close(code, reason),
        onMessage: (handle) =>
          socket.on("message", (data) => {
            handle(String(data)).catch((error: unknown) => {
              logger.error({ err: error }, "handling a graphql-ws message failed");
              socket.close(
                CloseCode.InternalServerError,
                closeReason(error, adapter.production),
              );
            });
          }),
      },
      { socket, request } as SocketContext & Partial<E>,
    );
    socket.once("close", (code, reason) => {
      stopKeepAlive();
      void closed(code, String(reason));
    });
  });

  return {
    dispose: async () => {
      for (const socket of wsServer.clients) socket.close(1001, "Going away");
      wsServer.removeAllListeners();
      await new Promise<void>((resolve, reject) =>
        wsServer.close((error) => (error ? reject(error) : resolve())),
      );
    },
  };
}

/**
 * Logs a socket's errors. An error from parsing a frame, such as a message
 * over maxPayload, comes after `ws` has started closing the socket with
 * the matching code (1009 for size), so only a socket still open is closed
 * here.
 */
function watchSocketErrors(socket: WebSocket, adapter: AdapterOptions): void {
  socket.on("error", (error: Error & { code?: string }) => {
    const open = socket.readyState === socket.OPEN;
    adapter.logger.warn(
      { err: error, wsCode: error.code, closedByWs: !open },
      "WebSocket error; the socket is closed",
    );
    if (open) {
      socket.close(CloseCode.InternalServerError, closeReason(error, adapter.production));
    }
  });
}

/**
 * Pings the client every `intervalMs` and ends the socket when no pong
 * arrives within the next interval. Returns a function that stops it.
 */
function keepAlive(socket: WebSocket, intervalMs: number): () => void {
  if (!(intervalMs > 0 && Number.isFinite(intervalMs))) return () => undefined;
  let pongTimer: NodeJS.Timeout | null = null;
  const clearPongTimer = () => {
    if (pongTimer) clearTimeout(pongTimer);
    pongTimer = null;
  };
  const pingTimer = setInterval(() => {
    if (socket.readyState !== socket.OPEN) return;
    pongTimer = setTimeout(() => socket.terminate(), intervalMs);
    socket.once("pong", clearPongTimer);
    socket.ping();
  }, intervalMs);
  return () => {
    clearInterval(pingTimer);
    clearPongTimer();
  };
}

function send(socket: WebSocket, data: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.readyState !== socket.OPEN) {
      resolve();
      return;
    }
    socket.send(data, (error) => (error ? reject(error) : resolve()));
  });
}

function closeReason(error: unknown, production: boolean): string {
  const fallback = "Internal server error";
  if (production) return fallback;
  const message = error instanceof Error ? error.message : String(error);
  if (Buffer.byteLength(message) > MAX_CLOSE_REASON_BYTES) return fallback;
  return message;
}
