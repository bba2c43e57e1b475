// Topic-exchange matching as RabbitMQ does it. A routing key and a binding
// pattern are lists of dot-separated words, and the empty string is a list of
// zero words. In a pattern, `*` matches exactly one word and `#` matches zero
// or more words.

/** Maximum length of a binding pattern: AMQP 0-9-1 sends it as a shortstr. */
export const MAX_BINDING_PATTERN_BYTES = 255;

/** Returns whether a topic exchange routes `routingKey` to `pattern`. */
export function matchesTopic(pattern: string, routingKey: string): boolean {
  const patternWords = splitWords(pattern);
  const keyWords = splitWords(routingKey);

  // matched[j] is true when the pattern words seen so far can consume exactly
  // the first j words of the routing key.
  let matched = new Array<boolean>(keyWords.length + 1).fill(false);
  matched[0] = true;
  for (const word of patternWords) {
    const next = new Array<boolean>(keyWords.length + 1).fill(false);
    if (word === "#") {
      let reachable = false;
      for (let j = 0; j <= keyWords.length; j += 1) {
        reachable = reachable || matched[j];
        next[j] = reachable;
      }
    } else {
      for (let j = 1; j <= keyWords.length; j += 1) {
        next[j] = matched[j - 1] && (word === "*" || word === keyWords[j - 1]);
      }
    }
    matched = next;
  }
  return matched[keyWords.length];
}

/**
 * Checks a binding pattern and returns a description of the first problem,
 * or null when the pattern is valid. RabbitMQ itself accepts a word such as
 * `b*` and treats it as literal text, so it is rejected here as a likely
 * mistake.
 */
export function validateBindingPattern(pattern: string): string | null {
  const bytes = Buffer.byteLength(pattern, "utf8");
  if (bytes > MAX_BINDING_PATTERN_BYTES) {
    return (
      `Binding pattern is ${bytes} bytes of UTF-8; the maximum is ` +
      `${MAX_BINDING_PATTERN_BYTES} bytes.`
    );
  }
  for (const word of splitWords(pattern)) {
    if (word.length > 1 && (word.includes("*") || word.includes("#"))) {
      return (
        `Binding pattern "${pattern}" contains the word "${word}", which ` +
        `mixes a wildcard with other characters; use * or # as a whole ` +
        `word, as in "a.*" or "a.#".`
      );
    }
  }
  return null;
}

function splitWords(text: string): string[] {
  return text === "" ? [] : text.split(".");
}
