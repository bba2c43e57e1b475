// WebSocket close reasons, which RFC 6455 limits to 123 bytes of UTF-8.

/** Maximum length of a close reason, in bytes of UTF-8. */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * Returns `message` when it fits a close frame, else `brief` (the fact and
 * the fix in few words) when given and it fits. Otherwise returns the
 * start of `message`, cut at a code point and marked with "...", followed
 * by `action` in full, so the client still learns what to do.
 */
export function closeReason(
  message: string,
  action: string,
  brief?: string,
): string {
  if (Buffer.byteLength(message) <= MAX_CLOSE_REASON_BYTES) return message;
  if (brief && Buffer.byteLength(brief) <= MAX_CLOSE_REASON_BYTES) {
    return brief;
  }
  const suffix = `... ${action}`;
  const room = MAX_CLOSE_REASON_BYTES - Buffer.byteLength(suffix);
  let cut = "";
  let used = 0;
  for (const character of message) {
    const size = Buffer.byteLength(character);
    if (used + size > room) break;
    cut += character;
    used += size;
  }
  return `${cut}${suffix}`;
}
