// Parsed and validated documents shared between WebSocket subscriptions.
//
// graphql-ws parses and validates each subscription's document on its own,
// and keeps the parsed document for as long as the subscription lives.
// Dashboards open thousands of subscriptions with a few distinct documents,
// so sharing them saves a parse, a validation and about 11 KiB of retained
// heap per subscription (a V8 heap profile of 10,000 idle subscriptions;
// see docs/benchmarks.md). Documents are never mutated by graphql-js, which
// makes sharing them safe.
import { GraphQLError, parse, type DocumentNode, type Source } from "graphql";

/** Distinct query texts kept parsed, least recently used first out. */
export const MAX_CACHED_DOCUMENTS = 200;

/** Query texts longer than this are parsed for each subscription. */
export const MAX_CACHED_QUERY_LENGTH = 16 * 1024;

export class DocumentCache {
  private readonly documents = new Map<string, DocumentNode>();
  private readonly validations = new WeakMap<DocumentNode, readonly GraphQLError[]>();

  constructor(
    private readonly maxDocuments = MAX_CACHED_DOCUMENTS,
    private readonly maxQueryLength = MAX_CACHED_QUERY_LENGTH,
  ) {}

  /** Parses a query text, or returns the document parsed from it before. */
  parse(query: string | Source): DocumentNode {
    if (typeof query !== "string" || query.length > this.maxQueryLength) {
      return parse(query);
    }
    const cached = this.documents.get(query);
    if (cached) {
      // Reinserting moves the entry to the end of the eviction order.
      this.documents.delete(query);
      this.documents.set(query, cached);
      return cached;
    }
    const document = parse(query);
    this.documents.set(query, document);
    if (this.documents.size > this.maxDocuments) {
      const oldest = this.documents.keys().next().value as string;
      this.documents.delete(oldest);
    }
    return document;
  }

  /**
   * Parses a query text ahead of graphql-ws and returns its parse error,
   * or null. graphql-ws 6.4.2 lets a parse error escape its message
   * handler, which closes the whole socket with 4500, so the gateway
   * checks first and fails only the one operation. A later parse of the
   * same text comes from the cache, except for texts longer than
   * maxQueryLength, which are parsed twice.
   */
  parseError(query: string): GraphQLError | null {
    try {
      this.parse(query);
      return null;
    } catch (error) {
      if (error instanceof GraphQLError) {
        return new GraphQLError(error.message, {
          source: error.source,
          positions: error.positions,
          extensions: { code: "GRAPHQL_PARSE_FAILED" },
        });
      }
      if (error instanceof RangeError) {
        // graphql-js parses recursively, so deeply nested literals
        // overflow the call stack.
        return new GraphQLError(
          "The document nests lists, objects or selections too deeply to " +
            "parse; pass deep values as variables, which may nest 32 levels.",
          { extensions: { code: "GRAPHQL_PARSE_FAILED" } },
        );
      }
      throw error;
    }
  }

  /**
   * Runs `validate` once per document object and returns its errors from
   * then on. Only for rules whose result depends on the document alone.
   */
  validate(
    document: DocumentNode,
    validate: () => readonly GraphQLError[],
  ): readonly GraphQLError[] {
    let errors = this.validations.get(document);
    if (!errors) {
      errors = validate();
      this.validations.set(document, errors);
    }
    return errors;
  }

  get size(): number {
    return this.documents.size;
  }
}
