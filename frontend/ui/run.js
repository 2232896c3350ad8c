// Run detail: live until the run is terminal. Steps, a timeline with one
// bar per attempt on a shared time axis, the DAG, the order's history, and
// Cancel / Retry.
import { api } from "./api.js";
import { h, badge, fmtTime, fmtDuration, terminal } from "./dom.js";
import { poll, showError } from "./app.js";

export function renderRun(main, id) {
  const head = h("div", {});
  const actions = h("div", { class: "actions" });
  const steps = h("div", { class: "table-wrap" });
  const timeline = h("div", { class: "timeline", id: "timeline", role: "img", "aria-label": "Timeline of step attempts" });
  const dag = h("div", { class: "dag", id: "dag" });
  const history = h("div", { id: "history" }, h("p", { class: "muted" }, "This run has no order."));
  main.replaceChildren(
    h("h1", {}, "Run ", h("code", {}, id)),
    head, actions,
    h("div", { class: "cols" },
      h("div", {}, h("h2", {}, "Steps"), steps, h("h2", {}, "Timeline"), timeline, h("h2", {}, "Dependencies"), dag),
      h("aside", { "aria-label": "Order" }, h("h2", {}, "Order"), history)));

  let stop = () => {};
  const start = () => {
    stop = poll(async () => {
      const { data: run } = await api.get("/runs/" + id);
      let order = null;
      if (run.order_id) order = (await api.get("/orders/" + run.order_id)).data;
      draw(run, order);
      return terminal(run.status);
    }, 1500);
  };

  function act(verb) {
    return async () => {
      try {
        await api.post(`/runs/${id}/${verb}`);
        stop();
        start();
      } catch (e) {
        showError(e.message);
      }
    };
  }

  function draw(run, order) {
    head.replaceChildren(h("dl", { class: "meta" },
      h("dt", {}, "Workflow"), h("dd", {}, run.workflow_name),
      h("dt", {}, "Status"), h("dd", { id: "run-status" }, badge(run.status)),
      h("dt", {}, "Started"), h("dd", {}, fmtTime(run.started_at)),
      h("dt", {}, "Duration"), h("dd", {}, fmtDuration(run.started_at, terminal(run.status) ? run.completed_at : null)),
      run.retries ? [h("dt", {}, "Retried"), h("dd", {}, `${run.retries}× (last ${fmtTime(run.retried_at)})`)] : []));
    actions.replaceChildren(
      h("button", { type: "button", id: "cancel", disabled: terminal(run.status), onclick: act("cancel") }, "Cancel run"),
      h("button", { type: "button", id: "retry", disabled: !(run.status === "failed" || run.status === "cancelled"), onclick: act("retry") }, "Retry run"));
    steps.replaceChildren(stepTable(run));
    timeline.replaceChildren(...timelineRows(run));
    dag.replaceChildren(dagSVG(run));
    if (order) history.replaceChildren(orderPanel(order));
  }

  start();
  return () => stop();
}

function stepTable(run) {
  return h("table", { id: "steps" },
    h("thead", {}, h("tr", {}, ["Step", "Status", "Retries", "Depends on", "Start", "End", "Error"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, run.steps.map((s) => h("tr", { dataset: { step: s.step_id } },
      h("td", {}, s.step_id),
      h("td", {}, badge(s.status)),
      h("td", { class: "attempts" }, `${s.retry_count}/${s.max_retries}`),
      h("td", {}, s.depends_on.length ? s.depends_on.join(", ") : "—"),
      h("td", {}, fmtTime(s.started_at)),
      h("td", {}, fmtTime(s.completed_at)),
      h("td", { class: "step-error" }, s.error_message || "")))));
}

// attemptsOf returns the step's attempts as {start, end, state}, including
// the one running now.
function attemptsOf(s, now) {
  const out = s.attempts.map((a) => ({ start: Date.parse(a.started_at), end: Date.parse(a.ended_at), state: a.error ? "failed" : "completed", error: a.error }));
  if (s.status === "running" && s.attempt_started_at) out.push({ start: Date.parse(s.attempt_started_at), end: now, state: "running" });
  return out;
}

function timelineRows(run) {
  const now = Date.now();
  const all = run.steps.map((s) => attemptsOf(s, now));
  const flat = all.flat();
  if (!flat.length) return [h("p", { class: "muted" }, "No attempt has started yet.")];
  const t0 = Math.min(...flat.map((a) => a.start));
  const t1 = Math.max(...flat.map((a) => a.end), t0 + 1);
  const pct = (t) => ((t - t0) / (t1 - t0)) * 100;
  const rows = run.steps.map((s, i) => h("div", { class: "tl-row" },
    h("span", { class: "tl-label" }, s.step_id),
    h("div", { class: "tl-track" }, all[i].map((a, n) => {
      const bar = h("span", {
        class: `tl-bar ${a.state}`,
        title: `${s.step_id} attempt ${n + 1}: ${a.state}${a.error ? " (" + a.error + ")" : ""}, ${fmtDuration(new Date(a.start), new Date(a.end))}`,
        dataset: { step: s.step_id, attempt: String(n + 1), start: String(a.start), end: String(a.end) },
      });
      bar.style.left = `${pct(a.start)}%`;
      bar.style.width = `${Math.max(pct(a.end) - pct(a.start), 0.5)}%`;
      return bar;
    }))));
  return [...rows, h("div", { class: "tl-axis" }, h("span", {}, "0 s"), h("span", {}, fmtDuration(new Date(t0), new Date(t1))))];
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

// dagSVG lays steps out in columns by depth (longest path from a root) and
// draws an arrow from each dependency to its dependent.
function dagSVG(run) {
  const byID = new Map(run.steps.map((s) => [s.step_id, s]));
  const depth = new Map();
  for (const s of run.steps) { // steps come in dependency order
    depth.set(s.step_id, s.depends_on.length ? Math.max(...s.depends_on.map((d) => depth.get(d) + 1)) : 0);
  }
  const cols = [];
  for (const s of run.steps) (cols[depth.get(s.step_id)] ||= []).push(s);
  const W = 120, H = 34, GX = 50, GY = 16;
  const pos = new Map();
  cols.forEach((col, x) => col.forEach((s, y) => pos.set(s.step_id, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) })));
  const width = 20 + cols.length * (W + GX) - GX;
  const height = 20 + Math.max(...cols.map((c) => c.length)) * (H + GY) - GY;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Step dependencies" });
  root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" },
    svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#57606a" }))));
  for (const s of run.steps) {
    for (const d of s.depends_on) {
      const a = pos.get(d), b = pos.get(s.step_id);
      if (a && b && byID.has(d)) root.append(svg("line", { x1: a.x + W, y1: a.y + H / 2, x2: b.x, y2: b.y + H / 2, "marker-end": "url(#arrow)" }));
    }
  }
  for (const s of run.steps) {
    const p = pos.get(s.step_id);
    const g = svg("g", { "data-step": s.step_id });
    g.append(svg("rect", { x: p.x, y: p.y, width: W, height: H, class: s.status }),
      svg("text", { x: p.x + 8, y: p.y + 21 }, `${s.step_id} · ${s.status}`));
    root.append(g);
  }
  return root;
}

function orderPanel(o) {
  return h("div", {},
    h("dl", { class: "meta" },
      h("dt", {}, "Order"), h("dd", {}, h("code", {}, o.id)),
      h("dt", {}, "Amount"), h("dd", {}, String(o.amount)),
      h("dt", {}, "Status"), h("dd", { id: "order-status" }, badge(o.status))),
    h("h3", {}, "History"),
    h("ol", { class: "history", id: "order-history" }, o.history.map((e) => h("li", {},
      h("strong", {}, e.event), " ", e.from ? `${e.from} → ${e.to}` : (e.to ? `→ ${e.to}` : ""),
      h("div", { class: "muted" }, fmtTime(e.at), e.step_id ? ` · step ${e.step_id}` : "")))));
}
