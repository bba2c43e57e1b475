import type { Config } from "../config";

/** Returns the guardian's options that come from the settings alone. */
export function guardianSettings(config: Config) {
  const { guardian } = config;
  return {
    warnSize: guardian.warnSize,
    deleteSize: guardian.deleteSize,
    consumerGoneMs: guardian.consumerGoneMs,
    maxBackoffMs: guardian.maxBackoffMs,
    gatewayAccount: config.gatewayAccount,
    adminRecipients: {
      emails: config.adminEmails,
      webhookUrls: guardian.notifications.adminWebhookUrls,
    },
  };
}
