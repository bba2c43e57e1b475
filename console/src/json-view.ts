// Collapsible JSON built from <details> elements, so it opens and closes
// with the keyboard without any script of its own.
import { h } from "./dom";

/** Objects and arrays at this depth or deeper start closed. */
const OPEN_DEPTH = 2;

export function jsonView(value: unknown): HTMLElement {
  return h("div", { class: "json" }, renderValue(value, 0));
}

function renderValue(value: unknown, depth: number): Node {
  if (Array.isArray(value)) {
    return renderContainer(
      value.map((item, index) => [String(index), item] as const),
      `Array(${value.length})`,
      depth,
    );
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    return renderContainer(entries, `{${entries.length} keys}`, depth);
  }
  return h("span", { class: `json-${typeOf(value)}` }, JSON.stringify(value));
}

function renderContainer(
  entries: readonly (readonly [string, unknown])[],
  summary: string,
  depth: number,
): Node {
  if (entries.length === 0) {
    return h("span", { class: "json-empty" }, summary);
  }
  const list = h("ul");
  for (const [key, item] of entries) {
    list.appendChild(
      h("li", {}, h("span", { class: "json-key" }, `${key}: `),
        renderValue(item, depth + 1)),
    );
  }
  return h(
    "details",
    { open: depth < OPEN_DEPTH },
    h("summary", {}, summary),
    list,
  );
}

function typeOf(value: unknown): string {
  if (value === null) return "null";
  return typeof value;
}
