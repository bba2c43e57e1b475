// Guardian policies: thresholds and notice recipients set by owners, and
// the effective policy and history of each queue.
import {
  Arg,
  Ctx,
  Field,
  FieldResolver,
  Int,
  Mutation,
  ObjectType,
  Float,
  InputType,
  registerEnumType,
  Resolver,
  Root,
} from "type-graphql";

import { BadInputError } from "../errors";
import type { QueueSamplePoint } from "../guardian";
import {
  requireQueueAccount,
  type PolicyRecord,
  type QueueLimits,
  type QueueRecord,
} from "../services";
import { requireViewer, type GraphQLContext } from "./context";
import { Account, Queue } from "./types";

enum ThresholdSource {
  QUEUE = "QUEUE",
  ACCOUNT = "ACCOUNT",
  GLOBAL = "GLOBAL",
}

registerEnumType(ThresholdSource, {
  name: "ThresholdSource",
  description: "Where the thresholds that apply were set.",
});

@ObjectType({
  description:
    "The guardian's policy for a queue or an account: the thresholds that " +
    "apply and the recipients of its notices.",
})
export class GuardianPolicy {
  @Field(() => Int, { description: "Warned above this many messages." })
  warnSize!: number;

  @Field(() => Int, { description: "Deleted above this many messages." })
  deleteSize!: number;

  @Field(() => ThresholdSource, {
    description: "The most specific level that sets either size.",
  })
  source!: ThresholdSource;

  @Field(() => [String], {
    description: "E-mail recipients; empty means the account's owners.",
  })
  notifyEmails!: string[];

  @Field(() => [String], {
    description:
      "Webhook URLs, each password shown as ***. Sent back unchanged, " +
      "such a URL keeps its stored password.",
  })
  webhookUrls!: string[];
}

@ObjectType({
  description:
    "A queue's size and rates at one time. Older points are buckets " +
    "holding the maximum counts and mean rates of their samples.",
})
export class QueueSample {
  @Field()
  at!: Date;

  @Field(() => Int, { description: "0 for a raw sample, else bucket length." })
  resolutionSeconds!: number;

  @Field(() => Int)
  messages!: number;

  @Field(() => Int, { nullable: true })
  messagesReady!: number | null;

  @Field(() => Int, { nullable: true })
  messagesUnacknowledged!: number | null;

  @Field(() => Int, { nullable: true })
  consumers!: number | null;

  @Field(() => Float, { nullable: true, description: "Messages per second." })
  publishRate!: number | null;

  @Field(() => Float, { nullable: true, description: "Messages per second." })
  deliverRate!: number | null;
}

enum OverflowMode {
  DROP_HEAD = "drop-head",
  REJECT_PUBLISH = "reject-publish",
}

registerEnumType(OverflowMode, {
  name: "OverflowMode",
  description: "What RabbitMQ does when a queue reaches its maximum length.",
  valuesConfig: {
    DROP_HEAD: { description: "Drops the oldest messages." },
    REJECT_PUBLISH: { description: "Rejects new messages." },
  },
});

@InputType({ description: "Limits RabbitMQ enforces on an account's queues." })
export class QueueLimitsInput {
  @Field(() => Int, { nullable: true, description: "RabbitMQ's max-length." })
  maxLength?: number | null;

  @Field(() => OverflowMode, {
    nullable: true,
    description: "Needs maxLength; DROP_HEAD when null or left out.",
  })
  overflow?: OverflowMode | null;

  @Field(() => Int, {
    nullable: true,
    description: "RabbitMQ's message-ttl, in milliseconds.",
  })
  messageTtlMs?: number | null;

  @Field(() => Int, {
    nullable: true,
    description:
      "RabbitMQ's expires, in ms, at least 60000: RabbitMQ deletes every " +
      "queue of the account, existing ones included, that stays unused " +
      "this long.",
  })
  expiresMs?: number | null;
}

@ObjectType({ description: "Limits RabbitMQ enforces on an account's queues." })
export class QueueLimitsPayload {
  @Field(() => Int, { nullable: true })
  maxLength!: number | null;

  @Field(() => OverflowMode, { nullable: true })
  overflow!: OverflowMode | null;

  @Field(() => Int, { nullable: true })
  messageTtlMs!: number | null;

  @Field(() => Int, { nullable: true })
  expiresMs!: number | null;
}

/** The earliest and latest times PostgreSQL and Prisma both accept. */
const EARLIEST_TIME = Date.parse("0001-01-01T00:00:00Z");
const LATEST_TIME = Date.parse("9999-12-31T23:59:59.999Z");

function checkHistoryTime(name: string, time: Date): void {
  const ms = time.getTime();
  if (ms >= EARLIEST_TIME && ms <= LATEST_TIME) return;
  throw new BadInputError(
    `Invalid ${name} ${time.toISOString()}: use a time from ` +
      `0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.`,
    { [name]: time.toISOString() },
  );
}

/**
 * For a non-admin, history starts no earlier than the creation of the
 * queue's account: samples from before then belong to an earlier account
 * of the same name, as in the audit log.
 */
async function historyStart(
  context: GraphQLContext,
  queue: QueueRecord,
  from: Date,
): Promise<Date> {
  const viewer = requireViewer(context);
  if (viewer.isAdmin) return from;
  const account = await context.services.accounts.get(
    viewer,
    requireQueueAccount(queue.name),
  );
  return account.createdAt > from ? account.createdAt : from;
}

@Resolver(() => Queue)
export class PolicyResolver {
  @Mutation(() => QueueLimitsPayload, {
    description:
      "Applies limits to every queue/<account>/ queue through a RabbitMQ " +
      "policy named pulse-account-<account>. A limit left out keeps its " +
      "current value and a null limit clears it; the policy is removed " +
      "when every limit is null. Setting maxLength to null clears " +
      "overflow too.",
  })
  setAccountQueueLimits(
    @Arg("account") account: string,
    @Arg("limits") limits: QueueLimitsInput,
    @Ctx() context: GraphQLContext,
  ): Promise<QueueLimits> {
    // type-graphql leaves a field left out undefined and passes an
    // explicit null as null.
    return context.services.queueLimits.set(requireViewer(context), account, {
      maxLength: limits.maxLength,
      overflow: limits.overflow,
      messageTtlMs: limits.messageTtlMs,
      expiresMs: limits.expiresMs,
    });
  }

  @FieldResolver(() => GuardianPolicy, {
    description: "The guardian's effective policy for this queue.",
  })
  policy(
    @Root() queue: QueueRecord,
    @Ctx() context: GraphQLContext,
  ): Promise<PolicyRecord> {
    return context.services.policies.queuePolicy(queue.name);
  }

  @FieldResolver(() => [QueueSample], {
    description: "Samples from `from` to `to` (now by default), oldest first.",
  })
  async history(
    @Root() queue: QueueRecord,
    @Arg("from") from: Date,
    @Arg("to", () => Date, { nullable: true }) to: Date | null,
    @Ctx() context: GraphQLContext,
  ): Promise<QueueSamplePoint[]> {
    const end = to ?? new Date();
    checkHistoryTime("from", from);
    checkHistoryTime("to", end);
    if (from.getTime() >= end.getTime()) {
      throw new BadInputError(
        `Invalid range: from (${from.toISOString()}) must be before to ` +
          `(${end.toISOString()}).`,
        { from: from.toISOString(), to: end.toISOString() },
      );
    }
    return context.services.history.points(
      queue.name,
      await historyStart(context, queue, from),
      end,
    );
  }

  @Mutation(() => GuardianPolicy, {
    description:
      "Sets a queue's warn and delete sizes. A size left out keeps its " +
      "current value; a null size clears it, so it falls back to the " +
      "account's, then the global one. Owners may set sizes up to " +
      "GUARDIAN_MAX_DELETE_SIZE, and only admins may change a size above it.",
  })
  setQueuePolicy(
    @Arg("name") name: string,
    // type-graphql passes undefined for an argument left out, and null
    // for an explicit null.
    @Arg("warnSize", () => Int, { nullable: true })
    warnSize: number | null | undefined,
    @Arg("deleteSize", () => Int, { nullable: true })
    deleteSize: number | null | undefined,
    @Ctx() context: GraphQLContext,
  ): Promise<PolicyRecord> {
    return context.services.policies.setQueueThresholds(
      requireViewer(context),
      name,
      { warnSize, deleteSize },
    );
  }

  @Mutation(() => GuardianPolicy, {
    description:
      "Sets the warn and delete sizes of the account's queues that do not " +
      "set their own. A size left out keeps its current value; a null size " +
      "clears it, so it falls back to the global one. Owners may set sizes " +
      "up to GUARDIAN_MAX_DELETE_SIZE, and only admins may change a size " +
      "above it.",
  })
  setAccountPolicy(
    @Arg("account") account: string,
    // type-graphql passes undefined for an argument left out, and null
    // for an explicit null.
    @Arg("warnSize", () => Int, { nullable: true })
    warnSize: number | null | undefined,
    @Arg("deleteSize", () => Int, { nullable: true })
    deleteSize: number | null | undefined,
    @Ctx() context: GraphQLContext,
  ): Promise<PolicyRecord> {
    return context.services.policies.setAccountThresholds(
      requireViewer(context),
      account,
      { warnSize, deleteSize },
    );
  }

  @Mutation(() => GuardianPolicy, {
    description:
      "Replaces who receives the guardian's notices about one queue, or " +
      "about every queue of the account when `queue` is null. Empty lists " +
      "fall back to the account's recipients, then to its owners.",
  })
  setNotificationRecipients(
    @Arg("account") account: string,
    @Arg("queue", () => String, { nullable: true }) queue: string | null,
    @Arg("emails", () => [String]) emails: string[],
    @Arg("webhookUrls", () => [String]) webhookUrls: string[],
    @Ctx() context: GraphQLContext,
  ): Promise<PolicyRecord> {
    return context.services.policies.setRecipients(
      requireViewer(context),
      { account, queue },
      { emails, webhookUrls },
    );
  }
}

@Resolver(() => Account)
export class AccountPolicyResolver {
  @FieldResolver(() => GuardianPolicy, {
    description:
      "The guardian's policy for the account's queues that set none of " +
      "their own.",
  })
  policy(
    @Root() account: Account,
    @Ctx() context: GraphQLContext,
  ): Promise<PolicyRecord> {
    return context.services.policies.accountPolicy(account.username);
  }

  @FieldResolver(() => QueueLimitsPayload, {
    description: "Limits RabbitMQ enforces on the account's queues.",
  })
  queueLimits(
    @Root() account: Account,
    @Ctx() context: GraphQLContext,
  ): Promise<QueueLimits> {
    return context.services.queueLimits.get(account.username);
  }

  @FieldResolver(() => Date, {
    nullable: true,
    description:
      "When the guardian found the account's RabbitMQ user deleted " +
      "outside the gateway; null while the user exists.",
  })
  userMissingAt(
    @Root() account: Account,
    @Ctx() context: GraphQLContext,
  ): Promise<Date | null> {
    return context.services.policies.userMissingAt(account.username);
  }
}
