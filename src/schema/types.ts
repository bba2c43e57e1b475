// GraphQL object and input types. Fields mirror the service records.
import { GraphQLJSON } from "graphql-scalars";
import {
  Field,
  InputType,
  Int,
  ObjectType,
  registerEnumType,
} from "type-graphql";

import { GuardianEventKind } from "../db";

registerEnumType(GuardianEventKind, {
  name: "GuardianEventKind",
  description: "What the guardian did or saw.",
  valuesConfig: {
    ADOPTED: { description: "A Pulse queue the gateway had not seen." },
    WARNED: { description: "The queue grew past its warn size." },
    RECOVERED: { description: "A warned queue fell back to its warn size." },
    DELETED: { description: "The queue grew past its delete size and was deleted." },
    VANISHED: { description: "The queue disappeared from the broker." },
    CONSUMER_GONE: {
      description:
        "The queue has held messages without a consumer for longer than " +
        "GUARDIAN_CONSUMER_GONE_MS.",
    },
    BINDING_ADDED: {
      description: "A binding made outside the gateway, now stored.",
    },
    BINDING_REMOVED: {
      description: "A stored binding that is gone from the broker.",
    },
    USER_MISSING: {
      description: "The account's RabbitMQ user was deleted outside the gateway.",
    },
    MISNAMED_QUEUE: {
      description:
        "A queue outside the queue/<account>/<name> convention; reported " +
        "to admins, never deleted.",
    },
    POLL_FAILED: {
      description:
        "The guardian could not check the queues; one event per kind of " +
        "failure until a check succeeds.",
    },
  },
});

@ObjectType({ description: "The caller, identified by the token's e-mail." })
export class Viewer {
  @Field()
  email!: string;

  @Field()
  isAdmin!: boolean;
}

@ObjectType({ description: "A queue bound to a topic exchange." })
export class Binding {
  @Field()
  queue!: string;

  @Field()
  exchange!: string;

  @Field({ description: "Topic pattern: `*` is one word, `#` zero or more." })
  routingKeyPattern!: string;
}

@ObjectType({ description: "A Pulse queue with live statistics." })
export class Queue {
  @Field({ description: "Full name, queue/<account>/<name>." })
  name!: string;

  @Field({ description: "Account that owns the queue by its name." })
  account!: string;

  @Field()
  durable!: boolean;

  @Field(() => Int, {
    nullable: true,
    description: "Ready plus unacknowledged; null until the broker reports it.",
  })
  messages!: number | null;

  @Field(() => Int, { nullable: true })
  messagesReady!: number | null;

  @Field(() => Int, { nullable: true })
  messagesUnacknowledged!: number | null;

  @Field(() => Int, { nullable: true })
  consumers!: number | null;

  @Field(() => [Binding])
  bindings!: Binding[];

  @Field({ description: "Exempt from deletion by the guardian." })
  unbounded!: boolean;

  @Field({ description: "Above its warn size at the guardian's last pass." })
  warned!: boolean;
}

@ObjectType({ description: "A RabbitMQ user created through the gateway." })
export class Account {
  @Field()
  username!: string;

  @Field(() => [String], { description: "E-mail addresses of the owners." })
  owners!: string[];

  @Field()
  createdAt!: Date;
}

@ObjectType()
export class CreateAccountPayload {
  @Field(() => Account)
  account!: Account;

  @Field({
    description:
      "The generated RabbitMQ password. It is shown once and never stored.",
  })
  password!: string;
}

@ObjectType()
export class RotatePasswordPayload {
  @Field(() => Account)
  account!: Account;

  @Field({
    description:
      "The new RabbitMQ password. It is shown once and never stored.",
  })
  password!: string;

  @Field({ description: "What happens to clients still using the old one." })
  notice!: string;
}

export enum PayloadFormat {
  JSON = "JSON",
  TEXT = "TEXT",
  BASE64 = "BASE64",
}

registerEnumType(PayloadFormat, {
  name: "PayloadFormat",
  description: "How a peeked message's payload is given.",
  valuesConfig: {
    JSON: { description: "The body parsed as JSON." },
    TEXT: {
      description: "The body as text: not JSON, or cut at the size limit.",
    },
    BASE64: { description: "The body in base64: it is not UTF-8 text." },
  },
});

@ObjectType({ description: "The result of purgeQueue." })
export class PurgeQueuePayload {
  @Field(() => Int, {
    nullable: true,
    description:
      "Ready messages the purge removed. Null when RabbitMQ did not let " +
      "the gateway purge over AMQP, so it purged through the management " +
      "API, which does not report the number.",
  })
  messagesPurged!: number | null;

  @Field(() => Queue, {
    description:
      "The queue after the purge. `messagesReady` and `consumers` are " +
      "read over AMQP just after the purge. `messagesUnacknowledged` comes " +
      "from the management API's statistics, which lag by up to their " +
      "collection interval (5 seconds by default), so it may be stale. " +
      "`messages` is null, because it would add that stale count to a " +
      "current one; read `queue(name)` a few seconds later for all counts.",
  })
  queue!: Queue;
}

@ObjectType({
  description:
    "A message read from a queue and put back: the queue still holds it, " +
    "and RabbitMQ marks it redelivered.",
})
export class PeekedMessage {
  @Field()
  exchange!: string;

  @Field()
  routingKey!: string;

  @Field({ description: "True for every message that was peeked before." })
  redelivered!: boolean;

  @Field(() => GraphQLJSON, { nullable: true })
  payload!: unknown;

  @Field(() => PayloadFormat)
  payloadFormat!: PayloadFormat;

  @Field(() => Int, { description: "Size of the whole body in bytes." })
  payloadBytes!: number;

  @Field({ description: "True when the body was cut at the size limit." })
  truncated!: boolean;

  @Field(() => GraphQLJSON, {
    description: "AMQP properties, headers included, as the broker gives them.",
  })
  properties!: Record<string, unknown>;
}

@ObjectType({ description: "Something the guardian did or saw." })
export class GuardianEvent {
  @Field()
  queue!: string;

  @Field()
  account!: string;

  @Field(() => GuardianEventKind)
  kind!: GuardianEventKind;

  @Field(() => Int, { nullable: true })
  size!: number | null;

  @Field(() => Int, { nullable: true, description: "The threshold crossed." })
  threshold!: number | null;

  @Field(() => String, {
    nullable: true,
    description: "Facts beyond size and threshold, such as a binding or an error.",
  })
  detail!: string | null;

  @Field()
  at!: Date;
}

export enum LiveNoticeKind {
  LOST = "LOST",
  GAP = "GAP",
}

registerEnumType(LiveNoticeKind, {
  name: "LiveNoticeKind",
  valuesConfig: {
    LOST: {
      description:
        "The subscriber fell behind and its oldest messages were dropped.",
    },
    GAP: {
      description:
        "The broker connection dropped and came back; messages published " +
        "meanwhile were missed.",
    },
  },
});

@ObjectType({ description: "A notice about the stream, not a message." })
export class LiveNotice {
  @Field(() => LiveNoticeKind)
  kind!: LiveNoticeKind;

  @Field(() => Int, { description: "Messages dropped, for LOST notices." })
  lost!: number;
}

@ObjectType({ description: "An exchange and routing-key pattern." })
export class LiveBinding {
  @Field()
  exchange!: string;

  @Field()
  routingKeyPattern!: string;
}

@ObjectType({
  description:
    "A message delivered on a topic binding, or a notice about the stream " +
    "(then `notice` is set, `routingKey` is empty and `payload` null).",
})
export class LiveMessage {
  @Field()
  exchange!: string;

  @Field()
  routingKey!: string;

  @Field(() => [String], { description: "Extra routing keys from `CC`." })
  ccRoutingKeys!: string[];

  @Field(() => GraphQLJSON, { nullable: true })
  payload!: unknown;

  @Field(() => PayloadFormat, {
    nullable: true,
    description:
      "How payload is encoded: JSON, TEXT (UTF-8 that is not JSON) or " +
      "BASE64 (a body that is not UTF-8); null on notices.",
  })
  payloadFormat!: PayloadFormat | null;

  @Field()
  redelivered!: boolean;

  @Field({
    description: "The publisher's AMQP timestamp, or when the gateway got it.",
  })
  timestamp!: Date;

  @Field(() => LiveBinding, { description: "The binding it matched." })
  binding!: LiveBinding;

  @Field(() => LiveNotice, { nullable: true })
  notice!: LiveNotice | null;
}

@InputType({ description: "A binding to watch: exchange and pattern." })
export class LiveBindingInput {
  @Field()
  exchange!: string;

  @Field({ defaultValue: "#" })
  routingKeyPattern!: string;
}

@InputType({
  description:
    "A condition on the JSON payload; set exactly one of equals, in and " +
    "exists. All conditions of a filter must hold.",
})
export class PayloadCondition {
  @Field({ description: 'Dot path into the payload, such as "status.state".' })
  path!: string;

  @Field(() => GraphQLJSON, { nullable: true })
  equals?: unknown;

  @Field(() => [GraphQLJSON], {
    nullable: true,
    description: "One of these values; the list may not be empty.",
  })
  in?: unknown[];

  @Field({ nullable: true, description: "True: present; false: absent." })
  exists?: boolean;
}

@InputType()
export class CreateAccountInput {
  @Field({ description: "RabbitMQ user name: ^[a-z][a-z0-9._-]*$" })
  username!: string;

  @Field(() => [String], {
    nullable: true,
    description: "Owners' e-mail addresses; the caller is always added.",
  })
  owners?: string[];
}

@InputType()
export class CreateQueueInput {
  @Field()
  account!: string;

  @Field({ description: "Name after queue/<account>/." })
  name!: string;

  @Field({ nullable: true, defaultValue: true })
  durable?: boolean;
}

@InputType()
export class BindingInput {
  @Field({ description: "Full queue name, queue/<account>/<name>." })
  queue!: string;

  @Field()
  exchange!: string;

  @Field({ defaultValue: "#" })
  routingKeyPattern!: string;
}

@InputType({ description: "An exchange and topic pattern to bind a queue to." })
export class BindingTargetInput {
  @Field()
  exchange!: string;

  @Field({ defaultValue: "#" })
  routingKeyPattern!: string;
}
