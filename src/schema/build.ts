import "reflect-metadata";

import { createPubSub } from "@graphql-yoga/subscription";
import type { GraphQLSchema } from "graphql";
import { buildSchema } from "type-graphql";

import { AccountResolver } from "./account.resolver";
import { AdminResolver } from "./admin.resolver";
import { auditMutations } from "./audit";
import { GuardianResolver } from "./guardian.resolver";
import { MessageResolver } from "./message.resolver";
import { AccountPolicyResolver, PolicyResolver } from "./policy.resolver";
import { QueueResolver } from "./queue.resolver";
import { StatsResolver } from "./stats.resolver";
import { ViewerResolver } from "./viewer.resolver";

/** Builds the executable schema from the resolver classes. */
export async function buildGatewaySchema(): Promise<GraphQLSchema> {
  const schema = await buildSchema({
    resolvers: [
      ViewerResolver,
      AccountResolver,
      AdminResolver,
      QueueResolver,
      PolicyResolver,
      AccountPolicyResolver,
      GuardianResolver,
      MessageResolver,
      StatsResolver,
    ],
    // Every subscription here has its own subscribe function; type-graphql
    // still insists on a PubSub once any subscription exists.
    pubSub: createPubSub(),
    validate: false,
  });
  streamPayloadsAsIs(schema, "messages");
  auditMutations(schema);
  return schema;
}

/**
 * Makes a subscription field return each event's payload unchanged.
 * type-graphql's resolver converts the field's arguments again for every
 * event, which the benchmark's profile showed as a large share of the cost
 * per event, while these resolvers only return their root.
 */
function streamPayloadsAsIs(schema: GraphQLSchema, field: string): void {
  const subscriptions = schema.getSubscriptionType()?.getFields();
  const target = subscriptions?.[field];
  if (!target) throw new Error(`Subscription field "${field}" not found`);
  target.resolve = (payload: unknown) => payload;
}
