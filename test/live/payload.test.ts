import { MAX_PAYLOAD_DEPTH, parseJsonPayload } from "../../src/live";

describe("parseJsonPayload", () => {
  test("parses ordinary JSON", () => {
    expect(parseJsonPayload('{"a":[1,{"b":null}]}')).toEqual({ a: [1, { b: null }] });
  });

  test("rejects text that is not JSON", () => {
    expect(() => parseJsonPayload("not json")).toThrow(SyntaxError);
  });

  test("rejects nesting past the maximum", () => {
    const depth = MAX_PAYLOAD_DEPTH + 1;
    const text = "[".repeat(depth) + "]".repeat(depth);
    expect(() => parseJsonPayload(text)).toThrow(RangeError);
  });

  test("accepts nesting at the maximum", () => {
    const text = "[".repeat(MAX_PAYLOAD_DEPTH) + "]".repeat(MAX_PAYLOAD_DEPTH);
    expect(() => parseJsonPayload(text)).not.toThrow();
  });

  test("brackets inside strings do not count", () => {
    const text = JSON.stringify({ s: "[{".repeat(MAX_PAYLOAD_DEPTH * 2), t: '\\"[' });
    expect(parseJsonPayload(text)).toEqual(JSON.parse(text));
  });
});
