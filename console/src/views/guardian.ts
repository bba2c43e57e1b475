// Guardian events: the latest stored ones, then live ones from the
// guardianEvents subscription, optionally for one queue.
import { request, subscribe } from "../api";
import { formatTime, h, replace, showError, showInfo, statusLine } from "../dom";
import type { Session, View } from "../view";

/** Rows kept in the table, newest first. */
const MAX_ROWS = 500;

interface GuardianEvent {
  at: string;
  kind: string;
  queue: string;
  account: string;
  size: number | null;
  threshold: number | null;
  detail: string | null;
}

const EVENT_FIELDS = "at kind queue account size threshold detail";

export function guardianView(session: Session): View {
  const status = statusLine();
  const tableBody = h("tbody");
  let stop: (() => void) | null = null;

  const queueInput = h("input", {
    id: "guardian-queue",
    name: "queue",
    autocomplete: "off",
    placeholder: "queue/demo/completed",
  });
  const form = h(
    "form",
    { class: "row", "aria-label": "Filter guardian events" },
    h("div", { class: "field grow" },
      h("label", { for: "guardian-queue" }, "Queue (empty for all of yours)"), queueInput),
    h("button", { type: "submit" }, "Apply"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void start();
  });

  function eventRow(event: GuardianEvent): HTMLTableRowElement {
    return h(
      "tr",
      { class: `guardian-event kind-${event.kind.toLowerCase()}` },
      h("td", {}, formatTime(event.at)),
      h("td", {}, event.kind),
      h("td", {}, event.queue),
      h("td", {}, event.size === null ? "" : String(event.size)),
      h("td", {}, event.threshold === null ? "" : String(event.threshold)),
      h("td", {}, event.detail ?? ""),
    );
  }

  function addEvent(event: GuardianEvent): void {
    tableBody.insertBefore(eventRow(event), tableBody.firstChild);
    while (tableBody.childElementCount > MAX_ROWS) tableBody.lastChild?.remove();
  }

  async function start(): Promise<void> {
    stop?.();
    stop = null;
    const queue = queueInput.value.trim() || null;
    // The live stream starts before the history is read, so no event falls
    // between the two. NOTE: an event in both appears twice.
    const live: GuardianEvent[] = [];
    let historyLoaded = false;
    stop = subscribe<{ guardianEvents: GuardianEvent }>(
      session.socket,
      `subscription Guardian($queue: String) { guardianEvents(queue: $queue) { ${EVENT_FIELDS} } }`,
      { queue },
      {
        next: (data) => {
          if (historyLoaded) addEvent(data.guardianEvents);
          else live.push(data.guardianEvents);
        },
        error: (message) => showError(status, `Guardian events stopped: ${message}`),
      },
    );
    try {
      const data = await request<{ guardianEvents: GuardianEvent[] }>(
        session.token,
        `query GuardianEvents($queue: String) {
           guardianEvents(queue: $queue, limit: 50) { ${EVENT_FIELDS} } }`,
        { queue },
      );
      replace(tableBody, ...data.guardianEvents.map(eventRow));
      showInfo(status, queue ? `Watching ${queue}.` : "Watching all of your queues.");
    } catch (error) {
      replace(tableBody);
      showError(status, `Loading guardian events failed: ${(error as Error).message}`);
    }
    historyLoaded = true;
    for (const event of live) addEvent(event);
  }

  const element = h(
    "section",
    { class: "view guardian", "aria-labelledby": "guardian-title" },
    h("h2", { id: "guardian-title" }, "Guardian"),
    form,
    status,
    h("div", { class: "table-wrap" }, h(
      "table",
      { class: "events", "aria-label": "Guardian events, newest first" },
      h("thead", {}, h("tr", {},
        ...["Time", "Kind", "Queue", "Size", "Threshold", "Detail"].map((label) =>
          h("th", { scope: "col" }, label)))),
      tableBody,
    )),
  );
  let started = false;
  return {
    element,
    show: () => {
      if (!started) {
        started = true;
        void start();
      }
    },
    dispose: () => stop?.(),
  };
}
