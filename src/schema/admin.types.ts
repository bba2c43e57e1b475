// GraphQL types of the admin and audit operations.
import { GraphQLJSON } from "graphql-scalars";
import { Field, Int, ObjectType } from "type-graphql";

@ObjectType({ description: "A person known by e-mail address." })
export class User {
  @Field()
  email!: string;

  @Field()
  isAdmin!: boolean;

  @Field({
    description:
      "Admin through the ADMIN_EMAILS setting, which revokeAdmin cannot " +
      "change.",
  })
  adminBySetting!: boolean;

  @Field(() => [String], { description: "Accounts the user owns." })
  accounts!: string[];

  @Field(() => Date, {
    nullable: true,
    description: "Null for an ADMIN_EMAILS admin the gateway has not stored.",
  })
  createdAt!: Date | null;
}

@ObjectType({
  description:
    "An account name reserved by an admin, in lower case; it is matched " +
    "without regard to case.",
})
export class ReservedAccountName {
  @Field()
  name!: string;

  @Field({ description: "E-mail address of the admin who reserved it." })
  createdBy!: string;

  @Field()
  createdAt!: Date;
}

@ObjectType({ description: "One mutation request and its outcome." })
export class AuditEntry {
  @Field(() => Int, { description: "Increasing; use it as `before` to page." })
  id!: number;

  @Field(() => String, {
    nullable: true,
    description: "Caller's e-mail address; null without a valid token.",
  })
  actor!: string | null;

  @Field({ description: "Name of the mutation field." })
  mutation!: string;

  @Field(() => String, { nullable: true })
  account!: string | null;

  @Field(() => String, {
    nullable: true,
    description: "Queue, account, e-mail address or name acted on.",
  })
  object!: string | null;

  @Field(() => GraphQLJSON, {
    description: "The arguments, with passwords and other secrets redacted.",
  })
  arguments!: unknown;

  @Field({ description: '"ok", or the error code of a failed mutation.' })
  outcome!: string;

  @Field(() => String, { nullable: true })
  error!: string | null;

  @Field()
  at!: Date;
}
