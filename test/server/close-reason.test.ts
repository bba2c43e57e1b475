// Close reasons cut to RFC 6455's 123 bytes keep their action whole.
import { SlowSubscriberError } from "../../src/live/bridge";
import {
  closeReason,
  MAX_CLOSE_REASON_BYTES,
} from "../../src/server/close-reason";

const ACTION = "Get a new token and reconnect.";

test("short message kept as is", () => {
  expect(closeReason("Token expired.", ACTION)).toBe("Token expired.");
});

test.each([
  ["ASCII", "x".repeat(200)],
  ["two-byte characters", "é".repeat(100)],
  ["four-byte characters", "😀".repeat(60)],
])("long %s message keeps the action", (_name, message) => {
  const reason = closeReason(message, ACTION);
  expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
  expect(reason.endsWith(`... ${ACTION}`)).toBe(true);
  expect(reason).not.toContain("\ufffd");
  expect(message.startsWith(reason.slice(0, -`... ${ACTION}`.length))).toBe(true);
});

test("slow close keeps time and setting", () => {
  const key = {
    exchange: `exchange/${"long-owner".repeat(8)}/v1`,
    routingKeyPattern: "#",
  };
  const error = new SlowSubscriberError(key, 4213);

  const reason = closeReason(error.message, SlowSubscriberError.action);

  expect(reason).toContain("4213 ms");
  expect(reason).toContain("LIVE_MAX_BEHIND_MS");
  expect(reason.endsWith(SlowSubscriberError.action)).toBe(true);
});
