// Live messages: RabbitMQ topic bindings streamed to subscribers as async
// iterators, for the GraphQL subscriptions.
export {
  AmqpLiveSource,
  type AmqpLiveSourceOptions,
  type AmqpLiveSourceStats,
} from "./amqp-source";
export {
  LiveBridge,
  SlowSubscriberError,
  type BindingKey,
  type LiveBridgeOptions,
  type LiveBridgeStats,
  type LiveMessage,
  type LiveNotice,
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
export {
  compileFilter,
  type PayloadCondition,
  type PayloadPredicate,
} from "./filter";
export { mergeSubscriptions, type TaggedMessage } from "./merge";
export { MAX_PAYLOAD_DEPTH, parseJsonPayload } from "./payload";
