// Limits of the graphql-ws server: validation rules, sockets per user,
// operations per socket and the shared rate limit on subscribe messages.
import {
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  specifiedRules,
  type ValidationRule,
} from "graphql";

import type { LimitsConfig } from "../config";
import { ErrorCode } from "../errors";
import type { Logger } from "../logger";
import { requestLimitRules } from "../schema";
import { rateLimitMessage, type RateLimiter } from "./rate-limit";

/**
 * Close code for a socket over MAX_SOCKETS_PER_USER. It is in the private
 * range next to 4290 for slow subscribers, because graphql-ws uses 44xx.
 */
export const TOO_MANY_SOCKETS_CLOSE_CODE = 4291;

/** Returns graphql-js's rules plus the request limits, as over HTTP. */
export function socketValidationRules(
  limits: LimitsConfig,
  introspection: boolean,
): ValidationRule[] {
  const rules = [...specifiedRules, ...requestLimitRules(limits)];
  if (!introspection) rules.push(NoSchemaIntrospectionCustomRule);
  return rules;
}

/** Counts each user's open sockets against MAX_SOCKETS_PER_USER. */
export class SocketsPerUser {
  private readonly counts = new Map<string, number>();

  constructor(private readonly max: number) {}

  /**
   * Counts a new socket of the user, or returns the close code and reason
   * when the user already has the maximum open.
   */
  open(email: string): { code: number; reason: string } | null {
    const count = this.counts.get(email) ?? 0;
    if (count >= this.max) {
      return {
        code: TOO_MANY_SOCKETS_CLOSE_CODE,
        reason:
          `Too many sockets: this user has ${count} open, the limit set ` +
          `by MAX_SOCKETS_PER_USER; close one first.`,
      };
    }
    this.counts.set(email, count + 1);
    return null;
  }

  /** Forgets one socket of the user, counted by a successful open. */
  close(email: string): void {
    const count = (this.counts.get(email) ?? 1) - 1;
    if (count > 0) this.counts.set(email, count);
    else this.counts.delete(email);
  }
}

export interface SubscribeCheck {
  limits: LimitsConfig;
  rateLimiter: RateLimiter;
  logger: Logger;
  /** Operations on the socket, the new one included. */
  openOperations: number;
  /** Rate-limit bucket: the viewer's e-mail, or the client address. */
  rateLimitKey: string;
}

/**
 * Rejects a subscribe message over MAX_SUBSCRIPTIONS_PER_SOCKET or the
 * user's rate limit. graphql-ws then sends the errors for that operation
 * only and keeps the socket open.
 */
export function checkSubscribeLimits(
  check: SubscribeCheck,
): GraphQLError[] | undefined {
  const max = check.limits.maxSubscriptionsPerSocket;
  if (check.openOperations > max) {
    return [
      new GraphQLError(
        `Too many operations on this socket: at most ${max} at a time, the ` +
          `limit set by MAX_SUBSCRIPTIONS_PER_SOCKET; complete one first ` +
          `or open another socket.`,
        { extensions: { code: ErrorCode.BAD_USER_INPUT, limit: max } },
      ),
    ];
  }
  const decision = check.rateLimiter.take(check.rateLimitKey);
  if (decision.allowed) return undefined;
  if (decision.firstRejection) {
    check.logger.warn(
      { key: check.rateLimitKey, retryAfterMs: decision.retryAfterMs },
      "rate limit reached; rejecting subscribe messages until the bucket refills",
    );
  }
  return [
    new GraphQLError(rateLimitMessage(check.rateLimiter, decision.retryAfterMs), {
      extensions: {
        code: ErrorCode.RATE_LIMITED,
        retryAfterSeconds: Math.ceil(decision.retryAfterMs / 1000),
      },
    }),
  ];
}
