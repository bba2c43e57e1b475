// The one-time display of a generated RabbitMQ password.
import { h, replace } from "../dom";

/**
 * Shows a password in box with Copy and Hide buttons, and moves focus to
 * Copy. The API returns each password once, so this is the only chance
 * to store it.
 */
export function showPassword(
  box: HTMLElement,
  username: string,
  password: string,
  notice?: string,
): void {
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
      box.hidden = true;
      replace(box);
    },
  }, "Hide");
  replace(
    box,
    h("p", {}, `Password of ${username}. It is shown this once; store it now.`),
    notice ? h("p", {}, notice) : null,
    h("div", { class: "row" }, output, copy, hide),
  );
  box.hidden = false;
  copy.focus();
}
