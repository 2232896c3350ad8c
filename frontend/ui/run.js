// Run view, graph first: a failed run opens with a banner naming the
// step that failed and its error; the step graph coloured by status, a
// side panel for the selected step (when a waiting step resumes, an
// approval's decision, the output, config, every attempt, the order
// effect, the next retry) or, with none selected, the run's input and
// order; the timeline below. Live until the run ends.
//
// The view is drawn again on every refresh. What a person types (an
// approval's output or reason, a retry's input) lives in elements made
// once and moved into each new drawing, so a refresh never wipes it.
import { api, apiBase, canWrite, READ_ONLY } from "./api.js";
import { h, fill, badge, when, clock, ago, fullTime, fmtDuration, fmtMs, terminal, idLabel, statusBar, plural, keepFocus } from "./dom.js";
import { poll, showError } from "./app.js";
import { drawGraph } from "./graph.js";
import { drawTimeline, attemptsOf, genLabel } from "./timeline.js";
import { jsonBlock, parseExact, withExactData } from "./json.js";

const ORDER_ACTIONS = new Set(["validate_order", "charge_payment", "ship_order", "send_notification"]);

export function renderRun(main, id, params) {
  const title = h("h1", {}, "Run");
  const head = h("div", { class: "run-head" });
  const warn = h("div", { id: "stalled", class: "warning", role: "status", hidden: true });
  const failure = h("div", { id: "failure", class: "failure", role: "status", hidden: true });
  const actions = h("div", { class: "actions" });
  const graphBox = h("div", { class: "graph", id: "graph" });
  const timeline = h("div", { class: "timeline", id: "timeline" });
  const panel = h("aside", { class: "panel", id: "step-panel", "aria-label": "Details", tabindex: "-1" });
  main.replaceChildren(title, head, warn, failure, actions,
    h("div", { class: "run-layout" },
      h("section", { class: "run-main", "aria-label": "Steps" },
        h("h2", {}, "Steps"), graphBox,
        h("h2", {}, "Timeline"), timeline),
      panel));

  const graphState = { expanded: new Set(), selected: params.get("step") || null, focus: null };
  const tlState = { focus: null };
  const jsonState = new Map(); // which JSON values are open
  const decisions = new Map(); // an approval's decision form, by wait
  let writer = null; // whether the caller may write; null until known
  let last = null; // {run, order}
  let dlqAsked = false;

  // Retry with an optional new input.
  const retryText = h("textarea", { id: "retry-input", rows: "4", spellcheck: "false", "aria-describedby": "retry-input-hint retry-input-error" });
  const retryErr = h("p", { id: "retry-input-error", class: "error", role: "alert" });
  const retryButton = h("button", { type: "button", id: "retry", onclick: retry }, "Retry run");
  const retryBox = h("details", { class: "retry-input", id: "retry-input-box" },
    h("summary", {}, "Retry with a new input"),
    h("label", { for: "retry-input" }, "New input (JSON)"),
    h("p", { class: "muted hint", id: "retry-input-hint" }, "The steps that run again see it; completed steps keep what they did. Leave it empty to keep the current input."),
    retryText, retryErr);
  retryText.addEventListener("input", () => {
    retryButton.textContent = retryText.value.trim() ? "Retry run with new input" : "Retry run";
  });

  const select = (stepID, scroll) => {
    graphState.selected = stepID;
    const q = stepID ? `?step=${encodeURIComponent(stepID)}` : "";
    history.replaceState(null, "", `#/runs/${id}${q}`);
    if (last) draw(last.run, last.order);
    if (scroll && stepID && panel.getBoundingClientRect().top > window.innerHeight) panel.scrollIntoView({ block: "start" });
  };

  let stop = () => {};
  const start = () => {
    stop = poll(async () => {
      const { data, text } = await api.get("/runs/" + id);
      const run = withExactData(data, text);
      let order = null;
      if (run.order_id) order = (await api.get("/orders/" + run.order_id)).data;
      last = { run, order, dlq: last ? last.dlq : undefined };
      draw(run, order);
      if (run.stalled && !dlqAsked) {
        dlqAsked = true;
        api.get("/dlq").then(({ data }) => { last.dlq = data.depth; draw(last.run, last.order); }).catch(() => {});
      }
      return terminal(run.status);
    }, 1500);
  };

  function act(verb) {
    return async (ev) => {
      ev.target.disabled = true;
      try {
        await api.post(`/runs/${id}/${verb}`);
        stop();
        start();
      } catch (e) {
        showError(e.message);
        ev.target.disabled = false;
      }
    };
  }

  async function retry() {
    const text = retryText.value.trim();
    clearField(retryText, retryErr);
    if (text && !checkJSON(text, retryText, retryErr)) {
      retryBox.open = true;
      retryText.focus();
      return;
    }
    retryButton.disabled = true;
    try {
      await api.post(`/runs/${id}/retry`, text ? `{"input": ${text}}` : undefined);
      retryText.value = "";
      retryButton.textContent = "Retry run";
      retryBox.open = false;
      stop();
      start();
    } catch (e) {
      if (e.field && e.field.startsWith("input")) {
        retryBox.open = true;
        fieldError(retryText, retryErr, apiMessage(e), true);
      } else {
        showError(e.message);
      }
      retryButton.disabled = false;
    }
  }

  // decisionForm is the operator's form for a waiting approval: Complete
  // with an optional JSON output, Fail with a reason, and the callback URL
  // an outside system can use instead. One form per wait, kept across
  // refreshes.
  function decisionForm(run, s) {
    const key = waitKey(run, s);
    if (decisions.has(key)) return decisions.get(key);
    const path = `/runs/${id}/steps/${encodeURIComponent(s.step_id)}`;
    const output = h("textarea", { id: "decision-output", rows: "4", spellcheck: "false", "aria-describedby": "decision-output-hint decision-output-error" });
    const outputErr = h("p", { id: "decision-output-error", class: "error", role: "alert" });
    const reason = h("input", { id: "decision-reason", type: "text", maxlength: "1024", autocomplete: "off", "aria-describedby": "decision-reason-error" });
    const reasonErr = h("p", { id: "decision-reason-error", class: "error", role: "alert" });
    const buttons = [
      h("button", { type: "submit", class: "primary", id: "complete" }, "Complete step"),
      h("button", { type: "submit", id: "fail" }, "Fail step"),
    ];
    const decide = async (verb, body, field, err) => {
      for (const b of buttons) b.disabled = true;
      try {
        await api.post(`${path}/${verb}`, body);
        decisions.delete(key);
        stop();
        start();
      } catch (e) {
        fieldError(field, err, apiMessage(e), Boolean(e.field));
        for (const b of buttons) b.disabled = false;
      }
    };
    const complete = h("form", { id: "complete-form", class: "decide", novalidate: true },
      h("label", { for: "decision-output" }, "Output (JSON, optional)"),
      h("p", { class: "muted hint", id: "decision-output-hint" }, "Later steps read it as {{steps." + s.step_id + ".output}}."),
      output, outputErr, buttons[0]);
    complete.addEventListener("submit", (ev) => {
      ev.preventDefault();
      clearField(output, outputErr);
      clearField(reason, reasonErr);
      const text = output.value.trim();
      if (text && !checkJSON(text, output, outputErr)) return;
      decide("complete", text ? `{"output": ${text}}` : "{}", output, outputErr);
    });
    const fail = h("form", { id: "fail-form", class: "decide", novalidate: true },
      h("label", { for: "decision-reason" }, "Reason to fail it (required)"),
      reason, reasonErr, buttons[1]);
    fail.addEventListener("submit", (ev) => {
      ev.preventDefault();
      clearField(output, outputErr);
      clearField(reason, reasonErr);
      const why = reason.value.trim();
      if (!why) {
        fieldError(reason, reasonErr, "Say why the step fails: the reason becomes its error.", true);
        return;
      }
      decide("fail", { error: why }, reason, reasonErr);
    });
    let callback = null;
    if (s.callback_token) {
      const url = `${apiBase()}/callbacks/${encodeURIComponent(s.callback_token)}`;
      const box = h("input", { id: "callback-url", type: "text", readonly: true, value: url, spellcheck: "false", "aria-describedby": "callback-hint" });
      const note = h("span", { id: "copy-note", class: "muted", role: "status" });
      const copy = h("button", { type: "button", class: "small", id: "copy-callback" }, "Copy");
      copy.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(url);
          note.textContent = "Copied.";
        } catch {
          box.focus();
          box.select();
          note.textContent = "Selected: press Ctrl+C (⌘C on a Mac) to copy.";
        }
      });
      callback = [
        h("label", { for: "callback-url" }, "Callback URL"),
        h("p", { class: "muted hint", id: "callback-hint" },
          "An outside system can decide instead, with no token: POST {\"output\": …} to complete the step or {\"error\": \"…\"} to fail it. Whoever has the URL can decide, so give it only to that system."),
        h("div", { class: "copy-row" }, box, copy), note,
      ];
    }
    const form = h("section", { class: "decision", id: "decision", "aria-labelledby": "decision-title" },
      h("h3", { id: "decision-title" }, "Decision"), complete, fail, callback);
    decisions.set(key, form);
    return form;
  }

  function draw(run, order) {
    keepFocus(main, () => drawNow(run, order));
  }

  function drawNow(run, order) {
    const waiting = new Set(run.steps.filter(isDecidable).map((s) => waitKey(run, s)));
    for (const k of decisions.keys()) if (!waiting.has(k)) decisions.delete(k);
    title.replaceChildren(run.workflow_name, " ", h("span", { class: "title-id" }, "run ", idLabel(run.id)));
    const done = run.steps.filter((s) => s.status === "completed").length;
    head.replaceChildren(h("dl", { class: "meta" },
      h("div", {}, h("dt", {}, "Status"), h("dd", { id: "run-status" }, badge(run.status))),
      h("div", {}, h("dt", {}, "Progress"), h("dd", {}, statusBar(run.steps.map((s) => s.status), `${done} of ${run.steps.length} steps completed`), ` ${done}/${run.steps.length}`)),
      h("div", {}, h("dt", {}, "Started"), h("dd", {}, when(run.started_at || run.created_at))),
      h("div", {}, h("dt", {}, "Duration"), h("dd", {}, fmtDuration(run.started_at, terminal(run.status) ? run.completed_at : null))),
      run.order_id ? h("div", {}, h("dt", {}, "Order"), h("dd", {}, h("a", { href: `#/orders/${run.order_id}` }, idLabel(run.order_id)), " ", order ? badge(order.status) : "")) : null,
      h("div", {}, h("dt", {}, "Workflow"), h("dd", {}, h("a", { href: `#/workflows/${run.workflow_id}` }, idLabel(run.workflow_id)))),
      run.retries ? h("div", {}, h("dt", {}, "Retried"), h("dd", {}, `${run.retries}×, last `, when(run.retried_at))) : null,
      run.expires_at ? h("div", {}, h("dt", {}, "Kept until"), h("dd", { id: "run-expires" }, when(run.expires_at))) : null));
    drawWarning(run);
    drawFailure(run);
    drawActions(run);
    drawGraph(graphBox, run.steps.map((s) => ({ id: s.step_id, deps: s.depends_on, status: s.status, detail: nodeDetail(s) })),
      graphState, (stepID) => select(stepID === graphState.selected ? null : stepID, true), "Step graph: select a step for its details");
    drawTimeline(timeline, run, tlState, (stepID) => select(stepID, true));
    const step = run.steps.find((s) => s.step_id === graphState.selected);
    let decision = null;
    if (step && isDecidable(step)) {
      if (writer) decision = decisionForm(run, step);
      else if (writer === false) decision = h("p", { class: "muted readonly", id: "decision-readonly" }, "An operator can complete or fail this step here; your token is a reader token.");
    }
    const ui = { jsonState, decision };
    fill(panel, step ? stepPanel(run, step, order, () => select(null), ui) : runPanel(run, order, ui));
  }

  // drawFailure names, on a failed run, the step that failed and its
  // error.
  function drawFailure(run) {
    failure.hidden = run.status !== "failed";
    if (failure.hidden) return;
    const failed = run.steps.filter((s) => s.status === "failed");
    const first = failed.find((s) => s.error_message) || failed[0];
    if (!first) {
      fill(failure, h("strong", {}, "✗ This run failed."), " No step reports an error: see the timeline for the attempts.");
      return;
    }
    const lastTry = first.attempts[first.attempts.length - 1];
    const msg = first.error_message || (lastTry && lastTry.error) || "";
    const others = failed.filter((s) => s !== first).map((s) => s.step_id);
    fill(failure,
      h("strong", {}, "✗ Step ", h("span", { class: "step-name", id: "failed-step" }, first.step_id), " failed"),
      first.retry_count ? ` after ${plural(first.retry_count + 1, "attempt")}` : "",
      msg ? [": ", h("span", { class: "failure-error", id: "failed-error" }, msg)] : ".",
      others.length ? ` Also failed: ${others.join(", ")}.` : "",
      graphState.selected === first.step_id ? null
        : [" ", h("button", { type: "button", class: "small", id: "show-failed", onclick: () => { select(first.step_id, true); panel.focus(); } }, "Show the step")]);
  }

  function drawWarning(run) {
    warn.hidden = !run.stalled;
    if (!run.stalled) return;
    const dlq = last && last.dlq !== undefined
      ? [" The dead-letter queue holds ", plural(last.dlq, "message"), last.dlq ? ": redrive them from the runs page." : "."]
      : [];
    warn.replaceChildren(h("strong", {}, "⚠ No progress since ", when(run.progress_at), "."),
      " That is longer than its longest step plus the lease margin and the sweeper's grace, so recovery should have moved it by now. Check the step runner's logs and the dead-letter queue.", ...dlq);
  }

  function drawActions(run) {
    if (writer === null) return;
    if (!writer) {
      actions.replaceChildren(h("p", { class: "muted readonly", id: "readonly" }, READ_ONLY));
      return;
    }
    const retryable = run.status === "failed" || run.status === "cancelled";
    retryButton.disabled = !retryable;
    fill(actions,
      h("button", { type: "button", id: "cancel", disabled: terminal(run.status), onclick: act("cancel") }, "Cancel run"),
      retryButton, retryable ? retryBox : null);
  }

  canWrite().catch(() => false).then((w) => {
    writer = w;
    if (last) draw(last.run, last.order);
  });
  start();
  return () => stop();
}

// isDecidable: an approval waiting for a decision.
const isDecidable = (s) => s.type === "approval" && s.status === "waiting";

// waitKey names one wait of a step: a retry of the run or of the step
// starts another.
const waitKey = (run, s) => `${s.step_id}#${run.generation || 0}#${s.retry_count}`;

// checkJSON tells whether text is JSON, and says why not under field.
function checkJSON(text, field, err) {
  try {
    JSON.parse(text);
    return true;
  } catch (e) {
    fieldError(field, err, `Not valid JSON: ${e.message}`, true);
    field.focus();
    return false;
  }
}

function fieldError(field, err, msg, invalid) {
  err.textContent = msg;
  if (invalid) field.setAttribute("aria-invalid", "true");
}

function clearField(field, err) {
  err.textContent = "";
  field.removeAttribute("aria-invalid");
}

// apiMessage is the API's message, with the field it names if the
// message does not.
function apiMessage(e) {
  return e.field && !e.message.includes(e.field) ? `${e.field}: ${e.message}` : e.message;
}

// at is a time of day, or a date and time if not today.
function at(t) {
  const d = new Date(t);
  const today = d.toDateString() === new Date().toDateString();
  return h("time", { datetime: d.toISOString(), title: fullTime(t) }, today ? clock(t) : fullTime(t));
}

// waitNote says when a waiting step resumes: a wait when its time comes,
// an approval when it is decided or times out.
function waitNote(s, now) {
  if (s.status !== "waiting") return null;
  const until = s.wait_until ? Date.parse(s.wait_until) : null;
  let body;
  if (s.type === "approval") {
    body = until === null
      ? ["Waits for a decision, with no timeout."]
      : ["Waits for a decision; it times out at ", at(until), ` (${ago(until, now)}) and then fails.`];
  } else {
    body = until === null ? ["Waiting."] : ["Waiting: resumes at ", at(until), ` (${ago(until, now)}).`];
  }
  return h("p", { class: "note wait-note", id: "wait-note" }, ...body);
}

// nodeDetail is a node's second line: how it went, in a few words.
function nodeDetail(s) {
  const tries = s.retry_count ? ` · retry ${s.retry_count}/${s.max_retries}` : "";
  switch (s.status) {
    case "running": return `running ${fmtDuration(s.attempt_started_at, null)}${tries}`;
    case "waiting": {
      const until = s.wait_until ? Date.parse(s.wait_until) : null;
      const due = until !== null && until <= Date.now();
      if (s.type === "approval") return until === null ? "waits for a decision" : due ? "times out now" : `times out ${ago(until)}`;
      return until === null ? "waiting" : due ? "resumes now" : `resumes ${ago(until)}`;
    }
    case "completed": {
      const a = s.attempts[s.attempts.length - 1];
      return `done in ${a ? fmtMs(Date.parse(a.ended_at) - Date.parse(a.started_at)) : "—"}${tries}`;
    }
    case "pending": return s.next_attempt_at ? `retry ${ago(s.next_attempt_at)}` : `pending${tries}`;
    default: return `${s.status}${tries}`;
  }
}

// inputView shows the run's input; after a retry with an input, each
// input with the generations that used it.
function inputView(run, state) {
  const list = run.inputs || (run.input !== null && run.input !== undefined ? [{ generation: 0, input: run.input }] : []);
  if (!list.length) return [h("p", { class: "muted", id: "run-input" }, "None: the run was started without an input.")];
  if (list.length === 1 && list[0].generation === 0) return [jsonBlock(list[0].input, { id: "run-input", key: "input:0", label: "JSON", state })];
  const entries = list[0].generation > 0 ? [{ generation: 0 }, ...list] : list;
  const current = run.generation || 0;
  const gens = (a, b) => (a >= b ? `Generation ${a}` : b === a + 1 ? `Generations ${a} and ${b}` : `Generations ${a}–${b}`);
  return [
    h("p", { class: "muted hint" }, "Generation 0 is the run as started; each retry starts the next. A step ran with the input of its generation."),
    h("ol", { class: "inputs", id: "run-inputs" }, entries.map((e, i) => {
      const to = i + 1 < entries.length ? entries[i + 1].generation - 1 : current;
      const latest = i === entries.length - 1;
      return h("li", { dataset: { generation: String(e.generation) }, class: latest ? "current" : null },
        h("p", { class: "input-gens" }, h("strong", {}, gens(e.generation, to)), latest ? " (current)" : "", e.set_at ? [" · given ", when(e.set_at)] : ""),
        "input" in e
          ? jsonBlock(e.input, { id: `run-input-${e.generation}`, key: `input:${e.generation}`, label: "JSON", state })
          : h("p", { class: "muted" }, "No input."));
    })),
  ];
}

function runPanel(run, order, ui) {
  const out = [h("h2", {}, "Input"), ...inputView(run, ui.jsonState), h("h2", {}, "Order")];
  if (!order) {
    out.push(h("p", { class: "muted" }, run.order_id ? "Loading…" : "This run has no order. Select a step in the graph for its details."));
    return out;
  }
  out.push(h("dl", { class: "meta" },
    h("div", {}, h("dt", {}, "Order"), h("dd", {}, h("a", { href: `#/orders/${order.id}` }, idLabel(order.id)))),
    h("div", {}, h("dt", {}, "Amount"), h("dd", {}, String(order.amount))),
    h("div", {}, h("dt", {}, "Status"), h("dd", { id: "order-status" }, badge(order.status)))),
  h("h3", {}, "History"),
  h("ol", { class: "history", id: "order-history" }, order.history.map((e) => h("li", {},
    h("strong", {}, e.event), " ", e.from ? `${e.from} → ${e.to}` : (e.to ? `→ ${e.to}` : ""),
    h("div", { class: "muted" }, when(e.at), e.step_id ? ` · step ${e.step_id}` : "", e.run_id && e.run_id !== run.id ? [" · ", h("a", { href: `#/runs/${e.run_id}` }, "another run")] : "")))),
  order.history_next ? h("p", {}, h("a", { href: `#/orders/${order.id}` }, "Older entries on the order's page")) : null,
  h("p", { class: "muted" }, "Select a step in the graph for its config, attempts and order effect."));
  return out;
}

// configRows lists what a step of its type is set to do.
function configRows(s) {
  const c = s.config || {};
  const row = (dt, dd, cls) => h("div", {}, h("dt", {}, dt), h("dd", cls ? { class: cls } : {}, dd));
  const secs = (v) => fmtMs(v * 1000);
  const rows = [row("Type", s.type || "task")];
  switch (s.type) {
    case "http":
      rows.push(row("Action", c.action || "— (no order action)"), row("Request", `${c.method || "POST"} ${c.url || "—"}`),
        row("Timeout", `${c.timeout_seconds || 10} s`));
      break;
    case "wait":
      if (c.action) rows.push(row("Action", c.action));
      rows.push(row("Waits", c.seconds ? secs(c.seconds) : "—"));
      break;
    case "approval":
      if (c.action) rows.push(row("Action", c.action));
      rows.push(row("Times out after", c.timeout_seconds ? secs(c.timeout_seconds) : "never: it waits for a decision"));
      break;
    default:
      rows.push(row("Action", c.action || "— (plain task)"), row("Duration", `${c.duration_seconds ?? "—"} s`),
        row("Fail probability", c.fail_probability === undefined ? "—" : `${Math.round(c.fail_probability * 1000) / 10} %`));
  }
  rows.push(row("Retries", `${s.retry_count}/${s.max_retries}`, "attempts"),
    row("Depends on", s.depends_on.length ? s.depends_on.join(", ") : "—"));
  return rows;
}

// outputView shows a step's output. Only http steps and approvals have
// one; for other types the section is left out unless an output is there.
function outputView(run, s, state) {
  const has = s.output !== null && s.output !== undefined;
  if (s.output_omitted) {
    // Left out of the run detail to keep it small: fetched on request.
    const slot = h("div", { id: "step-output" });
    const load = h("button", { type: "button", class: "secondary", id: "load-output" }, "Load the output");
    load.addEventListener("click", async () => {
      load.disabled = true;
      try {
        const { text } = await api.get(`/runs/${encodeURIComponent(run.id)}/steps/${encodeURIComponent(s.step_id)}/output`);
        fill(slot, jsonBlock(parseExact(text), { id: "step-output-json", key: `output:${s.step_id}`, label: "JSON", state }));
      } catch (e) {
        load.disabled = false;
        fill(slot, h("p", { class: "error", role: "alert" }, e.message), load);
      }
    });
    fill(slot, h("p", { class: "muted" }, "This output is large and was left out of the run's page."), load);
    return [h("h3", {}, "Output"), slot];
  }
  if (!has && s.type !== "http" && s.type !== "approval") return null;
  return [h("h3", {}, "Output"), has
    ? jsonBlock(s.output, { id: "step-output", key: `output:${s.step_id}`, label: "JSON", state })
    : h("p", { class: "muted", id: "step-output" }, s.status === "pending" || s.status === "running" || s.status === "waiting" ? "None yet." : "None.")];
}

function stepPanel(run, s, order, close, ui) {
  const c = s.config || {};
  const kind = s.type && s.type !== "task" ? `${s.type} step` : "task";
  const now = Date.now();
  const retried = run.retries > 0;
  const attempts = attemptsOf(s, now, run);
  const effects = order ? order.history.filter((e) => e.run_id === run.id && e.step_id === s.step_id) : [];
  const isOrderAction = ORDER_ACTIONS.has(c.action);
  let effect;
  if (!isOrderAction) effect = h("p", { class: "muted" }, c.action ? `"${c.action}" is not an order action: a plain ${kind}.` : `A plain ${kind}: it changes no order.`);
  else if (!run.order_id) effect = h("p", { class: "muted" }, `${c.action} acts on the run's order, and this run has none.`);
  else if (!effects.length) effect = h("p", { class: "muted" }, `${c.action}: no change to the order yet.`);
  else effect = h("ul", { class: "history" }, effects.map((e) => h("li", {}, h("strong", {}, e.event), " ", e.from ? `${e.from} → ${e.to}` : "", " ", when(e.at))));
  return [
    h("div", { class: "panel-head" },
      h("h2", { id: "panel-title" }, h("span", { class: "step-name" }, s.step_id), " ", badge(s.status)),
      h("button", { type: "button", class: "small", id: "close-step", onclick: close, "aria-label": "Close step details" }, "✕")),
    s.next_attempt_at && s.status === "pending"
      ? h("p", { class: "note", id: "next-attempt" }, `Attempt ${s.retry_count + 1} of ${s.max_retries + 1} is scheduled after a retry backoff: it starts by ${clock(s.next_attempt_at)} (${ago(s.next_attempt_at, now)}).`)
      : null,
    s.error_message ? h("p", { class: "error step-error" }, s.error_message) : null,
    waitNote(s, now),
    ui.decision,
    outputView(run, s, ui.jsonState),
    h("h3", {}, "Config"),
    h("dl", { class: "meta", id: "step-config" }, configRows(s)),
    h("h3", {}, "Attempts"),
    attempts.length
      ? h("ol", { class: "attempt-list", id: "step-attempts" }, attempts.map((a) => h("li", { dataset: { attempt: String(a.n) }, class: a.earlier ? "earlier" : null },
        h("span", { class: "a-head" }, h("strong", {}, `#${a.n}`), " ",
          h("time", { datetime: new Date(a.start).toISOString(), title: fullTime(a.start) }, clock(a.start)),
          a.state === "running" || a.state === "waiting" ? " → now" : [" → ", h("time", { datetime: new Date(a.end).toISOString(), title: fullTime(a.end) }, clock(a.end))],
          ` · ${fmtMs(a.end - a.start)}`),
        retried ? h("span", { class: "a-gen muted" }, genLabel(a)) : null,
        h("span", { class: `a-result ${a.state}` }, a.error || a.state))))
      : h("p", { class: "muted" }, "Not started yet."),
    h("h3", {}, "Order effect"), effect,
  ];
}
