// One queue in My queues: a meter of its size against the guardian's
// sizes, its counts and bindings, and bind, unbind, purge and delete.
import { h, replace } from "../dom";

/** A queue as the queueStats subscription sends it. */
export interface QueueStats {
  name: string;
  account: string;
  messages: number | null;
  messagesReady: number | null;
  messagesUnacknowledged: number | null;
  consumers: number | null;
  warned: boolean;
  policy: { warnSize: number; deleteSize: number };
  bindings: { exchange: string; routingKeyPattern: string }[];
}

/** A queue's card and the function that shows new statistics in it. */
export interface QueueCard {
  element: HTMLElement;
  update: (queue: QueueStats) => void;
}

/** Runs a mutation, reports it in the view's status line, and refreshes. */
export type Mutate = (
  label: string,
  query: string,
  variables: Record<string, unknown>,
) => Promise<void>;

function show(value: number | null): string {
  return value === null ? "unknown" : String(value);
}

/** Creates the card; index makes its form ids unique on the page. */
export function createQueueCard(
  name: string,
  index: number,
  mutate: Mutate,
): QueueCard {
  const meter = h("meter", { min: 0, value: 0, "aria-label": `Size of ${name}` });
  const figures = h("p", { class: "figures" });
  const bindingList = h("ul", { class: "bindings" });
  const element = h(
    "article",
    { class: "card queue", "data-queue": name },
    h("h3", {}, name),
    meter,
    figures,
    h("h4", {}, "Bindings"),
    bindingList,
    bindForm(name, index, mutate),
    actionButtons(name, mutate),
  );
  return {
    element,
    update: (queue) => {
      updateMeter(meter, queue);
      figures.textContent = describeSize(queue);
      renderBindings(bindingList, queue, mutate);
    },
  };
}

// The meter is in its good colour up to the warn size and in its bad one
// above it. A value between low and high would be shown as in between.
function updateMeter(meter: HTMLMeterElement, queue: QueueStats): void {
  meter.max = Math.max(queue.policy.deleteSize, 1);
  meter.high = queue.policy.warnSize;
  meter.low = queue.policy.warnSize;
  meter.optimum = 0;
  meter.value = queue.messages ?? 0;
}

function describeSize(queue: QueueStats): string {
  return (
    `size ${show(queue.messages)} (ready ${show(queue.messagesReady)}, ` +
    `unacked ${show(queue.messagesUnacknowledged)}), ` +
    `consumers ${show(queue.consumers)}; warn above ` +
    `${queue.policy.warnSize}, delete above ${queue.policy.deleteSize}` +
    (queue.warned ? " (warned)" : "")
  );
}

function renderBindings(
  list: HTMLElement,
  queue: QueueStats,
  mutate: Mutate,
): void {
  replace(
    list,
    ...queue.bindings.map((binding) => {
      const unbind = h("button", {
        type: "button",
        class: "small",
        "aria-label": `Unbind ${binding.exchange} ${binding.routingKeyPattern}`,
        onclick: () => void mutate(
          `Unbinding ${queue.name}`,
          "mutation Unbind($input: BindingInput!) { deleteBinding(input: $input) }",
          { input: { queue: queue.name, ...binding } },
        ),
      }, "Unbind");
      return h("li", {}, h("code", {}, binding.exchange), " ",
        h("code", {}, binding.routingKeyPattern), " ", unbind);
    }),
  );
  if (queue.bindings.length === 0) {
    list.appendChild(h("li", { class: "muted" }, "No bindings."));
  }
}

function bindForm(name: string, index: number, mutate: Mutate): HTMLFormElement {
  const exchangeId = `bind-exchange-${index}`;
  const patternId = `bind-pattern-${index}`;
  const exchangeInput = h("input", { id: exchangeId, required: true, autocomplete: "off" });
  const patternInput = h("input", { id: patternId, value: "#", autocomplete: "off" });
  const form = h(
    "form",
    { class: "row", "aria-label": `Bind ${name}` },
    h("div", { class: "field grow" }, h("label", { for: exchangeId }, "Exchange"), exchangeInput),
    h("div", { class: "field" }, h("label", { for: patternId }, "Pattern"), patternInput),
    h("button", { type: "submit" }, "Bind"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void mutate(
      `Binding ${name}`,
      `mutation Bind($input: BindingInput!) { createBinding(input: $input) { queue } }`,
      {
        input: {
          queue: name,
          exchange: exchangeInput.value.trim(),
          routingKeyPattern: patternInput.value.trim() || "#",
        },
      },
    );
  });
  return form;
}

function actionButtons(name: string, mutate: Mutate): HTMLElement {
  const purge = h("button", {
    type: "button",
    onclick: () => {
      if (!window.confirm(`Purge every ready message of ${name}?`)) return;
      void mutate(`Purging ${name}`,
        "mutation Purge($name: String!) { purgeQueue(name: $name) { messagesPurged } }", { name });
    },
  }, "Purge");
  const remove = h("button", {
    type: "button",
    class: "danger",
    onclick: () => {
      if (!window.confirm(`Delete ${name} and the messages it contains?`)) return;
      void mutate(`Deleting ${name}`,
        "mutation Delete($name: String!) { deleteQueue(name: $name) }", { name });
    },
  }, "Delete");
  return h("div", { class: "row actions" }, purge, remove);
}
