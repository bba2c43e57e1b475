// The viewer's queues with live statistics from the queueStats
// subscription, their bindings, and purge, delete, create and bind actions.
import { request, subscribe } from "../api";
import { h, replace, showError, showInfo, statusLine } from "../dom";
import type { Session, View } from "../view";

interface QueueStats {
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

const QUEUE_FIELDS = `
  name account messages messagesReady messagesUnacknowledged consumers warned
  policy { warnSize deleteSize }
  bindings { exchange routingKeyPattern }`;

const STATS_SUBSCRIPTION = `subscription QueueStats { queueStats { ${QUEUE_FIELDS} } }`;

/** The parts of one queue's card that change with each statistics event. */
interface QueueCard {
  element: HTMLElement;
  update: (queue: QueueStats) => void;
}

function show(value: number | null): string {
  return value === null ? "unknown" : String(value);
}

export function queuesView(session: Session): View {
  const status = statusLine();
  const list = h("div", { class: "queue-list" });
  const cards = new Map<string, QueueCard>();
  let stop: (() => void) | null = null;

  const accountSelect = h("select", { id: "queue-account", name: "account", required: true });
  const nameInput = h("input", {
    id: "queue-name",
    name: "name",
    required: true,
    placeholder: "completed",
    autocomplete: "off",
  });
  const createForm = h(
    "form",
    { class: "row card", "aria-label": "Create queue" },
    h("div", { class: "field" }, h("label", { for: "queue-account" }, "Account"), accountSelect),
    h("div", { class: "field grow" }, h("label", { for: "queue-name" }, "Queue name"), nameInput),
    h("button", { type: "submit" }, "Create queue"),
  );
  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const data = await request<{ createQueue: { name: string } }>(
        session.token,
        `mutation CreateQueue($input: CreateQueueInput!) {
           createQueue(input: $input) { name } }`,
        { input: { account: accountSelect.value, name: nameInput.value.trim() } },
      );
      showInfo(status, `Created ${data.createQueue.name}.`);
      nameInput.value = "";
      restart();
    } catch (error) {
      showError(status, `Creating the queue failed: ${(error as Error).message}`);
    }
  });

  async function loadAccounts(): Promise<void> {
    try {
      const data = await request<{ accounts: { username: string }[] }>(
        session.token,
        "query Accounts { accounts { username } }",
      );
      const previous = accountSelect.value;
      replace(
        accountSelect,
        ...data.accounts.map((account) =>
          h("option", { value: account.username }, account.username)),
      );
      if (data.accounts.some((account) => account.username === previous)) {
        accountSelect.value = previous;
      }
      createForm.hidden = data.accounts.length === 0;
      if (data.accounts.length === 0) {
        showInfo(status, "You own no account yet; create one under Accounts.");
      }
    } catch (error) {
      showError(status, `Loading accounts failed: ${(error as Error).message}`);
    }
  }

  async function mutate(label: string, query: string, variables: Record<string, unknown>) {
    try {
      await request(session.token, query, variables);
      showInfo(status, `${label}: done.`);
      restart();
    } catch (error) {
      showError(status, `${label} failed: ${(error as Error).message}`);
    }
  }

  function createCard(name: string): QueueCard {
    const meter = h("meter", { min: 0, value: 0, "aria-label": `Size of ${name}` });
    const figures = h("p", { class: "figures" });
    const bindingList = h("ul", { class: "bindings" });
    const exchangeId = `bind-exchange-${cards.size}`;
    const patternId = `bind-pattern-${cards.size}`;
    const exchangeInput = h("input", { id: exchangeId, required: true, autocomplete: "off" });
    const patternInput = h("input", { id: patternId, value: "#", autocomplete: "off" });
    const bindForm = h(
      "form",
      { class: "row", "aria-label": `Bind ${name}` },
      h("div", { class: "field grow" }, h("label", { for: exchangeId }, "Exchange"), exchangeInput),
      h("div", { class: "field" }, h("label", { for: patternId }, "Pattern"), patternInput),
      h("button", { type: "submit" }, "Bind"),
    );
    bindForm.addEventListener("submit", (event) => {
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
    const purge = h("button", {
      type: "button",
      onclick: () => {
        if (!window.confirm(`Purge every ready message of ${name}?`)) return;
        void mutate(`Purging ${name}`,
          "mutation Purge($name: String!) { purgeQueue(name: $name) { name } }", { name });
      },
    }, "Purge");
    const remove = h("button", {
      type: "button",
      class: "danger",
      onclick: () => {
        if (!window.confirm(`Delete ${name} and the messages it holds?`)) return;
        void mutate(`Deleting ${name}`,
          "mutation Delete($name: String!) { deleteQueue(name: $name) }", { name });
      },
    }, "Delete");
    const element = h(
      "article",
      { class: "card queue", "data-queue": name },
      h("h3", {}, name),
      meter,
      figures,
      h("h4", {}, "Bindings"),
      bindingList,
      bindForm,
      h("div", { class: "row actions" }, purge, remove),
    );
    return {
      element,
      update: (queue) => {
        meter.max = Math.max(queue.policy.deleteSize, 1);
        meter.high = queue.policy.warnSize;
        meter.low = queue.policy.warnSize;
        meter.optimum = 0;
        meter.value = queue.messages ?? 0;
        figures.textContent =
          `size ${show(queue.messages)} (ready ${show(queue.messagesReady)}, ` +
          `unacked ${show(queue.messagesUnacknowledged)}), ` +
          `consumers ${show(queue.consumers)}; warn above ` +
          `${queue.policy.warnSize}, delete above ${queue.policy.deleteSize}` +
          (queue.warned ? " (warned)" : "");
        replace(
          bindingList,
          ...queue.bindings.map((binding) =>
            h("li", {}, h("code", {}, binding.exchange), " ",
              h("code", {}, binding.routingKeyPattern), " ",
              h("button", {
                type: "button",
                class: "small",
                "aria-label": `Unbind ${binding.exchange} ${binding.routingKeyPattern}`,
                onclick: () => void mutate(
                  `Unbinding ${name}`,
                  "mutation Unbind($input: BindingInput!) { deleteBinding(input: $input) }",
                  { input: { queue: name, ...binding } },
                ),
              }, "Unbind"))),
        );
        if (queue.bindings.length === 0) {
          bindingList.appendChild(h("li", { class: "muted" }, "No bindings."));
        }
      },
    };
  }

  function render(queues: QueueStats[]): void {
    const names = new Set(queues.map((queue) => queue.name));
    for (const [name, card] of cards) {
      if (!names.has(name)) {
        card.element.remove();
        cards.delete(name);
      }
    }
    // Cards are updated in place, so focus stays on the button in use.
    for (const queue of [...queues].sort((a, b) => a.name.localeCompare(b.name))) {
      let card = cards.get(queue.name);
      if (!card) {
        card = createCard(queue.name);
        cards.set(queue.name, card);
      }
      card.update(queue);
      list.appendChild(card.element);
    }
    if (queues.length === 0) {
      replace(list, h("p", { class: "muted" }, "No queues yet."));
    } else {
      list.querySelector(":scope > p.muted")?.remove();
    }
  }

  // The subscription sends the current statistics at once, so restarting
  // it after a mutation shows the change without waiting for the next poll.
  function restart(): void {
    stop?.();
    stop = subscribe<{ queueStats: QueueStats[] }>(
      session.socket,
      STATS_SUBSCRIPTION,
      {},
      {
        next: (data) => render(data.queueStats),
        error: (message) => showError(status, `Queue statistics stopped: ${message}`),
      },
    );
  }

  const element = h(
    "section",
    { class: "view queues", "aria-labelledby": "queues-title" },
    h("h2", { id: "queues-title" }, "My queues"),
    createForm,
    status,
    list,
  );
  let started = false;
  return {
    element,
    show: () => {
      void loadAccounts();
      if (!started) {
        started = true;
        restart();
      }
    },
    dispose: () => stop?.(),
  };
}
