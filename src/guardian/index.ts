// The guardian: thresholds, adoption and history of Pulse queues.
export { Guardian, type GuardianOptions } from "./guardian";
export { GuardianEventLog, type GuardianEventRecord } from "./events";
export { GuardianLock } from "./lock";
