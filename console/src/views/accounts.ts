// The viewer's RabbitMQ accounts: create, owners, password rotation and
// deletion. A new password is shown once, as the API returns it once.
import { request } from "../api";
import { h, replace, showError, showInfo, statusLine } from "../dom";
import type { Session, View } from "../view";

interface Account {
  username: string;
  owners: string[];
  createdAt: string;
  queues: { name: string }[];
}

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
    pattern: "[a-zA-Z][a-zA-Z0-9._\\-]*",
    title: "A letter, then letters, digits, dots, underscores or hyphens.",
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
      showPassword(account.username, password);
      usernameInput.value = "";
      ownersInput.value = "";
      showInfo(status, `Created account ${account.username}.`);
      await load();
    } catch (error) {
      showError(status, `Creating the account failed: ${(error as Error).message}`);
    }
  });

  function showPassword(username: string, password: string, notice?: string): void {
    const output = h("output", { id: "new-password", class: "password" }, password);
    const copy = h("button", { type: "button" }, "Copy");
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(password);
        copy.textContent = "Copied";
      } catch {
        // Without clipboard access, select the text so Ctrl+C copies it.
        const range = document.createRange();
        range.selectNodeContents(output);
        const selection = window.getSelection();
        selection?.removeAllRanges();
        selection?.addRange(range);
        copy.textContent = "Selected; press Ctrl+C";
      }
    });
    const hide = h("button", {
      type: "button",
      onclick: () => {
        secretBox.hidden = true;
        replace(secretBox);
      },
    }, "Hide");
    replace(
      secretBox,
      h("p", {}, `Password of ${username}. It is shown this once; store it now.`),
      notice ? h("p", {}, notice) : null,
      h("div", { class: "row" }, output, copy, hide),
    );
    secretBox.hidden = false;
    copy.focus();
  }

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

  function accountCard(account: Account): HTMLElement {
    const name = account.username;
    const ownerInputId = `owner-${name}`;
    const ownerInput = h("input", { id: ownerInputId, type: "email", required: true });
    const addOwner = h(
      "form",
      { class: "row", "aria-label": `Add owner to ${name}` },
      h("div", { class: "field grow" }, h("label", { for: ownerInputId }, "New owner's e-mail"), ownerInput),
      h("button", { type: "submit" }, "Add owner"),
    );
    addOwner.addEventListener("submit", (event) => {
      event.preventDefault();
      void mutate(`Adding an owner to ${name}`,
        `mutation AddOwner($username: String!, $email: String!) {
           addAccountOwner(username: $username, email: $email) { username } }`,
        { username: name, email: ownerInput.value.trim() });
    });
    return h(
      "article",
      { class: "card account", "data-account": name },
      h("h3", {}, name),
      h("p", { class: "muted" },
        `Created ${new Date(account.createdAt).toLocaleString()}; ` +
          `${account.queues.length} queue(s).`),
      h("h4", {}, "Owners"),
      h("ul", {}, ...account.owners.map((email) =>
        h("li", {}, email, " ", h("button", {
          type: "button",
          class: "small",
          "aria-label": `Remove owner ${email} from ${name}`,
          onclick: () => {
            if (!window.confirm(`Remove ${email} as an owner of ${name}?`)) return;
            void mutate(`Removing ${email}`,
              `mutation RemoveOwner($username: String!, $email: String!) {
                 removeAccountOwner(username: $username, email: $email) { username } }`,
              { username: name, email });
          },
        }, "Remove")))),
      addOwner,
      h("div", { class: "row actions" },
        h("button", {
          type: "button",
          onclick: async () => {
            if (!window.confirm(`Give ${name} a new password? Clients using the old one must change.`)) return;
            const data = await mutate(`Rotating the password of ${name}`,
              `mutation Rotate($username: String!) {
                 rotateAccountPassword(username: $username) { password notice } }`,
              { username: name });
            if (data) {
              showPassword(name, data.rotateAccountPassword.password,
                data.rotateAccountPassword.notice);
            }
          },
        }, "Rotate password"),
        h("button", {
          type: "button",
          class: "danger",
          onclick: () => {
            if (!window.confirm(`Delete account ${name}, its RabbitMQ user and all its queues?`)) return;
            void mutate(`Deleting ${name}`,
              "mutation DeleteAccount($username: String!) { deleteAccount(username: $username) }",
              { username: name });
          },
        }, "Delete account")),
    );
  }

  async function load(): Promise<void> {
    try {
      const data = await request<{ accounts: Account[] }>(session.token, ACCOUNTS_QUERY);
      replace(list, ...data.accounts.map(accountCard));
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
