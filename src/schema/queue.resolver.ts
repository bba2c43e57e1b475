import { Arg, Ctx, Int, Mutation, Query, Resolver } from "type-graphql";

import {
  MAX_PEEK_COUNT,
  type BindingRecord,
  type PeekedMessage as PeekedRecord,
  type PurgeRecord,
  type QueueRecord,
} from "../services";
import { requireViewer, type GraphQLContext } from "./context";
import {
  Binding,
  BindingInput,
  BindingTargetInput,
  CreateQueueInput,
  PeekedMessage,
  PurgeQueuePayload,
  Queue,
} from "./types";

@Resolver(() => Queue)
export class QueueResolver {
  @Query(() => [Queue], {
    description:
      "Queues of one account, or of every account the caller owns, with " +
      "statistics from the latest poll.",
  })
  queues(
    @Arg("account", () => String, { nullable: true }) account: string | null,
    @Ctx() context: GraphQLContext,
  ): Promise<QueueRecord[]> {
    return context.services.queues.list(requireViewer(context), account);
  }

  @Query(() => Queue, {
    description: "One queue by full name, with statistics read now.",
  })
  queue(
    @Arg("name") name: string,
    @Ctx() context: GraphQLContext,
  ): Promise<QueueRecord> {
    return context.services.queues.get(requireViewer(context), name);
  }

  @Mutation(() => Queue, { description: "Declares queue/<account>/<name>." })
  createQueue(
    @Arg("input") input: CreateQueueInput,
    @Ctx() context: GraphQLContext,
  ): Promise<QueueRecord> {
    return context.services.queues.create(requireViewer(context), input);
  }

  @Mutation(() => Boolean)
  deleteQueue(
    @Arg("name") name: string,
    @Ctx() context: GraphQLContext,
  ): Promise<boolean> {
    return context.services.queues.delete(requireViewer(context), name);
  }

  @Mutation(() => Queue, {
    description: "Admins only: exempts a queue from deletion, or not.",
  })
  setQueueUnbounded(
    @Arg("name") name: string,
    @Arg("unbounded") unbounded: boolean,
    @Ctx() context: GraphQLContext,
  ): Promise<QueueRecord> {
    return context.services.queues.setUnbounded(
      requireViewer(context),
      name,
      unbounded,
    );
  }

  @Mutation(() => Binding)
  createBinding(
    @Arg("input") input: BindingInput,
    @Ctx() context: GraphQLContext,
  ): Promise<BindingRecord> {
    return context.services.bindings.create(requireViewer(context), input);
  }

  @Mutation(() => Boolean)
  deleteBinding(
    @Arg("input") input: BindingInput,
    @Ctx() context: GraphQLContext,
  ): Promise<boolean> {
    return context.services.bindings.delete(requireViewer(context), input);
  }

  @Mutation(() => PurgeQueuePayload, {
    description:
      "Removes every ready message of the queue and returns how many it " +
      "removed, with the queue afterwards; messages delivered and not yet " +
      "acknowledged stay.",
  })
  purgeQueue(
    @Arg("name") name: string,
    @Ctx() context: GraphQLContext,
  ): Promise<PurgeRecord> {
    return context.services.messages.purge(requireViewer(context), name);
  }

  @Query(() => [PeekedMessage], {
    description:
      "Reads the first ready messages of a queue and puts them back, so " +
      "the queue keeps them; RabbitMQ marks them redelivered.",
  })
  peekMessages(
    @Arg("queue") queue: string,
    @Arg("count", () => Int, {
      defaultValue: 10,
      description: `1 to ${MAX_PEEK_COUNT}.`,
    })
    count: number,
    @Ctx() context: GraphQLContext,
  ): Promise<PeekedRecord[]> {
    return context.services.messages.peek(requireViewer(context), queue, count);
  }

  @Mutation(() => Binding, {
    description:
      "Moves one binding to another exchange or pattern; the new binding " +
      "is made before the old one is removed.",
  })
  updateBinding(
    @Arg("input", { description: "The binding to change." })
    input: BindingInput,
    @Arg("to") to: BindingTargetInput,
    @Ctx() context: GraphQLContext,
  ): Promise<BindingRecord> {
    return context.services.bindings.update(requireViewer(context), input, to);
  }

  @Mutation(() => [Binding], {
    description:
      "Makes the queue's bindings exactly these. New bindings are made " +
      "before old ones are removed, so a failure leaves the old ones.",
  })
  replaceBindings(
    @Arg("queue") queue: string,
    @Arg("bindings", () => [BindingTargetInput]) bindings: BindingTargetInput[],
    @Ctx() context: GraphQLContext,
  ): Promise<BindingRecord[]> {
    return context.services.bindings.replace(
      requireViewer(context),
      queue,
      bindings,
    );
  }
}
