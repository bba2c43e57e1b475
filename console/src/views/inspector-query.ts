// The inspector's bindings and payload filter in the query string
// (?exchange=&pattern=&path=&equals=), so a copied address opens the
// same view. The exchange and pattern parameters repeat, one pair per
// binding.

export interface LiveBinding {
  exchange: string;
  routingKeyPattern: string;
}

export interface PayloadFilter {
  path: string;
  /** Raw text; sent as JSON when it parses as JSON, else as a string. */
  equals: string;
}

/** Reads bindings and filter from ?exchange=&pattern=&path=&equals=. */
export function readQuery(search: string): {
  bindings: LiveBinding[];
  filter: PayloadFilter | null;
} {
  const params = new URLSearchParams(search);
  const exchanges = params.getAll("exchange");
  const patterns = params.getAll("pattern");
  const bindings = exchanges
    .filter((exchange) => exchange !== "")
    .map((exchange, index) => ({
      exchange,
      routingKeyPattern: patterns[index] || "#",
    }));
  const path = params.get("path");
  const filter = path ? { path, equals: params.get("equals") ?? "" } : null;
  return { bindings, filter };
}

export function writeQuery(bindings: LiveBinding[], filter: PayloadFilter | null) {
  const params = new URLSearchParams();
  for (const binding of bindings) {
    params.append("exchange", binding.exchange);
    params.append("pattern", binding.routingKeyPattern);
  }
  if (filter) {
    params.set("path", filter.path);
    params.set("equals", filter.equals);
  }
  const query = params.toString();
  const url = `${window.location.pathname}${query ? `?${query}` : ""}` +
    window.location.hash;
  history.replaceState(null, "", url);
}

export function parseEquals(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
