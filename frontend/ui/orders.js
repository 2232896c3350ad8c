// Orders: a list with each order's status, and an order's page with its
// whole history (the first 100 entries come with the order; older pages
// load on request).
import { api } from "./api.js";
import { h, badge, when, idLabel, keepFocus } from "./dom.js";
import { poll } from "./app.js";

const FLOW = ["pending", "validated", "charged", "shipped"];

export function renderOrders(main, params) {
  const cursor = params.get("cursor") || "";
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 4, class: "muted" }, "Loading…")));
  const next = h("a", { class: "button-link", id: "orders-next", hidden: true }, "Older →");
  main.replaceChildren(h("h1", {}, "Orders"),
    h("table", { id: "orders", class: "cards" },
      h("caption", { class: "muted" }, "Newest first; refreshes every 5 seconds."),
      h("thead", {}, h("tr", {}, ["Order", "Amount", "Status", "Updated"].map((c) => h("th", { scope: "col" }, c)))),
      body),
    h("div", { class: "pager" }, cursor ? h("a", { href: "#/orders", class: "button-link" }, "← Newest") : null, next));
  return poll(async () => {
    const { data, next: nextPath } = await api.get("/orders?limit=20" + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""));
    keepFocus(body, () => body.replaceChildren(...(data.length ? data.map((o) => h("tr", { dataset: { order: o.id } },
      h("td", { "data-label": "Order" }, h("a", { href: `#/orders/${o.id}` }, idLabel(o.id))),
      h("td", { "data-label": "Amount" }, String(o.amount)),
      h("td", { "data-label": "Status" }, progress(o.status)),
      h("td", { "data-label": "Updated" }, when(o.updated_at)))) : [h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No orders yet."))])));
    next.hidden = !nextPath;
    if (nextPath) next.href = `#/orders?cursor=${encodeURIComponent(new URLSearchParams(nextPath.split("?")[1]).get("cursor"))}`;
    return false;
  }, 5000);
}

// progress shows where an order is on pending → validated → charged →
// shipped.
function progress(status) {
  const at = FLOW.indexOf(status);
  return h("span", { class: "flow", "aria-label": `status ${status}` }, badge(status),
    h("span", { class: "flow-steps", "aria-hidden": "true" }, FLOW.map((s, i) => h("span", { class: i <= at ? "on" : "" }))));
}

export function renderOrder(main, id) {
  const head = h("div", {});
  const list = h("ol", { class: "history", id: "order-history" });
  const more = h("button", { type: "button", id: "history-more", hidden: true }, "Show older entries");
  main.replaceChildren(h("h1", {}, "Order ", idLabel(id)), head, h("h2", {}, "History"),
    h("p", { class: "muted" }, "Oldest first: every status change and notification, with the run and step that made it."), list, more);
  let nextPage = null;
  let extra = []; // entries loaded past the first page
  const entry = (e) => h("li", {},
    h("strong", {}, e.event), " ", e.from ? `${e.from} → ${e.to}` : (e.to ? `→ ${e.to}` : ""),
    h("div", { class: "muted" }, when(e.at),
      e.run_id ? [" · ", h("a", { href: `#/runs/${e.run_id}${e.step_id ? `?step=${encodeURIComponent(e.step_id)}` : ""}` }, `run ${e.run_id.slice(-6)}${e.step_id ? `, step ${e.step_id}` : ""}`)] : ""));
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const { data, next } = await api.get(nextPage);
      extra = extra.concat(data);
      list.append(...data.map(entry));
      nextPage = next;
      more.hidden = !next;
    } finally {
      more.disabled = false;
    }
  });
  return poll(async () => {
    const { data: o } = await api.get("/orders/" + id);
    keepFocus(main, () => {
      head.replaceChildren(h("dl", { class: "meta" },
      h("div", {}, h("dt", {}, "Amount"), h("dd", {}, String(o.amount))),
      h("div", {}, h("dt", {}, "Status"), h("dd", { id: "order-status" }, progress(o.status))),
      h("div", {}, h("dt", {}, "Created"), h("dd", {}, when(o.created_at))),
      h("div", {}, h("dt", {}, "Updated"), h("dd", {}, when(o.updated_at)))));
      list.replaceChildren(...o.history.map(entry), ...extra.map(entry));
    });
    if (!extra.length) {
      nextPage = o.history_next ? `/orders/${id}/history?cursor=${encodeURIComponent(o.history_next)}` : null;
      more.hidden = !nextPage;
    }
    return o.status === "shipped";
  }, 3000);
}
