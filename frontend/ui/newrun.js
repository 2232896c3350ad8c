// New run: a JSON editor filled from an example or an uploaded file, an
// optional order, and Start (create the workflow, the order, the run).
import { api, ApiError } from "./api.js";
import { h } from "./dom.js";

export function renderNew(main) {
  const editor = h("textarea", { id: "definition", spellcheck: "false", "aria-describedby": "definition-error" });
  const editorErr = h("p", { id: "definition-error", class: "error", role: "alert" });
  const picker = h("select", { id: "example" }, h("option", { value: "" }, "choose an example…"));
  const upload = h("input", { id: "upload", type: "file", accept: ".json,application/json" });
  const amount = h("input", { id: "amount", type: "number", min: "0.01", step: "0.01", value: "19.99", "aria-describedby": "order-error" });
  const orderSel = h("select", { id: "order-id", "aria-describedby": "order-error" }, h("option", { value: "" }, "choose an order…"));
  const orderErr = h("p", { id: "order-error", class: "error", role: "alert" });
  const start = h("button", { type: "submit", class: "primary", id: "start" }, "Start");
  const mode = (v, label) => h("label", { class: "inline" },
    h("input", { type: "radio", name: "order-mode", value: v, checked: v === "none" }), label);

  const form = h("form", { id: "new-run", novalidate: true },
    h("h1", {}, "New run"),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "example" }, "Example"), picker),
      h("div", {}, h("label", { for: "upload" }, "Upload .json"), upload)),
    h("label", { for: "definition" }, "Workflow definition (JSON)"),
    editor, editorErr,
    h("fieldset", {},
      h("legend", {}, "Order"),
      mode("none", "No order"), mode("new", "New order"), mode("existing", "Existing order"),
      h("div", { class: "row" },
        h("div", {}, h("label", { for: "amount" }, "Amount of the new order"), amount),
        h("div", {}, h("label", { for: "order-id" }, "Existing order"), orderSel)),
      orderErr),
    start);
  main.replaceChildren(form);

  // The examples sit next to the page (on S3 with the dashboard), not on
  // the API.
  fetch("examples/index.json").then((res) => res.json()).then((names) => {
    for (const name of names) picker.append(h("option", { value: name }, name.replace(/\.json$/, "")));
  }).catch(() => {});
  api.get("/orders?limit=50").then(({ data }) => {
    for (const o of data) orderSel.append(h("option", { value: o.id }, `${o.id} · ${o.amount} · ${o.status}`));
  }).catch(() => {});

  const setEditor = (text) => {
    try {
      editor.value = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      editor.value = text;
    }
    clearErrors();
  };
  picker.addEventListener("change", async () => {
    if (!picker.value) return;
    try {
      const res = await fetch("examples/" + picker.value);
      setEditor(await res.text());
    } catch {
      editorErr.textContent = "Could not load that example.";
    }
  });
  upload.addEventListener("change", () => {
    const file = upload.files[0];
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => setEditor(String(reader.result));
    reader.onerror = () => { editorErr.textContent = "Could not read that file."; };
    reader.readAsText(file);
  });

  function clearErrors() {
    editorErr.textContent = "";
    orderErr.textContent = "";
    for (const el of [editor, amount, orderSel]) el.removeAttribute("aria-invalid");
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors();
    const orderMode = form.querySelector("input[name=order-mode]:checked").value;
    if (orderMode === "existing" && !orderSel.value) {
      orderErr.textContent = "Choose an order, or pick another option.";
      orderSel.setAttribute("aria-invalid", "true");
      return;
    }
    start.disabled = true;
    let stage = "workflow";
    try {
      const { data: wf } = await api.post("/workflows", editor.value);
      let orderID = null;
      if (orderMode === "new") {
        stage = "order";
        const { data: o } = await api.post("/orders", `{"amount": ${amount.value || "null"}}`);
        orderID = o.id;
      } else if (orderMode === "existing") {
        orderID = orderSel.value;
      }
      stage = "run";
      const { data: run } = await api.post(`/workflows/${wf.id}/runs`, orderID ? { order_id: orderID } : {});
      location.hash = `#/runs/${run.id}`;
    } catch (e) {
      const named = e instanceof ApiError && e.field && !e.message.includes(e.field);
      const msg = named ? `${e.field}: ${e.message}` : e.message;
      if (stage === "workflow") {
        editorErr.textContent = msg;
        editor.setAttribute("aria-invalid", "true");
        editor.focus();
      } else {
        orderErr.textContent = msg;
        (orderMode === "new" ? amount : orderSel).setAttribute("aria-invalid", "true");
      }
    } finally {
      start.disabled = false;
    }
  });
}
