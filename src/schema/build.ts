import "reflect-metadata";

import { createPubSub } from "@graphql-yoga/subscription";
import type { GraphQLSchema } from "graphql";
import { buildSchema } from "type-graphql";

import { AccountResolver } from "./account.resolver";
import { GuardianResolver } from "./guardian.resolver";
import { MessageResolver } from "./message.resolver";
import { QueueResolver } from "./queue.resolver";
import { StatsResolver } from "./stats.resolver";
import { ViewerResolver } from "./viewer.resolver";

/** Builds the executable schema from the resolver classes. */
export function buildGatewaySchema(): Promise<GraphQLSchema> {
  return buildSchema({
    resolvers: [
      ViewerResolver,
      AccountResolver,
      QueueResolver,
      GuardianResolver,
      MessageResolver,
      StatsResolver,
    ],
    // Every subscription here has its own subscribe function; type-graphql
    // still insists on a PubSub once any subscription exists.
    pubSub: createPubSub(),
    validate: false,
  });
}
