// Child process of the benchmark: the reference server, a `messages`
// subscription built as a user would build it without the gateway, from
// graphql-ws (the gateway's own copy, 6.x) and graphql-amqp-subscriptions
// 3.0.1 on amqplib 0.10.9.
//
// graphql-amqp-subscriptions declares amqplib 0.x as a peer dependency and
// the gateway depends on amqplib 2.x, so npm cannot install both in one
// tree without an override. Its packages live in bench/reference/ and are
// loaded from there with createRequire.
import { existsSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createRequire } from "node:module";
import path from "node:path";

import {
  GraphQLBoolean,
  GraphQLNonNull,
  GraphQLObjectType,
  GraphQLSchema,
  GraphQLString,
} from "graphql";
import { GraphQLJSON } from "graphql-scalars";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";

import { send, serveControl } from "./child-control";
import { AMQP_URL } from "./settings";

/** Fields of an amqplib 0.10 delivery that the resolver reads. */
interface AmqpDelivery {
  fields: { exchange: string; routingKey: string };
}

interface AmqpConnectionHandle {
  close(): Promise<void>;
  on(event: "error", listener: (error: Error) => void): unknown;
}

interface AmqplibModule {
  connect(
    url: string,
    socketOptions: { noDelay: boolean },
  ): Promise<AmqpConnectionHandle>;
}

/** The part of graphql-amqp-subscriptions' AMQPPubSub used here. */
interface AmqpPubSub {
  subscribe(
    routingKey: string,
    onMessage: (content: unknown, message?: AmqpDelivery | null) => void,
  ): Promise<number>;
  unsubscribe(id: number): Promise<void>;
}

interface AmqpPubSubConfig {
  connection: AmqpConnectionHandle;
  exchange: {
    name: string;
    type: string;
    options: { durable: boolean; autoDelete: boolean };
  };
}

type AmqpPubSubClass = new (config: AmqpPubSubConfig) => AmqpPubSub;

/** graphql-subscriptions' PubSubEngine: its asyncIterableIterator is used. */
type PubSubEngineClass = abstract new () => {
  asyncIterableIterator<T>(triggers: string | string[]): AsyncIterableIterator<T>;
};

interface ReferenceMessage {
  exchange: string;
  routingKey: string;
  payload: unknown;
}

function loadReferencePackages() {
  // Compiled to dist/bench/bench/, three levels below the repository.
  const manifest = path.resolve(__dirname, "../../../bench/reference/package.json");
  const installed = path.resolve(
    path.dirname(manifest),
    "node_modules/graphql-amqp-subscriptions",
  );
  if (!existsSync(installed)) {
    throw new Error(
      `The reference server's packages are missing from ` +
        `${path.dirname(installed)}. Run ` +
        `\`npm ci --prefix bench/reference\` (npm run bench does).`,
    );
  }
  const load = createRequire(manifest);
  return {
    amqplib: load("amqplib") as AmqplibModule,
    AMQPPubSub: (load("graphql-amqp-subscriptions") as { AMQPPubSub: AmqpPubSubClass })
      .AMQPPubSub,
    PubSubEngine: (load("graphql-subscriptions") as { PubSubEngine: PubSubEngineClass })
      .PubSubEngine,
  };
}

const packages = loadReferencePackages();

/**
 * AMQPPubSub hands the routing key and exchange of a delivery only to the
 * listener of subscribe(), and its own asyncIterableIterator() drops them.
 * This engine passes them on, so that the subscription returns the same
 * fields as the gateway's.
 */
class ExchangeMessages extends packages.PubSubEngine {
  constructor(
    private readonly pubsub: AmqpPubSub,
    private readonly exchange: string,
  ) {
    super();
  }

  publish(): Promise<void> {
    return Promise.reject(new Error("The reference server only subscribes."));
  }

  subscribe(
    pattern: string,
    onMessage: (message: ReferenceMessage) => void,
  ): Promise<number> {
    return this.pubsub.subscribe(pattern, (content, delivery) =>
      onMessage({
        exchange: delivery?.fields.exchange ?? this.exchange,
        routingKey: delivery?.fields.routingKey ?? "",
        payload: content,
      }),
    );
  }

  unsubscribe(id: number): void {
    this.pubsub.unsubscribe(id).catch((error: unknown) => {
      process.stderr.write(`unsubscribe ${id} failed: ${String(error)}\n`);
    });
  }
}

function buildSchema(engineFor: (exchange: string) => ExchangeMessages) {
  const message = new GraphQLObjectType({
    name: "LiveMessage",
    fields: {
      exchange: { type: new GraphQLNonNull(GraphQLString) },
      routingKey: { type: new GraphQLNonNull(GraphQLString) },
      payload: { type: GraphQLJSON },
    },
  });
  return new GraphQLSchema({
    query: new GraphQLObjectType({
      name: "Query",
      fields: { ok: { type: GraphQLBoolean, resolve: () => true } },
    }),
    subscription: new GraphQLObjectType({
      name: "Subscription",
      fields: {
        messages: {
          type: new GraphQLNonNull(message),
          args: {
            exchange: { type: new GraphQLNonNull(GraphQLString) },
            routingKeyPattern: {
              type: new GraphQLNonNull(GraphQLString),
              defaultValue: "#",
            },
          },
          subscribe: (
            _root: unknown,
            args: { exchange: string; routingKeyPattern: string },
          ) =>
            engineFor(args.exchange).asyncIterableIterator<ReferenceMessage>(
              args.routingKeyPattern,
            ),
          resolve: (value: unknown) => value as ReferenceMessage,
        },
      },
    }),
  });
}

async function main(): Promise<void> {
  const connection = await packages.amqplib.connect(AMQP_URL, {
    noDelay: true,
  });
  connection.on("error", (error) => {
    process.stderr.write(`AMQP connection error: ${error.message}\n`);
  });
  // One AMQPPubSub per exchange, because each one is tied to one exchange.
  const engines = new Map<string, ExchangeMessages>();
  const engineFor = (exchange: string): ExchangeMessages => {
    let engine = engines.get(exchange);
    if (!engine) {
      const pubsub = new packages.AMQPPubSub({
        connection,
        // The benchmark declares its exchanges with these options, and
        // AMQPPubSub re-asserts the exchange on every new binding.
        exchange: {
          name: exchange,
          type: "topic",
          options: { durable: false, autoDelete: false },
        },
      });
      engine = new ExchangeMessages(pubsub, exchange);
      engines.set(exchange, engine);
    }
    return engine;
  };

  const server = http.createServer((_request, response) => {
    response.writeHead(404).end();
  });
  const wsServer = new WebSocketServer({ server, path: "/graphql" });
  const graphqlWs = useServer({ schema: buildSchema(engineFor) }, wsServer);

  serveControl(async () => {
    await graphqlWs.dispose();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await connection.close();
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  send({ type: "ready", url: `http://127.0.0.1:${port}/graphql` });
}

if (require.main === module) {
  main().catch((error: unknown) => {
    send({ type: "failed", error: (error as Error).stack ?? String(error) });
    process.exit(1);
  });
}
