import { Repeater } from "@graphql-yoga/subscription";
import {
  Arg,
  Ctx,
  Int,
  Query,
  Resolver,
  Root,
  Subscription,
} from "type-graphql";

import type { Viewer } from "../auth";
import { BadInputError, isGatewayError } from "../errors";
import type { AccountLifetime, GuardianEventRecord } from "../guardian";
import { requireQueueAccount } from "../services";
import { requireViewer, type GraphQLContext } from "./context";
import { GuardianEvent } from "./types";

const MAX_EVENTS = 500;

interface GuardianEventArgs {
  queue?: string | null;
}

@Resolver(() => GuardianEvent)
export class GuardianResolver {
  @Query(() => [GuardianEvent], {
    description:
      "Guardian events, newest first: of one queue, or of every queue of " +
      "the caller's accounts (all queues for admins).",
  })
  async guardianEvents(
    @Arg("queue", () => String, { nullable: true }) queue: string | null,
    @Arg("limit", () => Int, { defaultValue: 50 }) limit: number,
    @Ctx() context: GraphQLContext,
  ): Promise<GuardianEventRecord[]> {
    const viewer = requireViewer(context);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_EVENTS) {
      throw new BadInputError(
        `Invalid limit ${limit}: use a number from 1 to ${MAX_EVENTS}.`,
        { limit },
      );
    }
    const account = queue ? requireQueueAccount(queue) : null;
    if (account) await context.services.accounts.authorize(viewer, account);
    return context.services.guardianEvents.list(
      queue,
      limit,
      await ownedLifetimes(context, viewer, account),
    );
  }

  @Subscription(() => GuardianEvent, {
    name: "guardianEvents",
    description:
      "Guardian events as they happen, for the caller's accounts (every " +
      "account for admins), optionally for one queue. With `queue`, it " +
      "ends with FORBIDDEN after the next poll once the caller no longer " +
      "owns the queue's account.",
    subscribe: ({ args, context }) =>
      subscribeGuardianEvents(args as GuardianEventArgs, context as GraphQLContext),
  })
  guardianEventsLive(
    @Root() event: GuardianEventRecord,
    @Arg("queue", () => String, { nullable: true }) _queue: string | null,
  ): GuardianEventRecord {
    return event;
  }
}

async function subscribeGuardianEvents(
  args: GuardianEventArgs,
  context: GraphQLContext,
): Promise<AsyncIterable<GuardianEventRecord>> {
  const viewer = requireViewer(context);
  const account = args.queue ? requireQueueAccount(args.queue) : null;
  if (account) await context.services.accounts.authorize(viewer, account);
  const log = context.services.guardianEvents;
  const { stats } = context.services;
  return new Repeater<GuardianEventRecord>(async (push, stop) => {
    const onEvent = (event: GuardianEventRecord) => {
      if (args.queue && event.queue !== args.queue) return;
      void mayView(context, viewer, event.account).then(
        (allowed) => allowed && push(event),
        (error: unknown) =>
          context.logger.error(
            { err: error, queue: event.queue },
            "guardian event visibility check failed",
          ),
      );
    };
    // Ownership of the one queue's account is checked again at every
    // poll, so an owner who is removed gets FORBIDDEN and the end of the
    // subscription, as with queueStats, instead of silence.
    const recheck = () => {
      if (!account) return;
      context.services.accounts.authorize(viewer, account).catch(
        (error: unknown) => {
          if (isGatewayError(error)) {
            void stop(error);
            return;
          }
          context.logger.warn(
            { err: error, queue: args.queue, viewer: viewer.email },
            "guardian event subscription could not recheck ownership",
          );
        },
      );
    };
    log.on("event", onEvent);
    stats.on("snapshot", recheck);
    await stop;
    log.off("event", onEvent);
    stats.off("snapshot", recheck);
  });
}

async function mayView(
  context: GraphQLContext,
  viewer: Viewer,
  account: string,
): Promise<boolean> {
  if (viewer.isAdmin) return true;
  const owned = await visibleAccounts(context, viewer);
  return owned === "all" || owned.has(account);
}

/**
 * For a non-admin, the accounts the viewer owns (only `account` when
 * given), each from its creation: events from before then belong to an
 * earlier account of the same name, as in the audit log. Undefined for
 * admins, who see every event.
 */
async function ownedLifetimes(
  context: GraphQLContext,
  viewer: Viewer,
  account: string | null,
): Promise<AccountLifetime[] | undefined> {
  if (viewer.isAdmin) return undefined;
  const accounts = await context.services.accounts.list(viewer);
  return accounts
    .filter((owned) => account === null || owned.username === account)
    .map((owned) => ({ account: owned.username, since: owned.createdAt }));
}

async function visibleAccounts(
  context: GraphQLContext,
  viewer: Viewer,
): Promise<Set<string> | "all"> {
  if (viewer.isAdmin) return "all";
  const accounts = await context.services.accounts.list(viewer);
  return new Set(accounts.map((account) => account.username));
}
