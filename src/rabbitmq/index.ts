// Adapters for RabbitMQ: the management HTTP API and the AMQP connection.
// They know the broker's protocols, not Pulse's rules.
export * from "./management";
export * from "./amqp";
