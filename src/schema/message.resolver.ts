import { Arg, Ctx, Resolver, Root, Subscription } from "type-graphql";

import { BadInputError } from "../errors";
import type { LiveMessage as LiveMessageRecord } from "../live";
import { validateBindingPattern } from "../live/topic";
import { validateExchangeName } from "../services";
import { requireViewer, type GraphQLContext } from "./context";
import { LiveMessage } from "./types";

interface MessagesArgs {
  exchange: string;
  routingKeyPattern: string;
}

@Resolver(() => LiveMessage)
export class MessageResolver {
  @Subscription(() => LiveMessage, {
    description:
      "Live messages of a topic binding. Subscribers to the same binding " +
      "share one queue on the broker.",
    subscribe: ({ args, context }) =>
      subscribeMessages(args as MessagesArgs, context as GraphQLContext),
  })
  messages(
    @Root() message: LiveMessageRecord,
    @Arg("exchange") _exchange: string,
    @Arg("routingKeyPattern", { defaultValue: "#" }) _pattern: string,
  ): LiveMessageRecord {
    return message;
  }
}

async function subscribeMessages(
  args: MessagesArgs,
  context: GraphQLContext,
): Promise<AsyncIterable<LiveMessageRecord>> {
  requireViewer(context);
  validateExchangeName(args.exchange);
  const problem = validateBindingPattern(args.routingKeyPattern);
  if (problem) {
    throw new BadInputError(problem, {
      routingKeyPattern: args.routingKeyPattern,
    });
  }
  return context.services.live.subscribe({
    exchange: args.exchange,
    routingKeyPattern: args.routingKeyPattern,
  });
}
