// The runs list: newest first, filters, paging through Link headers,
// refreshed every few seconds while the tab is visible.
import { api } from "./api.js";
import { h, badge, fmtTime, fmtDuration, terminal } from "./dom.js";
import { poll } from "./app.js";

const PAGE = 10;
const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];
const orderCache = new Map(); // order id -> order, kept once shipped

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
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 7, class: "muted" }, "Loading…")));
  const prev = h("button", { type: "button", disabled: cursors.length === 0 && !cursor, onclick: () => {
    const pages = cursors.slice();
    const back = pages.pop() || "";
    go({ status, workflow, cursor: back === "-" ? "" : back, pages });
  } }, "← Newer");
  const next = h("button", { type: "button", id: "next-page", disabled: true }, "Older →");
  const pageInfo = h("span", { class: "muted" }, `Page ${cursors.length + (cursor ? 1 : 0) + 1}`);

  main.replaceChildren(
    h("h1", {}, "Runs"),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "f-status" }, "Status"), statusSel),
      h("div", {}, h("label", { for: "f-workflow" }, "Workflow"), wfSel),
      h("div", {}, h("a", { href: "#/new" }, "Start a new run"))),
    h("div", { class: "table-wrap" }, h("table", { id: "runs" },
      h("caption", { class: "muted" }, "Newest first; refreshes every 3 seconds."),
      h("thead", {}, h("tr", {}, ["Run", "Workflow", "Status", "Progress", "Duration", "Order", "Started"].map((c) => h("th", { scope: "col" }, c)))),
      body)),
    h("div", { class: "pager" }, prev, pageInfo, next));

  api.get("/workflows?limit=200").then(({ data }) => {
    for (const w of data) wfSel.append(h("option", { value: w.id, selected: w.id === workflow }, `${w.name} (${w.id.slice(-6)})`));
  }).catch(() => {});

  const q = new URLSearchParams({ limit: String(PAGE) });
  if (status) q.set("status", status);
  if (workflow) q.set("workflow_id", workflow);
  if (cursor) q.set("cursor", cursor);

  return poll(async () => {
    const { data: runs, next: nextPath } = await api.get("/runs?" + q.toString());
    const details = await Promise.all(runs.map((r) => api.get("/runs/" + r.id).then((x) => x.data).catch(() => null)));
    const orders = await Promise.all(runs.map((r) => orderOf(r.order_id)));
    body.replaceChildren(...(runs.length ? runs.map((r, i) => row(r, details[i], orders[i])) :
      [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No runs yet."))]));
    next.disabled = !nextPath;
    next.onclick = () => {
      const c = new URLSearchParams(nextPath.split("?")[1]).get("cursor");
      go({ status, workflow, cursor: c, pages: [...cursors, cursor || "-"] });
    };
    return false;
  }, 3000);
}

async function orderOf(id) {
  if (!id) return null;
  if (orderCache.has(id)) return orderCache.get(id);
  try {
    const { data } = await api.get("/orders/" + id);
    if (data.status === "shipped") orderCache.set(id, data);
    return data;
  } catch {
    return null;
  }
}

function row(r, d, order) {
  const done = d ? d.steps.filter((s) => s.status === "completed").length : null;
  return h("tr", { dataset: { run: r.id } },
    h("td", {}, h("a", { href: `#/runs/${r.id}` }, r.id)),
    h("td", {}, r.workflow_name),
    h("td", {}, badge(r.status)),
    h("td", {}, done === null ? "—" : `${done}/${r.step_count} steps`),
    h("td", {}, r.started_at ? fmtDuration(r.started_at, terminal(r.status) ? r.completed_at : null) : "—"),
    h("td", {}, order ? badge(order.status) : "—"),
    h("td", {}, fmtTime(r.started_at || r.created_at)));
}
