// Guardian settings: defaults, bounds and the messages of invalid values.
import { ConfigError, loadConfig } from "../src/config";

test("guardian defaults", () => {
  const { guardian } = loadConfig({});
  expect(guardian.maxDeleteSize).toBe(100_000);
  expect(guardian.maxBackoffMs).toBe(60_000);
  expect(guardian.consumerGoneMs).toBe(600_000);
  expect(guardian.historyRetentionDays).toBe(30);
  expect(guardian.notifications.smtpUrl).toBeUndefined();
  expect(guardian.notifications.webhookSecret).toBeUndefined();
  expect(guardian.notifications.webhookAttempts).toBe(5);
  expect(guardian.notifications.webhookBackoffMs).toBe(1000);
  expect(guardian.notifications.adminWebhookUrls).toEqual([]);
});

test("notification settings are read", () => {
  const { notifications } = loadConfig({
    SMTP_URL: "smtp://127.0.0.1:2525",
    SMTP_FROM: "guardian@example.com",
    GUARDIAN_WEBHOOK_SECRET: "secret",
    GUARDIAN_WEBHOOK_ATTEMPTS: "2",
    GUARDIAN_ADMIN_WEBHOOKS: "http://127.0.0.1:9/a, http://127.0.0.1:9/b",
  }).guardian;
  expect(notifications.smtpUrl).toBe("smtp://127.0.0.1:2525");
  expect(notifications.smtpFrom).toBe("guardian@example.com");
  expect(notifications.webhookSecret).toBe("secret");
  expect(notifications.webhookAttempts).toBe(2);
  expect(notifications.adminWebhookUrls).toEqual([
    "http://127.0.0.1:9/a",
    "http://127.0.0.1:9/b",
  ]);
});

test("maximum below delete size is rejected", () => {
  const load = () =>
    loadConfig({
      GUARDIAN_DELETE_SIZE: "8000",
      GUARDIAN_MAX_DELETE_SIZE: "10",
    });
  expect(load).toThrow(ConfigError);
  expect(load).toThrow(/GUARDIAN_MAX_DELETE_SIZE \(10\)/);
});

test("backoff below interval is rejected", () => {
  const load = () =>
    loadConfig({
      GUARDIAN_INTERVAL_MS: "5000",
      GUARDIAN_MAX_BACKOFF_MS: "1000",
    });
  expect(load).toThrow(ConfigError);
  expect(load).toThrow(/GUARDIAN_MAX_BACKOFF_MS \(1000\)/);
  expect(load).toThrow(/GUARDIAN_INTERVAL_MS \(5000\)/);
});

test("backoff setting is read", () => {
  const { guardian } = loadConfig({
    GUARDIAN_INTERVAL_MS: "500",
    GUARDIAN_MAX_BACKOFF_MS: "2000",
  });
  expect(guardian.maxBackoffMs).toBe(2000);
});

test("invalid guardian values are rejected", () => {
  const cases: Record<string, string> = {
    SMTP_URL: "not a url",
    GUARDIAN_ADMIN_WEBHOOKS: "http://127.0.0.1:9/a,not a url",
    GUARDIAN_WEBHOOK_ATTEMPTS: "0",
    GUARDIAN_HISTORY_RETENTION_DAYS: "0",
    GUARDIAN_CONSUMER_GONE_MS: "-1",
    GUARDIAN_MAX_BACKOFF_MS: "fast",
  };
  for (const [name, value] of Object.entries(cases)) {
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(name));
  }
});
