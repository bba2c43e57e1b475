import { Arg, Ctx, Int, Mutation, Query, Resolver } from "type-graphql";

import type {
  AuditRecord,
  ReservedNameRecord,
  UserRecord,
} from "../services";
import { requireViewer, type GraphQLContext } from "./context";
import { AuditEntry, ReservedAccountName, User } from "./admin.types";

@Resolver()
export class AdminResolver {
  @Query(() => [User], {
    description: "Admins only: every user and every ADMIN_EMAILS admin.",
  })
  users(@Ctx() context: GraphQLContext): Promise<UserRecord[]> {
    return context.services.admins.listUsers(requireViewer(context));
  }

  @Mutation(() => User, { description: "Admins only: makes a user an admin." })
  grantAdmin(
    @Arg("email") email: string,
    @Ctx() context: GraphQLContext,
  ): Promise<UserRecord> {
    return context.services.admins.grantAdmin(requireViewer(context), email);
  }

  @Mutation(() => User, {
    description:
      "Admins only: takes admin away from a user. ADMIN_EMAILS admins and " +
      "the last admin cannot be revoked.",
  })
  revokeAdmin(
    @Arg("email") email: string,
    @Ctx() context: GraphQLContext,
  ): Promise<UserRecord> {
    return context.services.admins.revokeAdmin(requireViewer(context), email);
  }

  @Query(() => [ReservedAccountName], {
    description:
      "Admins only: names reserved by admins. The RESERVED_ACCOUNTS " +
      "pattern reserves more.",
  })
  reservedAccountNames(
    @Ctx() context: GraphQLContext,
  ): Promise<ReservedNameRecord[]> {
    return context.services.admins.listReservedNames(requireViewer(context));
  }

  @Mutation(() => ReservedAccountName, {
    description:
      "Admins only: stops anyone creating an account of this name; " +
      "an existing account of that name stays.",
  })
  reserveAccountName(
    @Arg("name") name: string,
    @Ctx() context: GraphQLContext,
  ): Promise<ReservedNameRecord> {
    return context.services.admins.reserveName(requireViewer(context), name);
  }

  @Mutation(() => ReservedAccountName, {
    description: "Admins only: frees a name reserved with reserveAccountName.",
  })
  unreserveAccountName(
    @Arg("name") name: string,
    @Ctx() context: GraphQLContext,
  ): Promise<ReservedNameRecord> {
    return context.services.admins.unreserveName(requireViewer(context), name);
  }

  @Query(() => [AuditEntry], {
    description:
      "Mutations, newest first. Admins see all; owners see those of their " +
      "accounts.",
  })
  auditLog(
    @Arg("account", () => String, { nullable: true }) account: string | null,
    @Arg("object", () => String, {
      nullable: true,
      description: "Queue, account, e-mail address or name acted on.",
    })
    object: string | null,
    @Arg("limit", () => Int, {
      nullable: true,
      description: "1 to 500, 50 by default.",
    })
    limit: number | null,
    @Arg("before", () => Int, {
      nullable: true,
      description: "Only entries with a smaller id, to page back.",
    })
    before: number | null,
    @Ctx() context: GraphQLContext,
  ): Promise<AuditRecord[]> {
    return context.services.audit.list(requireViewer(context), {
      account,
      object,
      limit,
      before,
    });
  }
}
