// Sign-in: paste an API token; it is checked against the API and kept
// for this browser session only.
import { tryToken, signIn } from "./api.js";
import { h } from "./dom.js";
import { showError } from "./app.js";

export function renderSignIn(main) {
  showError("");
  const input = h("input", { id: "token", type: "password", autocomplete: "off", size: 60, "aria-describedby": "token-error", required: true });
  const err = h("p", { id: "token-error", class: "error", role: "alert" });
  const form = h("form", { id: "signin" },
    h("h1", {}, "Sign in"),
    h("p", {}, "Paste a Stepflow API token. ", h("span", { class: "muted" }, "stepflow dev prints one when it starts; it is kept only until you close the browser.")),
    h("label", { for: "token" }, "API token"), input, err,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    input.removeAttribute("aria-invalid");
    const t = input.value.trim();
    try {
      await tryToken(t);
      signIn(t);
      location.hash = "#/";
    } catch (e) {
      err.textContent = `That token was not accepted: ${e.message}`;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  });
  main.replaceChildren(form);
  input.focus();
}
