// Live messages of one or more topic bindings, as in Pulse Inspector, with
// an optional payload filter, a detail pane and a JSON download.
import { subscribe } from "../api";
import {
  downloadText,
  h,
  replace,
  showError,
  showInfo,
  statusLine,
} from "../dom";
import type { Session, View } from "../view";
import {
  parseEquals,
  readQuery,
  writeQuery,
  type LiveBinding,
  type PayloadFilter,
} from "./inspector-query";
import { messageRow, renderDetail, type LiveMessage } from "./live-message";

/** Maximum rows in the table; the oldest are dropped first. */
const MAX_ROWS = 1000;

const MESSAGES_SUBSCRIPTION = `
  subscription Inspect($bindings: [LiveBindingInput!], $filter: [PayloadCondition!]) {
    messages(bindings: $bindings, filter: $filter) {
      exchange routingKey ccRoutingKeys redelivered timestamp payload
      binding { exchange routingKeyPattern }
      notice { kind lost }
    }
  }`;

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
    renderDetail(detail, selected);
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

  function select(message: LiveMessage): void {
    selected = message;
    renderDetail(detail, selected);
    detail.focus();
  }

  function updateCount(): void {
    count.textContent = `${messages.length} message(s)` +
      (messages.length >= MAX_ROWS ? `, the newest ${MAX_ROWS} kept` : "");
  }

  function addMessage(message: LiveMessage): void {
    messages.unshift(message);
    tableBody.insertBefore(messageRow(message, select), tableBody.firstChild);
    if (messages.length > MAX_ROWS) {
      messages.pop();
      tableBody.lastChild?.remove();
    }
    updateCount();
  }

  renderBindings();
  renderDetail(detail, selected);
  updateCount();

  const element = h(
    "section",
    { class: "view inspector", "aria-labelledby": "inspector-title" },
    h("h2", { id: "inspector-title" }, "Inspector"),
    h(
      "p",
      { class: "muted", id: "inspector-hint" },
      "Watch an exchange: add a binding, then Start. On Pulse, try ",
      h("code", {}, "exchange/taskcluster-queue/v1/task-completed"),
      ". On a local broker with no Pulse traffic, publish recorded " +
        "Taskcluster messages from the gateway's folder with ",
      h("code", {}, "npm run replay -- samples/taskcluster_pulse_messages.json"),
      ". It declares the task-pending, task-running and task-completed " +
        "exchanges under exchange/taskcluster-queue/v1/ and publishes to " +
        "them. Run it once so that the exchanges exist, add a binding and " +
        "Start, then run it again to watch the messages arrive.",
    ),
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
