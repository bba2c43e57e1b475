// The console's only link to the gateway: GraphQL over HTTP POST and
// graphql-ws on the same path, both carrying the signed-in token.
import { createClient, type Client } from "graphql-ws";

export const GRAPHQL_PATH = "/graphql";

/**
 * Window event sent when the gateway rejects the token over HTTP, such as
 * after it expired; its detail is the gateway's message.
 */
export const UNAUTHENTICATED_EVENT = "pulse-unauthenticated";

/** A GraphQL error as the gateway returns it, with its extensions.code. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

interface GraphQLBody<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

/** Sends one query or mutation and returns its data, or throws ApiError. */
export async function request<T>(
  token: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  let response: Response;
  try {
    response = await fetch(GRAPHQL_PATH, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new ApiError(
      `The gateway did not respond (${(error as Error).message}); check ` +
        `that it is running and retry.`,
      "NETWORK_ERROR",
    );
  }
  let body: GraphQLBody<T>;
  try {
    body = (await response.json()) as GraphQLBody<T>;
  } catch {
    throw new ApiError(
      `The gateway returned HTTP ${response.status} without a JSON body.`,
      "NETWORK_ERROR",
    );
  }
  const first = body.errors?.[0];
  if (first) {
    const code = first.extensions?.code ?? "UNKNOWN";
    if (code === "UNAUTHENTICATED") {
      window.dispatchEvent(new CustomEvent(UNAUTHENTICATED_EVENT, { detail: first.message }));
    }
    throw new ApiError(first.message, code);
  }
  if (!body.data) {
    throw new ApiError(
      `The gateway returned HTTP ${response.status} without data.`,
      "UNKNOWN",
    );
  }
  return body.data;
}

/** Opens a lazy graphql-ws client that signs in with the token. */
export function openSocket(
  token: string,
  onClosed: (code: number, reason: string) => void,
): Client {
  const url = new URL(GRAPHQL_PATH, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return createClient({
    url: url.toString(),
    connectionParams: { authorization: `Bearer ${token}` },
    lazy: true,
    retryAttempts: 3,
    // Close codes 4403 (token rejected or expired) and 4291 (too many
    // sockets) will not heal by retrying.
    shouldRetry: (event) => {
      const code = (event as CloseEvent | undefined)?.code;
      return code !== 4403 && code !== 4291;
    },
    on: {
      closed: (event) => {
        const close = event as CloseEvent;
        onClosed(close.code, close.reason);
      },
    },
  });
}

/** Callbacks of one running subscription. */
export interface SubscriptionSink<T> {
  next: (data: T) => void;
  error: (message: string) => void;
  complete?: () => void;
}

/** Starts a subscription and returns the function that stops it. */
export function subscribe<T>(
  client: Client,
  query: string,
  variables: Record<string, unknown>,
  sink: SubscriptionSink<T>,
): () => void {
  return client.subscribe<T>(
    { query, variables },
    {
      next: (value) => {
        if (value.errors?.length) sink.error(value.errors[0].message);
        if (value.data) sink.next(value.data as T);
      },
      error: (error) => sink.error(describeSocketError(error)),
      complete: () => sink.complete?.(),
    },
  );
}

function describeSocketError(error: unknown): string {
  // graphql-ws passes an operation's GraphQL errors as an array, and a
  // closed socket as its CloseEvent.
  if (Array.isArray(error) && error.length > 0) {
    return String((error[0] as { message?: unknown }).message ?? error[0]);
  }
  if (typeof CloseEvent !== "undefined" && error instanceof CloseEvent) {
    return `The socket closed with code ${error.code}` +
      (error.reason ? `: ${error.reason}` : ".");
  }
  if (error instanceof Error) return error.message;
  return "The subscription failed; see the gateway's log.";
}
