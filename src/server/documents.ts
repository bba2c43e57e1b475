// Parsed and validated documents shared between WebSocket subscriptions.
//
// graphql-ws parses and validates each subscription's document on its own,
// and keeps the parsed document for as long as the subscription lives.
// Dashboards open thousands of subscriptions with a few distinct documents,
// so sharing them saves a parse, a validation and about 11 KiB of retained
// heap per subscription (a V8 heap profile of 10,000 idle subscriptions;
// see docs/benchmarks.md). Documents are never mutated by graphql-js, which
// makes sharing them safe.
import { parse, type DocumentNode, type GraphQLError, type Source } from "graphql";

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
