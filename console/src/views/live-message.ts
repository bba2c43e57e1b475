// One row of the inspector's table per live message or notice, and the
// detail pane of a selected message.
import { formatTime, h, replace } from "../dom";
import { jsonView } from "../json-view";
import type { LiveBinding } from "./inspector-query";

/** A live message, or a notice about the stream when notice is set. */
export interface LiveMessage {
  exchange: string;
  routingKey: string;
  ccRoutingKeys: string[];
  redelivered: boolean;
  timestamp: string;
  payload: unknown;
  binding: LiveBinding;
  notice: { kind: "LOST" | "GAP"; lost: number } | null;
}

/** Builds a table row; a message's routing key is a button that selects it. */
export function messageRow(
  message: LiveMessage,
  onSelect: (message: LiveMessage) => void,
): HTMLTableRowElement {
  if (message.notice) {
    const text = message.notice.kind === "LOST"
      ? `LOST: ${message.notice.lost} message(s) dropped because this client fell behind.`
      : "GAP: the gateway lost its broker connection; messages published meanwhile were missed.";
    return h(
      "tr",
      { class: "notice" },
      h("td", {}, formatTime(message.timestamp)),
      h("td", { colspan: 2 }, text),
    );
  }
  const select = h(
    "button",
    { type: "button", class: "link", onclick: () => onSelect(message) },
    message.routingKey || "(empty)",
  );
  return h(
    "tr",
    { class: "message" },
    h("td", {}, formatTime(message.timestamp)),
    h("td", { class: "exchange" }, message.exchange),
    h("td", { class: "routing-key" }, select),
  );
}

/** Fills the detail pane with the selected message, or a hint. */
export function renderDetail(pane: HTMLElement, selected: LiveMessage | null) {
  pane.setAttribute("tabindex", "-1");
  if (!selected) {
    replace(pane, h("p", { class: "muted" }, "Select a routing key to see the message."));
    return;
  }
  const cc = selected.ccRoutingKeys.length
    ? selected.ccRoutingKeys.join(", ")
    : "none";
  const binding = `${selected.binding.exchange} ${selected.binding.routingKeyPattern}`;
  replace(
    pane,
    h("h3", {}, "Message"),
    h(
      "dl",
      {},
      h("dt", {}, "Exchange"), h("dd", {}, selected.exchange),
      h("dt", {}, "Routing key"), h("dd", {}, selected.routingKey),
      h("dt", {}, "CC routing keys"), h("dd", {}, cc),
      h("dt", {}, "Redelivered"), h("dd", {}, String(selected.redelivered)),
      h("dt", {}, "Time"), h("dd", {}, selected.timestamp),
      h("dt", {}, "Binding"), h("dd", {}, binding),
    ),
    h("h4", {}, "Payload"),
    jsonView(selected.payload),
  );
}
