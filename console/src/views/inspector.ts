// Live messages of one or more topic bindings, as in Pulse Inspector. The
// bindings and the filter are kept in the query string, so a copied
// address opens the same view.
import { subscribe } from "../api";
import {
  downloadText,
  formatTime,
  h,
  replace,
  showError,
  showInfo,
  statusLine,
} from "../dom";
import { jsonView } from "../json-view";
import type { Session, View } from "../view";

/** Maximum rows in the table; the oldest are dropped first. */
const MAX_ROWS = 1000;

interface LiveBinding {
  exchange: string;
  routingKeyPattern: string;
}

interface PayloadFilter {
  path: string;
  /** Raw text; sent as JSON when it parses as JSON, else as a string. */
  equals: string;
}

interface LiveMessage {
  exchange: string;
  routingKey: string;
  ccRoutingKeys: string[];
  redelivered: boolean;
  timestamp: string;
  payload: unknown;
  binding: LiveBinding;
  notice: { kind: "LOST" | "GAP"; lost: number } | null;
}

const MESSAGES_SUBSCRIPTION = `
  subscription Inspect($bindings: [LiveBindingInput!], $filter: [PayloadCondition!]) {
    messages(bindings: $bindings, filter: $filter) {
      exchange routingKey ccRoutingKeys redelivered timestamp payload
      binding { exchange routingKeyPattern }
      notice { kind lost }
    }
  }`;

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

function writeQuery(bindings: LiveBinding[], filter: PayloadFilter | null) {
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

function parseEquals(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function inspectorView(session: Session): View {
  const initial = readQuery(window.location.search);
  const bindings: LiveBinding[] = initial.bindings;
  const messages: LiveMessage[] = [];
  let stop: (() => void) | null = null;
  let selected: LiveMessage | null = null;

  const exchangeInput = h("input", {
    id: "inspector-exchange",
    name: "exchange",
    placeholder: "exchange/taskcluster-queue/v1/task-completed",
    autocomplete: "off",
  });
  const patternInput = h("input", {
    id: "inspector-pattern",
    name: "pattern",
    value: "#",
    autocomplete: "off",
  });
  const pathInput = h("input", {
    id: "inspector-path",
    name: "path",
    placeholder: "status.state",
    value: initial.filter?.path ?? "",
  });
  const equalsInput = h("input", {
    id: "inspector-equals",
    name: "equals",
    placeholder: '"failed"',
    value: initial.filter?.equals ?? "",
  });
  const bindingList = h("ul", { class: "bindings", "aria-label": "Bindings" });
  const status = statusLine();
  const startButton = h("button", { type: "button", id: "inspector-start" }, "Start");
  const clearButton = h("button", { type: "button" }, "Clear");
  const downloadButton = h("button", { type: "button" }, "Download JSON");
  const tableBody = h("tbody");
  const count = h("span", { class: "count" });
  const detail = h("section", { class: "detail card", "aria-label": "Message detail" });

  function currentFilter(): PayloadFilter | null {
    const path = pathInput.value.trim();
    return path ? { path, equals: equalsInput.value.trim() } : null;
  }

  function renderBindings(): void {
    replace(
      bindingList,
      ...bindings.map((binding, index) =>
        h(
          "li",
          {},
          h("code", {}, binding.exchange),
          " ",
          h("code", {}, binding.routingKeyPattern),
          " ",
          h(
            "button",
            {
              type: "button",
              class: "small",
              "aria-label": `Remove binding ${binding.exchange} ${binding.routingKeyPattern}`,
              onclick: () => {
                bindings.splice(index, 1);
                bindingsChanged();
              },
            },
            "Remove",
          ),
        ),
      ),
    );
    if (bindings.length === 0) {
      bindingList.appendChild(h("li", { class: "muted" }, "No bindings yet."));
    }
  }

  function bindingsChanged(): void {
    renderBindings();
    writeQuery(bindings, currentFilter());
    if (stop) {
      showInfo(status, "Bindings changed; press Start to apply them.");
      stopStream();
    }
  }

  const addForm = h(
    "form",
    { class: "row", "aria-label": "Add binding" },
    h("div", { class: "field grow" },
      h("label", { for: "inspector-exchange" }, "Exchange"), exchangeInput),
    h("div", { class: "field" },
      h("label", { for: "inspector-pattern" }, "Routing-key pattern"), patternInput),
    h("button", { type: "submit" }, "Add binding"),
  );
  addForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const exchange = exchangeInput.value.trim();
    if (!exchange) {
      showError(status, "Enter an exchange name, such as exchange/taskcluster-queue/v1/task-completed.");
      exchangeInput.focus();
      return;
    }
    bindings.push({ exchange, routingKeyPattern: patternInput.value.trim() || "#" });
    exchangeInput.value = "";
    patternInput.value = "#";
    bindingsChanged();
    exchangeInput.focus();
  });

  for (const input of [pathInput, equalsInput]) {
    input.addEventListener("change", () => writeQuery(bindings, currentFilter()));
  }

  function startStream(): void {
    if (bindings.length === 0) {
      showError(status, "Add at least one binding, then press Start.");
      return;
    }
    const filter = currentFilter();
    const variables: Record<string, unknown> = { bindings };
    if (filter) {
      variables.filter = [{ path: filter.path, equals: parseEquals(filter.equals) }];
    }
    stop = subscribe<{ messages: LiveMessage }>(
      session.socket,
      MESSAGES_SUBSCRIPTION,
      variables,
      {
        next: (data) => addMessage(data.messages),
        error: (message) => {
          showError(status, `The subscription stopped: ${message}`);
          stop = null;
          startButton.textContent = "Start";
        },
        complete: () => {
          stop = null;
          startButton.textContent = "Start";
        },
      },
    );
    startButton.textContent = "Stop";
    showInfo(status, `Listening on ${bindings.length} binding(s).`);
  }

  function stopStream(): void {
    stop?.();
    stop = null;
    startButton.textContent = "Start";
  }

  startButton.addEventListener("click", () => {
    if (stop) {
      stopStream();
      showInfo(status, "Stopped.");
    } else {
      startStream();
    }
  });
  clearButton.addEventListener("click", () => {
    messages.length = 0;
    replace(tableBody);
    selected = null;
    renderDetail();
    updateCount();
  });
  downloadButton.addEventListener("click", () => {
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    downloadText(
      `pulse-messages-${stamp}.json`,
      JSON.stringify(messages, null, 2),
      "application/json",
    );
  });

  function updateCount(): void {
    count.textContent = `${messages.length} message(s)` +
      (messages.length >= MAX_ROWS ? `, the newest ${MAX_ROWS} kept` : "");
  }

  function addMessage(message: LiveMessage): void {
    messages.unshift(message);
    tableBody.insertBefore(messageRow(message), tableBody.firstChild);
    if (messages.length > MAX_ROWS) {
      messages.pop();
      tableBody.lastChild?.remove();
    }
    updateCount();
  }

  function messageRow(message: LiveMessage): HTMLTableRowElement {
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
    const show = h(
      "button",
      {
        type: "button",
        class: "link",
        onclick: () => {
          selected = message;
          renderDetail();
          detail.focus();
        },
      },
      message.routingKey || "(empty)",
    );
    return h(
      "tr",
      { class: "message" },
      h("td", {}, formatTime(message.timestamp)),
      h("td", { class: "exchange" }, message.exchange),
      h("td", { class: "routing-key" }, show),
    );
  }

  function renderDetail(): void {
    detail.setAttribute("tabindex", "-1");
    if (!selected) {
      replace(detail, h("p", { class: "muted" }, "Select a routing key to see the message."));
      return;
    }
    replace(
      detail,
      h("h3", {}, "Message"),
      h(
        "dl",
        {},
        h("dt", {}, "Exchange"), h("dd", {}, selected.exchange),
        h("dt", {}, "Routing key"), h("dd", {}, selected.routingKey),
        h("dt", {}, "CC routing keys"),
        h("dd", {}, selected.ccRoutingKeys.length
          ? selected.ccRoutingKeys.join(", ")
          : "none"),
        h("dt", {}, "Redelivered"), h("dd", {}, String(selected.redelivered)),
        h("dt", {}, "Time"), h("dd", {}, selected.timestamp),
        h("dt", {}, "Binding"),
        h("dd", {}, `${selected.binding.exchange} ${selected.binding.routingKeyPattern}`),
      ),
      h("h4", {}, "Payload"),
      jsonView(selected.payload),
    );
  }

  renderBindings();
  renderDetail();
  updateCount();

  const element = h(
    "section",
    { class: "view inspector", "aria-labelledby": "inspector-title" },
    h("h2", { id: "inspector-title" }, "Inspector"),
    addForm,
    bindingList,
    h(
      "fieldset",
      { class: "row" },
      h("legend", {}, "Payload filter (optional)"),
      h("div", { class: "field grow" },
        h("label", { for: "inspector-path" }, "Path"), pathInput),
      h("div", { class: "field grow" },
        h("label", { for: "inspector-equals" }, "Equals (JSON or text)"), equalsInput),
    ),
    h("div", { class: "row actions" }, startButton, clearButton, downloadButton, count),
    status,
    h(
      "div",
      { class: "split" },
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "messages", "aria-label": "Messages, newest first" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Time"),
            h("th", { scope: "col" }, "Exchange"),
            h("th", { scope: "col" }, "Routing key"))),
          tableBody,
        ),
      ),
      detail,
    ),
  );
  return { element, dispose: stopStream };
}
