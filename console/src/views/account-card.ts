// One account in the Accounts view: owners, new owner, password rotation
// and deletion, each destructive action after a confirmation.
import { h } from "../dom";
import { showPassword } from "./password-box";

/** An account as the Accounts view queries it. */
export interface Account {
  username: string;
  owners: string[];
  createdAt: string;
  queues: { name: string }[];
}

export interface AccountActions {
  /** Runs a mutation, reports it and reloads; returns its data or null. */
  mutate: (
    label: string,
    query: string,
    variables: Record<string, unknown>,
  ) => Promise<Record<string, any> | null>;
  /** Element that shows a rotated password. */
  passwordBox: HTMLElement;
}

/** Builds the card of one account with its owner and password actions. */
export function accountCard(account: Account, actions: AccountActions): HTMLElement {
  const { mutate, passwordBox } = actions;
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
            showPassword(passwordBox, name, data.rotateAccountPassword.password,
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
