// Close reasons cut to RFC 6455's 123 bytes keep their action whole.
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
