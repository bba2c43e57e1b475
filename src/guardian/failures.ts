// Kinds of guardian failure. The guardian raises one admin notice per kind
// until a pass succeeds again, not one per failed poll.
import { BrokerUnavailableError } from "../errors";
import { ManagementApiError } from "../rabbitmq/management";

export type FailureKind =
  | "MANAGEMENT_API_UNREACHABLE"
  | "MANAGEMENT_API_ERROR"
  | "DATABASE"
  | "INTERNAL";

const DATABASE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "ETIMEDOUT",
  "57P01",
  "57P03",
]);

/**
 * Classifies an error of the stats poll (`source` "poll", which only calls
 * the management API) or of a guardian pass (`source` "pass").
 */
export function classifyFailure(
  error: unknown,
  source: "poll" | "pass",
): FailureKind {
  if (error instanceof ManagementApiError) return "MANAGEMENT_API_ERROR";
  // The management client raises this for a 5xx reply, with the status
  // among its details, and for a request that got no reply at all.
  if (error instanceof BrokerUnavailableError) {
    return error.details.brokerStatus === undefined
      ? "MANAGEMENT_API_UNREACHABLE"
      : "MANAGEMENT_API_ERROR";
  }
  if (source === "poll" || isFetchFailure(error)) {
    return "MANAGEMENT_API_UNREACHABLE";
  }
  const name = (error as Error | undefined)?.name ?? "";
  const code = String((error as { code?: unknown } | undefined)?.code ?? "");
  const fromDatabase =
    name.startsWith("PrismaClient") || name === "DriverAdapterError";
  if (fromDatabase || DATABASE_CODES.has(code)) {
    return "DATABASE";
  }
  return "INTERNAL";
}

/** Node's fetch rejects with a TypeError whose cause is the socket error. */
function isFetchFailure(error: unknown): boolean {
  return error instanceof TypeError && error.message === "fetch failed";
}

export function describeFailure(kind: FailureKind): string {
  switch (kind) {
    case "MANAGEMENT_API_UNREACHABLE":
      return "the RabbitMQ management API cannot be reached";
    case "MANAGEMENT_API_ERROR":
      return "the RabbitMQ management API returned an error";
    case "DATABASE":
      return "the database cannot be reached or failed";
    case "INTERNAL":
      return "a guardian pass failed";
  }
}
