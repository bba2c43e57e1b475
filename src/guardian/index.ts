// The guardian: thresholds, adoption, reconciliation, notices and history
// of Pulse queues.
export { Guardian, type GuardianOptions } from "./guardian";
export {
  GUARDIAN_EVENTS_CHANNEL,
  GuardianEventLog,
  type AccountLifetime,
  type GuardianEventRecord,
} from "./events";
export { GuardianLock } from "./lock";
export { QueueHistory, type QueueSamplePoint } from "./history";
export {
  Notifier,
  signBody,
  SIGNATURE_HEADER,
  type Recipients,
} from "./notifier";
export type { Notice } from "./notices";
export { guardianSettings } from "./settings";
