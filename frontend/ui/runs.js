// The runs list: newest first, filters, paging through Link headers,
// counts by status, the dead-letter queue, and runs that stopped moving.
// Each refresh is three requests: GET /runs (with each run's progress and
// order status), GET /runs/stats and GET /dlq.
import { api, canWrite } from "./api.js";
import { h, badge, when, fmtDuration, fmtMs, terminal, idLabel, statusBar, plural, keepFocus } from "./dom.js";
import { poll } from "./app.js";

const PAGE = 10;
const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];
let noDLQ = false; // the API has no dead-letter queue: stop asking

export function renderRuns(main, params) {
  const status = params.get("status") || "";
  const workflow = params.get("workflow_id") || "";
  const cursors = (params.get("pages") || "").split(",").filter(Boolean); // cursors of the pages before
  const cursor = params.get("cursor") || "";

  const go = (next) => {
    const p = new URLSearchParams();
    if (next.status) p.set("status", next.status);
    if (next.workflow) p.set("workflow_id", next.workflow);
    if (next.cursor) p.set("cursor", next.cursor);
    if (next.pages && next.pages.length) p.set("pages", next.pages.join(","));
    location.hash = "#/?" + p.toString();
  };

  const statusSel = h("select", { id: "f-status", onchange: () => go({ status: statusSel.value, workflow }) },
    h("option", { value: "" }, "any"), STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)));
  const wfSel = h("select", { id: "f-workflow", onchange: () => go({ status, workflow: wfSel.value }) },
    h("option", { value: "" }, "any"));
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 6, class: "muted" }, "Loading…")));
  const prev = h("button", { type: "button", disabled: cursors.length === 0 && !cursor, onclick: () => {
    const pages = cursors.slice();
    const back = pages.pop() || "";
    go({ status, workflow, cursor: back === "-" ? "" : back, pages });
  } }, "← Newer");
  const next = h("button", { type: "button", id: "next-page", disabled: true }, "Older →");
  const pageInfo = h("span", { class: "muted" }, `Page ${cursors.length + (cursor ? 1 : 0) + 1}`);
  const counts = h("div", { class: "counts", id: "counts", "aria-live": "polite" });
  const dlq = h("div", { class: "dlq", id: "dlq", hidden: true });
  const stalled = h("div", { class: "warning", id: "stalled-runs", role: "status", hidden: true });

  main.replaceChildren(
    h("div", { class: "title-row" }, h("h1", {}, "Runs"), h("a", { href: "#/new", class: "button-link", id: "new-run-link", hidden: true }, "New run")),
    counts, dlq, stalled,
    h("div", { class: "row filters" },
      h("div", {}, h("label", { for: "f-status" }, "Status"), statusSel),
      h("div", {}, h("label", { for: "f-workflow" }, "Workflow"), wfSel)),
    h("table", { id: "runs", class: "runs cards" },
      h("caption", { class: "muted" }, "Newest first; refreshes every 3 seconds."),
      h("thead", {}, h("tr", {}, ["Workflow and run", "Status", "Progress", "Order", "Started", "Duration"].map((c) => h("th", { scope: "col" }, c)))),
      body),
    h("div", { class: "pager" }, prev, pageInfo, next));

  canWrite().then((w) => { main.querySelector("#new-run-link").hidden = !w; }).catch(() => {});
  api.get("/workflows?limit=200").then(({ data }) => {
    for (const w of data) wfSel.append(h("option", { value: w.id, selected: w.id === workflow }, `${w.name} (${w.id.slice(-6)})`));
  }).catch(() => {});

  const q = new URLSearchParams({ limit: String(PAGE) });
  if (status) q.set("status", status);
  if (workflow) q.set("workflow_id", workflow);
  if (cursor) q.set("cursor", cursor);
  const statsQ = workflow ? `?workflow_id=${encodeURIComponent(workflow)}` : "";

  let redriveNote = "";
  const refreshDLQ = async () => {
    if (noDLQ) return;
    try {
      const { data } = await api.get("/dlq");
      await drawDLQ(data.depth);
    } catch (e) {
      if (e.status === 404) { noDLQ = true; dlq.hidden = true; return; }
      throw e;
    }
  };

  async function drawDLQ(depth) {
    dlq.hidden = false;
    dlq.classList.toggle("has-messages", depth > 0);
    const write = await canWrite().catch(() => false);
    keepFocus(dlq, () => drawDLQNow(depth, write));
  }

  function drawDLQNow(depth, write) {
    const button = write
      ? h("button", { type: "button", id: "redrive", disabled: depth === 0, onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          const { data } = await api.post("/redrive");
          redriveNote = `Moved ${plural(data.moved, "message")} back to the work queue.`;
        } catch (e) {
          redriveNote = `Redrive failed: ${e.message}`;
        }
        await refreshDLQ().catch(() => {});
      } }, "Redrive")
      : h("span", { class: "muted readonly" }, "Redrive needs an operator token.");
    dlq.replaceChildren(
      h("span", {}, h("strong", {}, "Dead-letter queue: "), h("span", { id: "dlq-depth" }, plural(depth, "message")),
        depth > 0 ? " — step messages that failed too often; redrive them once the cause is fixed." : " — nothing stuck."),
      button, ...(redriveNote ? [h("span", { class: "note", id: "redrive-note", role: "status" }, redriveNote)] : []));
  }

  return poll(async () => {
    const [{ data: runs, next: nextPath }, { data: stats }] = await Promise.all([
      api.get("/runs?" + q.toString()), api.get("/runs/stats" + statsQ), refreshDLQ()]);
    keepFocus(main, () => {
      drawCounts(counts, stats, workflow);
      const stuck = runs.filter((r) => r.stalled);
      stalled.hidden = !stuck.length;
      stalled.replaceChildren(h("strong", {}, `⚠ ${plural(stuck.length, "run")} on this page ${stuck.length === 1 ? "shows" : "show"} no progress`),
        " for longer than recovery should take. Open ", stuck.length === 1 ? "it" : "them", " for details.");
      body.replaceChildren(...(runs.length ? runs.map(row) :
        [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No runs yet."))]));
    });
    next.disabled = !nextPath;
    next.onclick = () => {
      const c = new URLSearchParams(nextPath.split("?")[1]).get("cursor");
      go({ status, workflow, cursor: c, pages: [...cursors, cursor || "-"] });
    };
    return false;
  }, 3000);
}

function drawCounts(box, s, workflow) {
  const link = (st) => {
    const p = new URLSearchParams({ status: st });
    if (workflow) p.set("workflow_id", workflow);
    return `#/?${p}`;
  };
  const pct = s.success_rate === null ? "—" : `${Math.round(s.success_rate * 1000) / 10} %`;
  box.replaceChildren(
    h("span", { class: "muted" }, `Last ${plural(s.window, "run")}${workflow ? " of this workflow" : ""}:`),
    ...STATUSES.map((st) => h("a", { class: `count c-${st}`, href: link(st), dataset: { status: st } },
      h("span", { class: "n" }, String(s.counts[st] || 0)), ` ${st}`)),
    h("span", { class: "count" }, "success ", h("span", { class: "n" }, pct)),
    h("span", { class: "count" }, "p50 ", h("span", { class: "n" }, fmtMs(s.duration_p50_ms))),
    h("span", { class: "count" }, "p95 ", h("span", { class: "n" }, fmtMs(s.duration_p95_ms))));
}

function row(r) {
  return h("tr", { dataset: { run: r.id } },
    h("td", { "data-label": "Run" },
      h("a", { href: `#/runs/${r.id}`, class: "wf-name" }, r.workflow_name), " ", idLabel(r.id)),
    h("td", { "data-label": "Status" }, badge(r.status), r.stalled ? h("span", { class: "stalled-flag", title: "No progress for longer than recovery should take" }, "⚠ stalled") : null),
    h("td", { "data-label": "Progress" }, statusBar(r.step_statuses, `${r.steps_completed} of ${r.step_count} steps completed`),
      h("span", { class: "progress-text" }, `${r.steps_completed}/${r.step_count}`)),
    h("td", { "data-label": "Order" }, r.order_status ? h("a", { href: `#/orders/${r.order_id}` }, badge(r.order_status)) : h("span", { class: "muted" }, "—")),
    h("td", { "data-label": "Started" }, when(r.started_at || r.created_at)),
    h("td", { "data-label": "Duration" }, r.started_at ? fmtDuration(r.started_at, terminal(r.status) ? r.completed_at : null) : "—"));
}
