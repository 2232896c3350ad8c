// New run: a JSON editor filled from an example, an existing workflow or
// an uploaded file, with a live preview of its graph; an optional order;
// an optional JSON input for the run; and Start. The API answers an
// identical definition with the existing workflow, so starting the same
// definition twice makes no duplicate.
import { api, ApiError, canWrite, READ_ONLY } from "./api.js";
import { h, plural } from "./dom.js";
import { drawGraph, planOrder } from "./graph.js";

const ORDER_ACTIONS = ["validate_order", "charge_payment", "ship_order", "send_notification"];

export function renderNew(main) {
  const editor = h("textarea", { id: "definition", spellcheck: "false", "aria-describedby": "definition-error preview-status" });
  const editorErr = h("p", { id: "definition-error", class: "error", role: "alert" });
  const examples = h("optgroup", { label: "Examples" });
  const existing = h("optgroup", { label: "Existing workflows" });
  const picker = h("select", { id: "example" }, h("option", { value: "" }, "choose…"), examples, existing);
  const upload = h("input", { id: "upload", type: "file", accept: ".json,application/json" });
  const amount = h("input", { id: "amount", type: "number", min: "0.01", step: "0.01", value: "19.99", "aria-describedby": "order-error", disabled: true });
  const orderSel = h("select", { id: "order-id", "aria-describedby": "order-error", disabled: true }, h("option", { value: "" }, "choose an order…"));
  const orderErr = h("p", { id: "order-error", class: "error", role: "alert" });
  const orderHint = h("p", { id: "order-hint", class: "muted" });
  const input = h("textarea", { id: "run-input", class: "short", spellcheck: "false", "aria-describedby": "run-input-hint run-input-error" });
  const inputErr = h("p", { id: "run-input-error", class: "error", role: "alert" });
  const start = h("button", { type: "submit", class: "primary", id: "start" }, "Start");
  const startNote = h("p", { id: "start-note", class: "muted" });
  const previewStatus = h("p", { id: "preview-status", class: "muted", "aria-live": "polite" }, "Paste or pick a definition to see its graph.");
  const preview = h("div", { class: "graph", id: "preview" });
  const mode = (v, label) => h("label", { class: "inline" },
    h("input", { type: "radio", name: "order-mode", value: v, checked: v === "none" }), label);

  const form = h("form", { id: "new-run", novalidate: true },
    h("h1", {}, "New run"),
    h("div", { class: "new-layout" },
      h("div", {},
        h("div", { class: "row" },
          h("div", {}, h("label", { for: "example" }, "Start from"), picker),
          h("div", {}, h("label", { for: "upload" }, "Upload .json"), upload)),
        h("label", { for: "definition" }, "Workflow definition (JSON)"),
        editor, editorErr),
      h("div", {}, h("h2", {}, "Preview"), previewStatus, preview)),
    h("fieldset", { id: "order-fields" },
      h("legend", {}, "Order"),
      orderHint,
      mode("none", "No order"), mode("new", "New order"), mode("existing", "Existing order"),
      h("div", { class: "row" },
        h("div", {}, h("label", { for: "amount" }, "Amount of the new order"), amount),
        h("div", {}, h("label", { for: "order-id" }, "Existing order"), orderSel)),
      orderErr),
    h("fieldset", { id: "input-fields" },
      h("legend", {}, "Input"),
      h("label", { for: "run-input" }, "Run input (JSON, optional)"),
      h("p", { id: "run-input-hint", class: "muted hint" }, "Steps read it as {{input}} or {{input.field}}. Leave it empty for none."),
      input, inputErr),
    start, startNote);
  main.replaceChildren(form);

  canWrite().then((w) => {
    if (w) return;
    start.disabled = true;
    start.setAttribute("aria-describedby", "start-note");
    startNote.textContent = READ_ONLY;
  }).catch(() => {});

  // The examples sit next to the page (on S3 with the dashboard), not on
  // the API.
  fetch("examples/index.json").then((res) => res.json()).then((names) => {
    for (const name of names) examples.append(h("option", { value: "ex:" + name }, name.replace(/\.json$/, "")));
  }).catch(() => {});
  api.get("/workflows?limit=100").then(({ data }) => {
    for (const w of data) existing.append(h("option", { value: "wf:" + w.id }, `${w.name} (${w.id.slice(-6)})`));
  }).catch(() => {});
  api.get("/orders?limit=50").then(({ data }) => {
    for (const o of data) orderSel.append(h("option", { value: o.id }, `${o.id.slice(-6)} · ${o.amount} · ${o.status}`));
  }).catch(() => {});

  const previewState = { expanded: new Set(), selected: null, focus: null };
  let timer = null;
  const refreshPreview = () => {
    clearTimeout(timer);
    timer = setTimeout(drawPreview, 200);
  };
  function drawPreview() {
    const text = editor.value.trim();
    if (!text) {
      preview.replaceChildren();
      previewStatus.textContent = "Paste or pick a definition to see its graph.";
      orderHint.textContent = "";
      return;
    }
    let def;
    try {
      def = JSON.parse(text);
    } catch (e) {
      previewStatus.textContent = `Not valid JSON yet: ${e.message}`;
      return;
    }
    const steps = Array.isArray(def && def.steps) ? def.steps.filter((s) => s && typeof s.id === "string") : [];
    if (!steps.length) {
      previewStatus.textContent = "No steps with an id yet.";
      preview.replaceChildren();
      return;
    }
    const ids = new Set(steps.map((s) => s.id));
    const clean = steps.map((s) => ({ id: s.id, depends_on: (Array.isArray(s.depends_on) ? s.depends_on : []).filter((d) => ids.has(d) && d !== s.id) }));
    const order = planOrder(clean);
    if (!order || ids.size !== steps.length) {
      previewStatus.textContent = !order ? "The dependencies form a cycle." : "Two steps share an id.";
      return;
    }
    const actions = steps.map((s) => (s.config && s.config.action) || "");
    const lay = drawGraph(preview, order.map((i) => ({
      id: clean[i].id, deps: clean[i].depends_on, status: "pending",
      detail: actions[i] || `${(steps[i].config && steps[i].config.duration_seconds) ?? 1} s task`,
    })), previewState, () => {}, "Preview of the workflow graph");
    previewStatus.textContent = `${plural(steps.length, "step")} in ${plural(lay.blocks.length, "layer")}. The API checks the rest when you start.`;
    const usesOrder = actions.some((a) => ORDER_ACTIONS.includes(a));
    orderHint.textContent = usesOrder
      ? "This workflow has order actions: give it an order, or those steps fail."
      : "This workflow has no order actions, so an order would not change.";
  }
  editor.addEventListener("input", refreshPreview);

  const syncOrderFields = () => {
    const m = form.querySelector("input[name=order-mode]:checked").value;
    amount.disabled = m !== "new";
    orderSel.disabled = m !== "existing";
    orderErr.textContent = "";
  };
  for (const r of form.querySelectorAll("input[name=order-mode]")) r.addEventListener("change", syncOrderFields);

  const setEditor = (text) => {
    try {
      editor.value = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      editor.value = text;
    }
    clearErrors();
    drawPreview();
  };
  picker.addEventListener("change", async () => {
    const v = picker.value;
    if (!v) return;
    try {
      if (v.startsWith("ex:")) {
        const res = await fetch("examples/" + v.slice(3));
        setEditor(await res.text());
      } else {
        const { data } = await api.get("/workflows/" + v.slice(3));
        setEditor(JSON.stringify(data.definition));
      }
    } catch {
      editorErr.textContent = "Could not load that definition.";
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
    inputErr.textContent = "";
    for (const el of [editor, amount, orderSel, input]) el.removeAttribute("aria-invalid");
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
    const inputText = input.value.trim();
    if (inputText) {
      try {
        JSON.parse(inputText);
      } catch (e) {
        inputErr.textContent = `Not valid JSON: ${e.message}`;
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
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
      // The input goes as typed (it parsed above), so its numbers keep
      // their exact text.
      const body = [];
      if (orderID) body.push(`"order_id": ${JSON.stringify(orderID)}`);
      if (inputText) body.push(`"input": ${inputText}`);
      const { data: run } = await api.post(`/workflows/${wf.id}/runs`, `{${body.join(", ")}}`);
      location.hash = `#/runs/${run.id}`;
    } catch (e) {
      const named = e instanceof ApiError && e.field && !e.message.includes(e.field);
      const msg = named ? `${e.field}: ${e.message}` : e.message;
      if (stage === "run" && e.field && e.field.startsWith("input")) {
        inputErr.textContent = msg;
        input.setAttribute("aria-invalid", "true");
        input.focus();
      } else if (stage === "workflow") {
        editorErr.textContent = msg;
        editor.setAttribute("aria-invalid", "true");
        editor.focus();
      } else {
        orderErr.textContent = msg;
        (orderMode === "new" ? amount : orderSel).setAttribute("aria-invalid", "true");
      }
      start.disabled = false;
    }
  });
}
