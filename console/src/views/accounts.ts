// The viewer's RabbitMQ accounts: create, owners, password rotation and
// deletion. A new password is shown once, as the API returns it once.
import { request } from "../api";
import { h, replace, showError, showInfo, statusLine } from "../dom";
import type { Session, View } from "../view";
import { accountCard, type Account, type AccountActions } from "./account-card";
import { showPassword } from "./password-box";

const ACCOUNTS_QUERY = `query Accounts {
  accounts { username owners createdAt queues { name } } }`;

export function accountsView(session: Session): View {
  const status = statusLine();
  const secretBox = h("div", { class: "secret", role: "region", "aria-label": "New password" });
  secretBox.hidden = true;
  const list = h("div", { class: "account-list" });

  const usernameInput = h("input", {
    id: "account-username",
    name: "username",
    required: true,
    autocomplete: "off",
    pattern: "[a-z][a-z0-9._\\-]*",
    title:
      "A lower-case letter, then lower-case letters, digits, dots, " +
      "underscores or hyphens.",
  });
  const ownersInput = h("input", {
    id: "account-owners",
    name: "owners",
    autocomplete: "off",
    placeholder: "other@example.com, third@example.com",
  });
  const createForm = h(
    "form",
    { class: "row card", "aria-label": "Create account" },
    h("div", { class: "field" }, h("label", { for: "account-username" }, "Account name"), usernameInput),
    h("div", { class: "field grow" },
      h("label", { for: "account-owners" }, "Other owners (comma-separated, optional)"), ownersInput),
    h("button", { type: "submit" }, "Create account"),
  );
  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const owners = ownersInput.value.split(",").map((owner) => owner.trim()).filter(Boolean);
    try {
      const data = await request<{
        createAccount: { account: { username: string }; password: string };
      }>(
        session.token,
        `mutation CreateAccount($input: CreateAccountInput!) {
           createAccount(input: $input) { account { username } password } }`,
        { input: { username: usernameInput.value.trim(), owners } },
      );
      const { account, password } = data.createAccount;
      showPassword(secretBox, account.username, password);
      usernameInput.value = "";
      ownersInput.value = "";
      showInfo(status, `Created account ${account.username}.`);
      await load();
    } catch (error) {
      showError(status, `Creating the account failed: ${(error as Error).message}`);
    }
  });

  async function mutate(label: string, query: string, variables: Record<string, unknown>) {
    try {
      const data = await request<Record<string, any>>(session.token, query, variables);
      showInfo(status, `${label}: done.`);
      await load();
      return data;
    } catch (error) {
      showError(status, `${label} failed: ${(error as Error).message}`);
      return null;
    }
  }

  const actions: AccountActions = { mutate, passwordBox: secretBox };

  async function load(): Promise<void> {
    try {
      const data = await request<{ accounts: Account[] }>(session.token, ACCOUNTS_QUERY);
      replace(list, ...data.accounts.map((account) => accountCard(account, actions)));
      if (data.accounts.length === 0) {
        list.appendChild(h("p", { class: "muted" }, "You own no account yet."));
      }
    } catch (error) {
      showError(status, `Loading accounts failed: ${(error as Error).message}`);
    }
  }

  const element = h(
    "section",
    { class: "view accounts", "aria-labelledby": "accounts-title" },
    h("h2", { id: "accounts-title" }, "Accounts"),
    createForm,
    status,
    secretBox,
    list,
  );
  return { element, show: () => void load(), dispose: () => undefined };
}
