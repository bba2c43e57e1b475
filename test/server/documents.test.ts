import { GraphQLError } from "graphql";

import { DocumentCache } from "../../src/server/documents";

describe("DocumentCache", () => {
  test("same text returns one document", () => {
    const cache = new DocumentCache();
    const first = cache.parse("subscription { messages { routingKey } }");
    const second = cache.parse("subscription { messages { routingKey } }");
    expect(second).toBe(first);
    expect(cache.size).toBe(1);
  });

  test("evicts the least recently used", () => {
    const cache = new DocumentCache(2);
    const a = cache.parse("{ a }");
    cache.parse("{ b }");
    cache.parse("{ a }");
    cache.parse("{ c }");
    expect(cache.size).toBe(2);
    expect(cache.parse("{ a }")).toBe(a);
    // "{ b }" was evicted, so it is parsed again into a new document.
    const b = cache.parse("{ b }");
    expect(cache.parse("{ b }")).toBe(b);
    expect(cache.size).toBe(2);
  });

  test("long queries are not cached", () => {
    const cache = new DocumentCache(10, 20);
    const query = "{ a b c d e f g h i j }";
    expect(cache.parse(query)).not.toBe(cache.parse(query));
    expect(cache.size).toBe(0);
  });

  test("syntax errors are thrown each time", () => {
    const cache = new DocumentCache();
    expect(() => cache.parse("subscription {")).toThrow(GraphQLError);
    expect(() => cache.parse("subscription {")).toThrow(GraphQLError);
    expect(cache.size).toBe(0);
  });

  test("validation runs once per document", () => {
    const cache = new DocumentCache();
    const document = cache.parse("{ a }");
    const failure = [new GraphQLError("Cannot query field")];
    let runs = 0;
    const run = () => {
      runs += 1;
      return failure;
    };
    expect(cache.validate(document, run)).toBe(failure);
    expect(cache.validate(document, run)).toBe(failure);
    expect(runs).toBe(1);
  });
});
