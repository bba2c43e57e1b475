// Generators of hostile names for property-based tests: the characters
// that mean something in URLs, AMQP topics and regular expressions, dot
// runs, Unicode outside the BMP, control characters and long strings.
import fc from "fast-check";

const HOSTILE_PIECES = [
  "/", "%", "%2F", "%2e%2e", "#", "?", "&", " ", "\t", ".", "..", "...",
  "*", "+", "~", ":", "\\", "\u0000", "é", "ß", "İ", "😀", "\u202e",
  "queue/", "exchange/", "a", "b", "Z", "0", "9", "-", "_",
];

/** Strings assembled from pieces that each break some naive encoder. */
export const hostileString = fc
  .array(fc.constantFrom(...HOSTILE_PIECES), { minLength: 0, maxLength: 12 })
  .map((pieces) => pieces.join(""));

/**
 * Any of: a known troublemaker, hostile pieces, arbitrary Unicode, or 250
 * to 300 characters.
 */
export const hostileName = fc.oneof(
  fc.constantFrom(".", "..", "%2e%2e", "./..", "a/../b", "?", "#", " "),
  hostileString,
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.string({ minLength: 250, maxLength: 300 }),
);

/** Names that are mostly valid, so that some reach the broker. */
export const plausibleWord = fc.oneof(
  fc.stringMatching(/^[a-z][a-z0-9._:-]{0,12}$/),
  fc.constantFrom(".", "..", "a..b", "a.", ".a", "x".repeat(260)),
);

/** Topic patterns with wildcards, dot runs, Unicode and odd words. */
export const topicPattern = fc.oneof(
  fc.constantFrom("#", "*", "a.*.#", "#.#", "a..b", "...", ".", "..", "é.😀", "a b"),
  fc
    .array(
      fc.constantFrom("#", "*", "a", "b", "", "é", "😀", "a#", "*b", " ", "%", "?", "/"),
      { maxLength: 6 },
    )
    .map((words) => words.join(".")),
  hostileString,
  fc.string({ minLength: 250, maxLength: 300 }),
);
