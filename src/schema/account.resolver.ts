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
  RotatePasswordPayload,
} from "./types";

/** RabbitMQ checks a password only when a connection opens. */
export const ROTATE_PASSWORD_NOTICE =
  "Clients connected with the old password keep running until they " +
  "disconnect: RabbitMQ checks the password only when a connection " +
  "opens. Reconnect each client with the new password.";

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

  @Mutation(() => Account, {
    description: "Adds an owner by e-mail address; owners and admins only.",
  })
  addAccountOwner(
    @Arg("username") username: string,
    @Arg("email") email: string,
    @Ctx() context: GraphQLContext,
  ): Promise<Account> {
    return context.services.accounts.addOwner(
      requireViewer(context),
      username,
      email,
    );
  }

  @Mutation(() => Account, {
    description:
      "Removes an owner, the caller included; the last owner cannot be " +
      "removed.",
  })
  removeAccountOwner(
    @Arg("username") username: string,
    @Arg("email") email: string,
    @Ctx() context: GraphQLContext,
  ): Promise<Account> {
    return context.services.accounts.removeOwner(
      requireViewer(context),
      username,
      email,
    );
  }

  @Mutation(() => RotatePasswordPayload, {
    description:
      "Gives the RabbitMQ user a new generated password, returned once.",
  })
  async rotateAccountPassword(
    @Arg("username") username: string,
    @Ctx() context: GraphQLContext,
  ): Promise<RotatePasswordPayload> {
    const rotated = await context.services.accounts.rotatePassword(
      requireViewer(context),
      username,
    );
    return { ...rotated, notice: ROTATE_PASSWORD_NOTICE };
  }
}
