import { Repeater, SlidingBuffer } from "@graphql-yoga/subscription";
import { Arg, Resolver, Root, Subscription } from "type-graphql";

import { isDatabaseUnavailable } from "../db";
import { isGatewayError } from "../errors";
import { RateLimitedLog } from "../logger";
import type { QueueRecord } from "../services";
import type { StatsSnapshot } from "../stats";
import { requireViewer, type GraphQLContext } from "./context";
import { Queue } from "./types";

interface QueueStatsArgs {
  names?: string[] | null;
  account?: string | null;
}

@Resolver(() => Queue)
export class StatsResolver {
  @Subscription(() => [Queue], {
    description:
      "Statistics of the selected queues (by name, by account, or every " +
      "queue of the caller's accounts), sent at once and after each poll " +
      "of the broker. Fails with NOT_FOUND when a named queue does not " +
      "exist, with FORBIDDEN when a name is in an account the caller " +
      "does not own, and with BAD_USER_INPUT when a name of an account " +
      "the caller owns is outside `account`. " +
      "A queue deleted later is left out of later results.",
    subscribe: ({ args, context }) =>
      subscribeQueueStats(args as QueueStatsArgs, context as GraphQLContext),
  })
  queueStats(
    @Root() queues: QueueRecord[],
    @Arg("names", () => [String], { nullable: true }) _names: string[] | null,
    @Arg("account", () => String, { nullable: true }) _account: string | null,
  ): QueueRecord[] {
    return queues;
  }
}

async function subscribeQueueStats(
  args: QueueStatsArgs,
  context: GraphQLContext,
): Promise<AsyncIterable<QueueRecord[]>> {
  const viewer = requireViewer(context);
  const { queues, stats } = context.services;
  // Rejects at once when the caller may not see the selection.
  await queues.authorizeSelection(viewer, args);
  await queues.requireSelectedQueues(args);
  const outage = new RateLimitedLog(context.logger);
  return new Repeater<QueueRecord[]>(async (push, stop) => {
    // Snapshots are turned into records one at a time, so they arrive in
    // the order the poller took them.
    let chain = Promise.resolve();
    const onSnapshot = (snapshot: StatsSnapshot) => {
      chain = chain
        // Ownership is checked again at every snapshot, so an owner who is
        // removed stops receiving the account's queues.
        .then(() => queues.authorizeSelection(viewer, args))
        .then((current) => queues.fromSnapshot(snapshot, current))
        .then(async (records) => {
          outage.clear("database");
          // The buffer keeps only the newest statistics, so a client that
          // reads slowly skips old ones instead of queueing them.
          void push(records);
        })
        .catch((error: unknown) => {
          if (isGatewayError(error)) {
            void stop(error);
            return;
          }
          // The subscription stays open and resumes with the first
          // snapshot after the database is back.
          if (isDatabaseUnavailable(error)) {
            outage.warn(
              "database",
              { err: error, viewer: viewer.email },
              "queue statistics skip polls while the database is unavailable",
            );
            return;
          }
          context.logger.error(
            { err: error, viewer: viewer.email },
            "queue statistics for a subscription failed",
          );
        });
    };
    const latest = stats.latest();
    if (latest) onSnapshot(latest);
    stats.on("snapshot", onSnapshot);
    await stop;
    stats.off("snapshot", onSnapshot);
  }, new SlidingBuffer(1));
}
