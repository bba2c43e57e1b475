// JSON bodies of broker messages, parsed only when they are safe to send on.

/**
 * Deepest nesting of arrays and objects parsed from a message body. V8's
 * JSON.stringify overflows the stack at about 5,000 levels (Node.js 20),
 * and every subscriber and peek serializes the payload again, so deeper
 * bodies are delivered as text.
 */
export const MAX_PAYLOAD_DEPTH = 1000;

/**
 * Encoding of a message body sent to clients: parsed JSON, UTF-8 text, or
 * base64 of a body that is not valid UTF-8.
 */
export type PayloadFormat = "JSON" | "TEXT" | "BASE64";

// Fatal, so a body that is not UTF-8 throws instead of gaining U+FFFD.
// The byte order mark is kept, as Buffer.toString("utf8") keeps it.
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes a body as UTF-8, or returns null when it is not valid UTF-8 and
 * so must be sent as base64.
 */
export function decodeUtf8(body: Uint8Array): string | null {
  try {
    return STRICT_UTF8.decode(body);
  } catch {
    return null;
  }
}

/**
 * Parses a message body as JSON. Throws SyntaxError for a body that is not
 * JSON and RangeError for one nested deeper than MAX_PAYLOAD_DEPTH; callers
 * then deliver the body as text.
 */
export function parseJsonPayload(text: string): unknown {
  // Each level takes at least two characters, so a short body cannot be
  // too deep and skips the scan.
  const mayBeTooDeep = text.length > 2 * MAX_PAYLOAD_DEPTH;
  if (mayBeTooDeep && nestingDepth(text) > MAX_PAYLOAD_DEPTH) {
    throw new RangeError(
      `JSON body is nested deeper than ${MAX_PAYLOAD_DEPTH} levels.`,
    );
  }
  return JSON.parse(text);
}

/** Returns the deepest nesting of [ and { outside JSON strings. */
function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === 0x5c) i += 1; // backslash: skip the escaped character
      else if (code === 0x22) inString = false;
    } else if (code === 0x22) {
      inString = true;
    } else if (code === 0x5b || code === 0x7b) {
      depth += 1;
      if (depth > deepest) deepest = depth;
    } else if (code === 0x5d || code === 0x7d) {
      depth -= 1;
    }
  }
  return deepest;
}
