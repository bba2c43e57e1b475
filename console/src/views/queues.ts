// The viewer's queues with live statistics from the queueStats
// subscription, and a form to create one.
import { request, subscribe } from "../api";
import { h, replace, showError, showInfo, statusLine } from "../dom";
import type { Session, View } from "../view";
import { createQueueCard, type QueueCard, type QueueStats } from "./queue-card";

const QUEUE_FIELDS = `
  name account messages messagesReady messagesUnacknowledged consumers warned
  policy { warnSize deleteSize }
  bindings { exchange routingKeyPattern }`;

const STATS_SUBSCRIPTION = `subscription QueueStats { queueStats { ${QUEUE_FIELDS} } }`;

export function queuesView(session: Session): View {
  const status = statusLine();
  const list = h("div", { class: "queue-list" });
  const cards = new Map<string, QueueCard>();
  let cardsCreated = 0;
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
        card = createQueueCard(queue.name, cardsCreated, mutate);
        cardsCreated += 1;
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
