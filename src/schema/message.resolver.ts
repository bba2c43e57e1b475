import { Arg, Ctx, Resolver, Root, Subscription } from "type-graphql";

import { BadInputError } from "../errors";
import {
  compileFilter,
  mergeSubscriptions,
  SlowSubscriberError,
  validateBindingPattern,
  type BindingKey,
  type LiveSubscription,
  type TaggedMessage,
} from "../live";
import { validateExchangeName } from "../services";
import { requireViewer, type GraphQLContext } from "./context";
import { LiveBindingInput, LiveMessage, PayloadCondition } from "./types";

/** Bindings one messages subscription may watch at once. */
export const MAX_BINDINGS_PER_SUBSCRIPTION = 20;

interface MessagesArgs {
  exchange?: string | null;
  routingKeyPattern: string;
  bindings?: LiveBindingInput[] | null;
  filter?: PayloadCondition[] | null;
}

@Resolver(() => LiveMessage)
export class MessageResolver {
  @Subscription(() => LiveMessage, {
    description:
      "Live messages of one binding (exchange and routingKeyPattern) or of " +
      "several (bindings), optionally filtered on the payload. Subscribers " +
      "to the same binding share one queue on the broker.",
    subscribe: ({ args, context }) =>
      subscribeMessages(args as MessagesArgs, context as GraphQLContext),
  })
  // Declares the arguments. buildGatewaySchema replaces this field's
  // resolver with one that returns the payload, so it never runs per event.
  messages(
    @Root() message: TaggedMessage,
    @Arg("exchange", () => String, { nullable: true }) _exchange: string | null,
    @Arg("routingKeyPattern", { defaultValue: "#" }) _pattern: string,
    @Arg("bindings", () => [LiveBindingInput], { nullable: true })
    _bindings: LiveBindingInput[] | null,
    @Arg("filter", () => [PayloadCondition], { nullable: true })
    _filter: PayloadCondition[] | null,
  ): TaggedMessage {
    return message;
  }
}

async function subscribeMessages(
  args: MessagesArgs,
  context: GraphQLContext,
): Promise<AsyncIterable<TaggedMessage>> {
  if (!context.allowAnonymous) requireViewer(context);
  const keys = readBindings(args);
  const filter = args.filter?.length ? compileFilter(args.filter) : null;
  const onSlow = (error: SlowSubscriberError) => {
    if (!context.closeSocket) return;
    context.logger.warn(
      { ...error.key, behindMs: error.behindMs },
      "closing the socket of a subscriber that stayed behind",
    );
    context.closeSocket(
      SLOW_SUBSCRIBER_CLOSE_CODE,
      error.message,
      SlowSubscriberError.action,
    );
  };
  const subscriptions: LiveSubscription[] = [];
  try {
    for (const key of keys) {
      subscriptions.push(await context.services.live.subscribe(key, { onSlow }));
    }
  } catch (error) {
    await Promise.all(subscriptions.map((s) => s.return()));
    throw error;
  }
  // One binding without a filter needs no merging: its messages already
  // carry their binding.
  if (subscriptions.length === 1 && !filter) {
    return subscriptions[0] as AsyncIterable<TaggedMessage>;
  }
  return mergeSubscriptions(subscriptions, keys, filter);
}

/**
 * Close code of a socket whose subscriber stayed behind longer than
 * LIVE_MAX_BEHIND_MS; in the private range, outside graphql-ws's 44xx.
 */
export const SLOW_SUBSCRIBER_CLOSE_CODE = 4290;

function readBindings(args: MessagesArgs): BindingKey[] {
  const given = args.bindings ?? [];
  if (args.exchange && given.length > 0) {
    throw new BadInputError(
      "Give either exchange (with routingKeyPattern) or bindings, not both.",
    );
  }
  const keys: BindingKey[] = args.exchange
    ? [{ exchange: args.exchange, routingKeyPattern: args.routingKeyPattern }]
    : given.map((b) => ({
        exchange: b.exchange,
        routingKeyPattern: b.routingKeyPattern,
      }));
  if (keys.length === 0) {
    throw new BadInputError(
      "No binding to watch: give exchange (and routingKeyPattern) or bindings.",
    );
  }
  const unique = [
    ...new Map(keys.map((k) => [JSON.stringify(k), k])).values(),
  ];
  if (unique.length > MAX_BINDINGS_PER_SUBSCRIPTION) {
    throw new BadInputError(
      `${unique.length} bindings requested; one subscription watches at ` +
        `most ${MAX_BINDINGS_PER_SUBSCRIPTION}.`,
    );
  }
  for (const key of unique) checkKey(key);
  return unique;
}

function checkKey(key: BindingKey): void {
  validateExchangeName(key.exchange);
  const problem = validateBindingPattern(key.routingKeyPattern);
  if (problem) {
    throw new BadInputError(problem, {
      routingKeyPattern: key.routingKeyPattern,
    });
  }
}
