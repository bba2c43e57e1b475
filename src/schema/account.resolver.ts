import {
  Arg,
  Ctx,
  FieldResolver,
  Mutation,
  Query,
  Resolver,
  Root,
} from "type-graphql";

import type { QueueRecord } from "../services";
import { requireViewer, type GraphQLContext } from "./context";
import {
  Account,
  CreateAccountInput,
  CreateAccountPayload,
  Queue,
} from "./types";

@Resolver(() => Account)
export class AccountResolver {
  @Query(() => [Account], {
    description: "Accounts the caller owns; every account for admins.",
  })
  accounts(@Ctx() context: GraphQLContext): Promise<Account[]> {
    return context.services.accounts.list(requireViewer(context));
  }

  @Query(() => Account)
  account(
    @Arg("username") username: string,
    @Ctx() context: GraphQLContext,
  ): Promise<Account> {
    return context.services.accounts.get(requireViewer(context), username);
  }

  @FieldResolver(() => [Queue])
  queues(
    @Root() account: Account,
    @Ctx() context: GraphQLContext,
  ): Promise<QueueRecord[]> {
    return context.services.queues.list(
      requireViewer(context),
      account.username,
    );
  }

  @Mutation(() => CreateAccountPayload, {
    description:
      "Creates a RabbitMQ user with Pulse permissions; the caller becomes " +
      "an owner. The password is returned once.",
  })
  createAccount(
    @Arg("input") input: CreateAccountInput,
    @Ctx() context: GraphQLContext,
  ): Promise<CreateAccountPayload> {
    return context.services.accounts.create(requireViewer(context), input);
  }

  @Mutation(() => Boolean, {
    description:
      "Deletes the account's queues (queue/<username>/...), the RabbitMQ " +
      "user and the owners.",
  })
  deleteAccount(
    @Arg("username") username: string,
    @Ctx() context: GraphQLContext,
  ): Promise<boolean> {
    return context.services.accounts.delete(requireViewer(context), username);
  }
}
