// Domain services: Pulse's rules for accounts, queues and bindings. They
// know nothing of GraphQL or of the server.
export { AccountService, type AccountRecord } from "./accounts";
export { QueueService, type QueueRecord, type BindingRecord } from "./queues";
export { BindingService, type BindingInput } from "./bindings";
export {
  PolicyService,
  effectiveThresholds,
  type PolicyRecord,
  type Thresholds,
  type ThresholdLimits,
} from "./policies";
export {
  QueueLimitService,
  accountPolicyName,
  policyAccount,
  type QueueLimits,
} from "./queue-limits";
export type { ServiceDeps } from "./context";
export * from "./pulse-names";
