// GraphQL over HTTP for the soak's clients, timed, with the error code of
// each failure.
import { TRANSPORT_ERROR, type Recorder } from "./recorder";

export interface Outcome<T> {
  data: T | null;
  /** `extensions.code` of the first error, or null on success. */
  code: string | null;
  message: string;
}

interface GraphQLBody<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

const REQUEST_TIMEOUT_MS = 30_000;

/** POSTs one operation, records it under `kind` and returns its outcome. */
export async function post<T = Record<string, any>>(
  recorder: Recorder,
  kind: string,
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<Outcome<T>> {
  const started = performance.now();
  const outcome = await send<T>(url, token, query, variables);
  recorder.record(kind, performance.now() - started, outcome.code, outcome.message);
  return outcome;
}

async function send<T>(
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown>,
): Promise<Outcome<T>> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    return { data: null, code: TRANSPORT_ERROR, message: String(error) };
  }
  let body: GraphQLBody<T>;
  try {
    body = (await response.json()) as GraphQLBody<T>;
  } catch (error) {
    return { data: null, code: `HTTP_${response.status}`, message: String(error) };
  }
  const first = body.errors?.[0];
  if (first) {
    return {
      data: body.data ?? null,
      code: first.extensions?.code ?? `HTTP_${response.status}`,
      message: first.message,
    };
  }
  return { data: body.data ?? null, code: null, message: "" };
}
