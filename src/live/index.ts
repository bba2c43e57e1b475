// Live messages: RabbitMQ topic bindings streamed to subscribers as async
// iterators, for the GraphQL subscriptions.
export {
  AmqpLiveSource,
  type AmqpLiveSourceOptions,
  type AmqpLiveSourceStats,
} from "./amqp-source";
export {
  LiveBridge,
  type BindingKey,
  type LiveBridgeOptions,
  type LiveBridgeStats,
  type LiveMessage,
  type LiveSource,
  type LiveSubscription,
  type SourceHandle,
  type SubscribeOptions,
  type SubscriptionStats,
} from "./bridge";
export {
  MAX_BINDING_PATTERN_BYTES,
  matchesTopic,
  validateBindingPattern,
} from "./topic";
