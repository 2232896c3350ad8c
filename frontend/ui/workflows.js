// Workflows: each workflow's graph (coloured by its latest run), its
// success rate and p50/p95 duration, and a grid of its recent runs by
// steps coloured by status, newest on the right.
import { api } from "./api.js";
import { h, badge, when, fmtMs, idLabel, MARKS, plural, keepFocus } from "./dom.js";
import { poll } from "./app.js";
import { drawGraph, planOrder, roving } from "./graph.js";

const RECENT = 25;

export function renderWorkflows(main, id) {
  const list = h("nav", { class: "wf-list", "aria-label": "Workflows" }, h("p", { class: "muted" }, "Loading…"));
  const detail = h("section", { class: "wf-detail", id: "workflow", "aria-live": "off" });
  main.replaceChildren(h("h1", {}, "Workflows"), h("div", { class: "wf-layout" }, list, detail));
  let stop = () => {};
  let gone = false;
  api.get("/workflows?limit=100").then(({ data }) => {
    if (gone) return;
    if (!data.length) {
      list.replaceChildren(h("p", {}, "No workflows yet. ", h("a", { href: "#/new" }, "Start a run"), " to create one."));
      return;
    }
    const current = id || data[0].id;
    list.replaceChildren(h("ul", {}, data.map((w) => h("li", {},
      h("a", { href: `#/workflows/${w.id}`, "aria-current": w.id === current ? "page" : null }, w.name),
      " ", h("span", { class: "muted" }, when(w.created_at))))));
    stop = showWorkflow(detail, current);
  }).catch((e) => list.replaceChildren(h("p", { class: "error" }, e.message)));
  return () => { gone = true; stop(); };
}

function showWorkflow(box, id) {
  const head = h("div", {});
  const stats = h("div", { class: "counts", id: "wf-stats" });
  const graphBox = h("div", { class: "graph", id: "wf-graph" });
  const grid = h("div", { class: "grid-wrap", id: "wf-grid" });
  box.replaceChildren(head, stats, h("h2", {}, "Graph"),
    h("p", { class: "muted" }, "Coloured by the latest run."), graphBox,
    h("h2", {}, "Recent runs"), h("p", { class: "muted" }, "One column per run, oldest on the left; one row per step. Select a cell to open that step of that run."), grid);
  const graphState = { expanded: new Set(), selected: null, focus: null };
  let wf = null;
  let steps = null; // step ids in step_index order
  return poll(async () => {
    if (!wf) {
      wf = (await api.get(`/workflows/${id}`)).data;
      const order = planOrder(wf.definition.steps);
      steps = order.map((i) => wf.definition.steps[i]);
      head.replaceChildren(h("h2", { class: "wf-title" }, wf.name), h("p", { class: "muted" },
        idLabel(wf.id), ` · ${plural(steps.length, "step")} · created `, when(wf.created_at), " · ",
        h("a", { href: `#/?workflow_id=${wf.id}` }, "its runs")));
    }
    const [{ data: runs }, { data: s }] = await Promise.all([
      api.get(`/runs?workflow_id=${id}&limit=${RECENT}`), api.get(`/runs/stats?workflow_id=${id}`)]);
    const latest = runs[0];
    keepFocus(stats, () => stats.replaceChildren(
      h("span", { class: "count" }, "success rate ", h("span", { class: "n", id: "success-rate" }, s.success_rate === null ? "—" : `${Math.round(s.success_rate * 1000) / 10} %`)),
      h("span", { class: "count" }, "p50 ", h("span", { class: "n", id: "p50" }, fmtMs(s.duration_p50_ms))),
      h("span", { class: "count" }, "p95 ", h("span", { class: "n", id: "p95" }, fmtMs(s.duration_p95_ms))),
      h("span", { class: "muted" }, `over the last ${plural(s.window, "run")} (durations of completed runs)`)));
    drawGraph(graphBox, steps.map((st, i) => ({
      id: st.id, deps: st.depends_on, status: latest ? latest.step_statuses[i] : "pending",
      detail: st.config.action || `${st.config.duration_seconds} s task`,
    })), graphState, (stepID) => {
      if (latest) location.hash = `#/runs/${latest.id}?step=${encodeURIComponent(stepID)}`;
    }, "Workflow graph");
    drawGrid(grid, steps, runs.slice().reverse());
    return false;
  }, 5000);
}

// drawGrid lays out runs (oldest first) by steps. Cells are links; the
// arrow keys move between them (one tab stop).
function drawGrid(box, steps, runs) {
  if (!runs.length) {
    box.replaceChildren(h("p", { class: "muted" }, "No runs yet."));
    return;
  }
  const had = box.contains(document.activeElement) ? document.activeElement.dataset.cell : null;
  // As many runs as fit, newest kept.
  const fits = Math.max(4, Math.floor(((box.clientWidth || 600) - 130) / 22));
  const shown = runs.slice(-fits);
  const cells = [];
  const cell = (href, status, label, key) => {
    const a = h("a", { href, class: `cell s-${status}`, "aria-label": label, title: label, dataset: { cell: key, status } }, MARKS[status] || "");
    cells.push(a);
    return a;
  };
  const table = h("table", { class: "grid", id: "run-grid" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "grid-label" }, "Run"),
      shown.map((r) => h("th", { scope: "col" }, cell(`#/runs/${r.id}`, r.status, `run ${r.id}: ${r.status}`, `${r.id}`))))),
    h("tbody", {}, steps.map((st, i) => h("tr", { dataset: { step: st.id } },
      h("th", { scope: "row", class: "grid-label", title: st.id }, st.id),
      shown.map((r) => h("td", {}, cell(`#/runs/${r.id}?step=${encodeURIComponent(st.id)}`, r.step_statuses[i] || "pending",
        `step ${st.id} of run ${r.id}: ${r.step_statuses[i] || "pending"}`, `${r.id}/${st.id}`)))))));
  box.replaceChildren(table, h("p", { class: "legend muted" }, ["completed", "failed", "running", "waiting", "pending", "skipped", "cancelled"].map((s) => [badge(s), " "])));
  const stop = cells.find((c) => c.dataset.cell === had) || cells[cells.length - 1];
  for (const c of cells) c.tabIndex = c === stop ? 0 : -1;
  roving(table, cells, () => {});
  if (had) stop.focus();
}
