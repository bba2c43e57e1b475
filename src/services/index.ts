// Domain services: Pulse's rules for accounts, queues, bindings, admins
// and the audit log. They
// know nothing of GraphQL or of the server.
export { AccountService, type AccountRecord } from "./accounts";
export { QueueService, type QueueRecord, type BindingRecord } from "./queues";
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
export {
  BindingService,
  MAX_BINDINGS_PER_QUEUE,
  type BindingInput,
  type BindingTarget,
} from "./bindings";
export {
  MessageService,
  MAX_PEEK_COUNT,
  PEEK_MAX_PAYLOAD_BYTES,
  type PeekedMessage,
  type PayloadFormat,
  type PurgeRecord,
} from "./messages";
export {
  AdminService,
  type ReservedNameRecord,
  type UserRecord,
} from "./admins";
export {
  AuditLog,
  AUDIT_OK,
  MAX_AUDIT_LIMIT,
  type AuditRecord,
  type AuditQuery,
} from "./audit";
export type { ServiceDeps } from "./context";
export * from "./pulse-names";
