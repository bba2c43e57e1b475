// Entry point: sign-in, then one view per tab. A view is built the first
// time its tab opens and kept, so a running inspector survives tab changes.
import "./style.css";

import type { Client } from "graphql-ws";

import { ApiError, openSocket, request, UNAUTHENTICATED_EVENT } from "./api";
import { h, replace, showError, statusLine } from "./dom";
import { clearToken, loadToken, saveToken } from "./session";
import type { Session, View } from "./view";
import { accountsView } from "./views/accounts";
import { guardianView } from "./views/guardian";
import { inspectorView } from "./views/inspector";
import { queuesView } from "./views/queues";

interface Tab {
  id: string;
  label: string;
  create: (session: Session) => View;
}

const TABS: Tab[] = [
  { id: "inspector", label: "Inspector", create: inspectorView },
  { id: "queues", label: "My queues", create: queuesView },
  { id: "accounts", label: "Accounts", create: accountsView },
  { id: "guardian", label: "Guardian", create: guardianView },
];

const viewerBox = document.getElementById("viewer")!;
const tabBar = document.getElementById("tabs")!;
const main = document.getElementById("view")!;

let session: Session | null = null;
let socket: Client | null = null;
const views = new Map<string, View>();

function currentTabId(): string {
  const id = window.location.hash.slice(1);
  return TABS.some((tab) => tab.id === id) ? id : TABS[0].id;
}

function showSignIn(message?: string): void {
  tabBar.hidden = true;
  replace(viewerBox);
  const input = h("textarea", {
    id: "token",
    name: "token",
    rows: 4,
    required: true,
    autocomplete: "off",
    spellcheck: "false",
  });
  const status = statusLine();
  if (message) showError(status, message);
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h2", { id: "signin-title" }, "Sign in"),
    h("p", {}, "Paste a token, such as the output of ",
      h("code", {}, "npm run -s token -- --email you@example.com"),
      ". It is kept in this tab's session storage only."),
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = input.value.trim().replace(/^Bearer\s+/i, "");
    void signIn(token).then((failure) => {
      if (failure) showError(status, failure);
    });
  });
  replace(main, form);
  input.focus();
}

/** Signs in with the token; returns why that failed, or null. */
async function signIn(token: string): Promise<string | null> {
  try {
    const data = await request<{ viewer: { email: string; isAdmin: boolean } }>(
      token,
      "query Viewer { viewer { email isAdmin } }",
    );
    saveToken(token);
    startSession(token, data.viewer);
    return null;
  } catch (error) {
    // Keep a saved token when the gateway is only unreachable.
    if (error instanceof ApiError && error.code === "UNAUTHENTICATED") clearToken();
    return `Sign-in failed: ${(error as Error).message}`;
  }
}

function startSession(
  token: string,
  viewer: { email: string; isAdmin: boolean },
): void {
  socket = openSocket(token, (code, reason) => {
    if (code === 4403) signOut(`The gateway closed the socket: ${reason}`);
  });
  session = { token, viewer, socket };
  replace(
    viewerBox,
    h("span", { id: "viewer-email" }, viewer.email),
    viewer.isAdmin ? h("span", { class: "badge" }, "admin") : null,
    h("button", { type: "button", onclick: () => signOut() }, "Sign out"),
  );
  renderTabs();
  showTab();
}

function signOut(message?: string): void {
  for (const view of views.values()) view.dispose();
  views.clear();
  void socket?.dispose();
  socket = null;
  session = null;
  clearToken();
  showSignIn(message);
}

function renderTabs(): void {
  tabBar.hidden = false;
  replace(
    tabBar,
    h("ul", {}, ...TABS.map((tab) =>
      h("li", {}, h("a", { href: `#${tab.id}`, id: `tab-${tab.id}` }, tab.label)))),
  );
}

function showTab(): void {
  if (!session) return;
  const id = currentTabId();
  for (const tab of TABS) {
    document
      .getElementById(`tab-${tab.id}`)
      ?.setAttribute("aria-current", tab.id === id ? "page" : "false");
  }
  let view = views.get(id);
  if (!view) {
    view = TABS.find((tab) => tab.id === id)!.create(session);
    views.set(id, view);
  }
  for (const [viewId, other] of views) other.element.hidden = viewId !== id;
  if (view.element.parentNode !== main) {
    main.querySelector(".signin")?.remove();
    main.appendChild(view.element);
  }
  view.show?.();
}

window.addEventListener(UNAUTHENTICATED_EVENT, (event) => {
  if (session) {
    signOut(`The gateway rejected the token: ${(event as CustomEvent<string>).detail}`);
  }
});

window.addEventListener("hashchange", () => {
  showTab();
  main.focus();
});

const saved = loadToken();
if (saved) {
  void signIn(saved).then((failure) => {
    if (failure) showSignIn(failure);
  });
} else {
  showSignIn();
}
