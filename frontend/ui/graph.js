// The step graph: a layered DAG drawn top to bottom. A step's layer is its
// longest path from a root; within a layer steps are ordered by where
// their parents sit, and a layer wider than the box wraps into rows
// inside a frame. A layer wider than two rows is collapsed into one group
// node (with its status counts) until the user expands it, and edges to or
// from a whole wrapped layer are drawn once to its frame, so a 98-step
// fan-out is three boxes and two arrows, not a black band.
//
// Nodes are buttons (click or Enter selects a step; arrow keys move
// between nodes, one tab stop for the whole graph). Labels are fitted to
// their boxes: a long step id is shortened in the middle, and the whole id
// is in the node's accessible name and title.
import { h, MARKS, countBy } from "./dom.js";

export const NODE_W = 152;
export const NODE_H = 48;
const GAP_X = 12;
const GAP_ROW = 10;
const GAP_LAYER = 40;
const PAD = 8; // frame padding around a wrapped layer
const SVG = "http://www.w3.org/2000/svg";

// planOrder returns the steps' indices in dependency order, as the API
// numbers them (a stable Kahn's algorithm: among steps whose
// dependencies are met, the one written first goes first), or null if a
// dependency is unknown or the steps form a cycle.
export function planOrder(steps) {
  const index = new Map(steps.map((s, i) => [s.id, i]));
  const indegree = steps.map(() => 0);
  const dependents = steps.map(() => []);
  for (let i = 0; i < steps.length; i++) {
    for (const d of steps[i].depends_on || []) {
      if (!index.has(d)) return null;
      indegree[i]++;
      dependents[index.get(d)].push(i);
    }
  }
  const ready = [];
  indegree.forEach((d, i) => { if (d === 0) ready.push(i); });
  const order = [];
  while (ready.length) {
    const n = ready.shift();
    order.push(n);
    for (const c of dependents[n]) {
      if (--indegree[c] === 0) {
        let i = ready.length;
        while (i > 0 && ready[i - 1] > c) i--;
        ready.splice(i, 0, c);
      }
    }
  }
  return order.length === steps.length ? order : null;
}

// layout places nodes ({id, deps}, every dependency before its
// dependents) in a box width wide.
export function layout(nodes, width, expanded) {
  const depth = new Map();
  for (const n of nodes) depth.set(n.id, n.deps.length ? Math.max(...n.deps.map((d) => depth.get(d) + 1)) : 0);
  const layers = [];
  for (const n of nodes) (layers[depth.get(n.id)] ||= []).push(n);
  const cols = Math.max(1, Math.floor((width - 2 * PAD + GAP_X) / (NODE_W + GAP_X)));
  const collapseAbove = Math.max(2 * cols, 8);
  const pos = new Map(); // node id -> {x, y, w, h}
  const blocks = []; // per layer: {layer, x, y, w, h, wrapped, collapsed, nodes}
  const order = new Map(); // node id -> order within its layer
  let y = PAD;
  layers.forEach((layer, d) => {
    // Barycenter of parents' horizontal centres; ties keep the plan order.
    const key = (n) => {
      const xs = n.deps.map((p) => pos.get(p)).filter(Boolean).map((p) => p.x + p.w / 2);
      return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
    };
    const sorted = d === 0 ? layer : layer.map((n, i) => [key(n), i, n]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((x) => x[2]);
    sorted.forEach((n, i) => order.set(n.id, i));
    if (sorted.length > collapseAbove && !expanded.has(d)) {
      const w = Math.min(width - 2 * PAD, 2 * NODE_W + GAP_X);
      const b = { layer: d, x: (width - w) / 2, y, w, h: NODE_H + 12, wrapped: false, collapsed: true, nodes: sorted };
      for (const n of sorted) pos.set(n.id, b);
      blocks.push(b);
      y += b.h + GAP_LAYER;
      return;
    }
    const rows = Math.ceil(sorted.length / cols);
    const wrapped = rows > 1;
    const top = wrapped ? y + PAD : y;
    for (let r = 0; r < rows; r++) {
      const row = sorted.slice(r * cols, (r + 1) * cols);
      const rw = row.length * NODE_W + (row.length - 1) * GAP_X;
      const x0 = (width - rw) / 2;
      row.forEach((n, i) => pos.set(n.id, { x: x0 + i * (NODE_W + GAP_X), y: top + r * (NODE_H + GAP_ROW), w: NODE_W, h: NODE_H }));
    }
    const bw = Math.min(sorted.length, cols) * NODE_W + (Math.min(sorted.length, cols) - 1) * GAP_X;
    const bh = rows * NODE_H + (rows - 1) * GAP_ROW;
    const b = wrapped
      ? { layer: d, x: (width - bw) / 2 - PAD, y, w: bw + 2 * PAD, h: bh + 2 * PAD, wrapped, collapsed: false, nodes: sorted }
      : { layer: d, x: (width - bw) / 2, y, w: bw, h: bh, wrapped, collapsed: false, nodes: sorted };
    blocks.push(b);
    y += b.h + GAP_LAYER;
  });
  return { pos, blocks, depth, width, height: Math.max(y - GAP_LAYER + PAD, NODE_H + 2 * PAD), cols };
}

// edges returns the arrows to draw: {from, to} rectangles, once per pair.
// A collapsed layer is one end for all its steps; a wrapped layer is one
// end when all its steps share the same parents (arrows in) or the same
// children (arrows out).
function edges(nodes, lay) {
  const byID = new Map(nodes.map((n) => [n.id, n]));
  const children = new Map(nodes.map((n) => [n.id, []]));
  for (const n of nodes) for (const d of n.deps) children.get(d).push(n.id);
  const blockOf = (id) => lay.blocks[lay.depth.get(id)];
  const same = (lists) => lists.every((l) => l.slice().sort().join("\n") === lists[0].slice().sort().join("\n"));
  const uniformIn = new Set(), uniformOut = new Set();
  for (const b of lay.blocks) {
    if (!b.wrapped) continue;
    if (same(b.nodes.map((n) => n.deps))) uniformIn.add(b);
    if (same(b.nodes.map((n) => children.get(n.id)))) uniformOut.add(b);
  }
  const out = new Map();
  for (const n of nodes) {
    for (const d of n.deps) {
      if (!byID.has(d)) continue;
      const pb = blockOf(d), cb = blockOf(n.id);
      const from = pb.collapsed || uniformOut.has(pb) ? pb : lay.pos.get(d);
      const to = cb.collapsed || uniformIn.has(cb) ? cb : lay.pos.get(n.id);
      const k = `${from.x},${from.y}>${to.x},${to.y}`;
      if (!out.has(k)) out.set(k, { from, to });
    }
  }
  return [...out.values()];
}

let canvas = null;

// fit shortens text in the middle until it fits width pixels in font.
export function fit(text, width, font) {
  canvas ||= document.createElement("canvas");
  const ctx = canvas.getContext("2d");
  ctx.font = font;
  const w = (s) => ctx.measureText(s).width;
  if (w(text) <= width) return text;
  let lo = 0, hi = text.length; // characters kept
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const head = Math.ceil(mid / 2);
    if (w(text.slice(0, head) + "…" + text.slice(text.length - (mid - head))) <= width) lo = mid; else hi = mid - 1;
  }
  const head = Math.ceil(lo / 2);
  return text.slice(0, head) + "…" + text.slice(text.length - (lo - head));
}

// drawGraph renders nodes ({id, deps, status, detail}) into box.
// state keeps what must survive a redraw: {expanded: Set of layers,
// selected: step id, focus: id of the node with the tab stop}.
// onSelect(id) is called when a step is chosen.
export function drawGraph(box, nodes, state, onSelect, label) {
  const hadFocus = box.contains(document.activeElement) ? document.activeElement.dataset.node : null;
  const width = Math.max(box.clientWidth || 800, NODE_W + 2 * PAD);
  const lay = layout(nodes, width, state.expanded);
  const canvasEl = h("div", { class: "graph-canvas", role: "group", "aria-label": label });
  canvasEl.style.width = `${lay.width}px`;
  canvasEl.style.height = `${lay.height}px`;

  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", lay.width);
  svg.setAttribute("height", lay.height);
  svg.setAttribute("aria-hidden", "true");
  svg.classList.add("graph-edges");
  const defs = document.createElementNS(SVG, "defs");
  const marker = document.createElementNS(SVG, "marker");
  for (const [k, v] of Object.entries({ id: "arrowhead", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" })) marker.setAttribute(k, v);
  const tip = document.createElementNS(SVG, "path");
  tip.setAttribute("d", "M0,0 L10,5 L0,10 z");
  marker.append(tip);
  defs.append(marker);
  svg.append(defs);
  for (const { from, to } of edges(nodes, lay)) {
    const x1 = from.x + from.w / 2, y1 = from.y + from.h, x2 = to.x + to.w / 2, y2 = to.y - 2;
    const my = (y1 + y2) / 2;
    const p = document.createElementNS(SVG, "path");
    p.setAttribute("d", `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`);
    p.setAttribute("marker-end", "url(#arrowhead)");
    svg.append(p);
  }
  canvasEl.append(svg);

  // The canvas goes in first: labels are fitted with the fonts the page
  // computes for them, which a detached element does not have.
  if (lay.blocks.some((b) => b.wrapped) || lay.blocks.some((b) => b.collapsed)) {
    const anyCollapsed = lay.blocks.some((b) => b.collapsed);
    box.replaceChildren(h("div", { class: "graph-tools" },
      h("button", { type: "button", class: "small", onclick: () => {
        if (anyCollapsed) lay.blocks.forEach((b) => state.expanded.add(b.layer)); else state.expanded.clear();
        drawGraph(box, nodes, state, onSelect, label);
      } }, anyCollapsed ? "Show every step" : "Collapse wide layers")), canvasEl);
  } else {
    box.replaceChildren(canvasEl);
  }

  let font = null;
  const items = [];
  const place = (el, r) => {
    el.style.left = `${r.x}px`;
    el.style.top = `${r.y}px`;
    el.style.width = `${r.w}px`;
    el.style.height = `${r.h}px`;
  };
  for (const b of lay.blocks) {
    if (b.collapsed) {
      const counts = countBy(b.nodes.map((n) => n.status));
      const summary = [...counts].map(([s, n]) => `${n} ${s}`).join(", ");
      const g = h("button", {
        type: "button", class: "gnode group", "data-node": `layer:${b.layer}`,
        "aria-label": `${b.nodes.length} parallel steps: ${summary}. Show them all.`, title: summary,
        onclick: () => { state.expanded.add(b.layer); state.focus = b.nodes[0].id; drawGraph(box, nodes, state, onSelect, label); box.querySelector(`[data-node="${CSS.escape(b.nodes[0].id)}"]`)?.focus(); },
      },
      h("span", { class: "g-title" }, `${b.nodes.length} parallel steps · show all`),
      h("span", { class: "sbar wide" }, b.nodes.map((n) => h("span", { class: `s-${n.status}` }))),
      h("span", { class: "g-counts" }, [...counts].map(([s, n]) => h("span", { class: `c-${s}` }, `${MARKS[s] || s} ${n}`))));
      place(g, b);
      if (b.nodes.some((n) => n.status === "failed")) g.classList.add("has-failed");
      canvasEl.append(g);
      items.push(g);
      continue;
    }
    if (b.wrapped) {
      const frame = h("div", { class: "gframe", "aria-hidden": "true" });
      place(frame, b);
      canvasEl.append(frame);
    }
    for (const n of b.nodes) {
      const r = lay.pos.get(n.id);
      const idText = h("span", { class: "n-id" });
      const detail = h("span", { class: "n-detail" });
      const el = h("button", {
        type: "button", class: `gnode s-${n.status}`, "data-node": n.id, "data-status": n.status,
        "aria-pressed": state.selected === n.id ? "true" : "false",
        "aria-label": `${n.id}: ${n.status}${n.detail ? ", " + n.detail : ""}`, title: `${n.id} · ${n.status}`,
        onclick: () => { state.focus = n.id; onSelect(n.id); },
      }, h("span", { class: "n-line" }, h("span", { class: "n-mark", "aria-hidden": "true" }, MARKS[n.status] || "○"), idText), detail);
      place(el, r);
      canvasEl.append(el);
      items.push(el);
      font ||= fonts(el);
      // Inner width: the box less padding, border and the status mark.
      idText.textContent = fit(n.id, NODE_W - 2 * 9 - 20 - 2, font.id);
      detail.textContent = fit(n.detail || n.status, NODE_W - 2 * 9 - 2, font.detail);
    }
  }
  // One tab stop: the selected node, else the one focused last, else the
  // first.
  const stop = items.find((el) => el.dataset.node === state.focus) || items.find((el) => el.dataset.node === state.selected) || items[0];
  for (const el of items) el.tabIndex = el === stop ? 0 : -1;
  roving(canvasEl, items, (el) => { state.focus = el.dataset.node; });
  if (hadFocus) box.querySelector(`[data-node="${CSS.escape(hadFocus)}"]`)?.focus();
  return lay;
}

function fonts(el) {
  const f = (sel) => {
    const cs = getComputedStyle(el.querySelector(sel));
    return `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
  };
  return { id: f(".n-id"), detail: f(".n-detail") };
}

// roving moves focus between items with the arrow keys, Home and End:
// left and right in reading order, up and down to the nearest item in the
// row above or below.
export function roving(container, items, onMove) {
  container.addEventListener("keydown", (ev) => {
    const i = items.indexOf(document.activeElement);
    if (i < 0) return;
    const cur = items[i].getBoundingClientRect();
    let next = null;
    switch (ev.key) {
      case "ArrowRight": next = items[i + 1]; break;
      case "ArrowLeft": next = items[i - 1]; break;
      case "Home": next = items[0]; break;
      case "End": next = items[items.length - 1]; break;
      case "ArrowDown":
      case "ArrowUp": {
        const down = ev.key === "ArrowDown";
        let best = null, bestScore = Infinity;
        for (const el of items) {
          const r = el.getBoundingClientRect();
          const dy = down ? r.top - cur.bottom : cur.top - r.bottom;
          if (dy < -1) continue;
          const score = dy * 1000 + Math.abs((r.left + r.right) / 2 - (cur.left + cur.right) / 2);
          if (el !== items[i] && score < bestScore) { best = el; bestScore = score; }
        }
        next = best;
        break;
      }
      default: return;
    }
    ev.preventDefault();
    if (!next) return;
    for (const el of items) el.tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
    onMove(next);
  });
}
