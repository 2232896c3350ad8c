// DOM and formatting helpers. Text is always set as text, never parsed
// as HTML.

// h builds an element: h("a", {href: "#"}, "text", child...). Children
// may be nested in arrays; null, undefined and false are left out.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  el.append(...nodes(children));
  return el;
}

// fill replaces el's children with children, taken as h takes them.
export function fill(el, ...children) {
  el.replaceChildren(...nodes(children));
  return el;
}

function nodes(children) {
  return children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
}

// Marks that repeat a status's colour in shape, for readers who do not
// tell the colours apart.
export const MARKS = {
  pending: "○", running: "▶", waiting: "◷", completed: "✓", failed: "✗", skipped: "–", cancelled: "⊘",
  validated: "●", charged: "●", shipped: "✓",
};

export function badge(status, extra) {
  return h("span", { class: `badge s-${status}` }, `${MARKS[status] || ""} ${status}`.trim(), extra || null);
}

export const terminal = (s) => s === "completed" || s === "failed" || s === "cancelled";

// fullTime is the date and time a relative time stands for.
export function fullTime(t) {
  return new Date(t).toLocaleString([], {
    weekday: "short", year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
}

export function clock(t) {
  if (!t) return "—";
  return new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// ago says how long before now t was ("5 min ago"), or how long until
// it is ("in 12 s").
export function ago(t, now = Date.now()) {
  const ms = now - new Date(t).getTime();
  const s = Math.round(Math.abs(ms) / 1000);
  let text;
  if (s < 5) return ms >= 0 ? "just now" : "in a moment";
  if (s < 60) text = `${s} s`;
  else if (s < 3600) text = `${Math.floor(s / 60)} min`;
  else if (s < 86400) text = `${Math.floor(s / 3600)} h`;
  else text = `${Math.floor(s / 86400)} d`;
  return ms >= 0 ? `${text} ago` : `in ${text}`;
}

// when is a relative time that shows the full date and time on hover
// (title) and on keyboard focus (the stylesheet shows data-full).
export function when(t) {
  if (!t) return h("span", { class: "muted" }, "—");
  const full = fullTime(t);
  return h("time", { datetime: new Date(t).toISOString(), title: full, tabindex: "0", "data-full": full, "aria-label": full }, ago(t));
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function fmtDuration(start, end) {
  if (!start) return "—";
  return fmtMs((end ? new Date(end) : new Date()) - new Date(start));
}

// shortID is the distinguishing tail of an ID ("…X7Y2QK").
export function shortID(id) {
  return "…" + id.slice(-6);
}

// idLabel shows a short ID with the whole one on hover and for screen
// readers.
export function idLabel(id) {
  return h("code", { class: "id", title: id, "aria-label": id }, shortID(id));
}

// statusBar draws one segment per step, coloured by status.
export function statusBar(statuses, label) {
  return h("span", { class: statuses.length > 24 ? "sbar dense" : "sbar", role: "img", "aria-label": label },
    statuses.map((s) => h("span", { class: `s-${s}` })));
}

// countBy counts values.
export function countBy(values) {
  const m = new Map();
  for (const v of values) m.set(v, (m.get(v) || 0) + 1);
  return m;
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// keepFocus runs render, which replaces elements inside root, and puts
// the keyboard focus back on the element at the same place, so a refresh
// does not throw a keyboard user back to the top of the page. A field
// that render kept (the same element, moved) gets its caret back too.
export function keepFocus(root, render) {
  const a = document.activeElement;
  const path = [];
  if (a && a !== root && root.contains(a)) {
    for (let e = a; e !== root; e = e.parentElement) path.unshift([...e.parentElement.children].indexOf(e));
  }
  let caret = null;
  try {
    if (a && (a.tagName === "TEXTAREA" || a.tagName === "INPUT") && a.selectionStart !== null) {
      caret = [a.selectionStart, a.selectionEnd, a.selectionDirection, a.scrollTop];
    }
  } catch {
    caret = null; // inputs without a caret (number, checkbox) throw
  }
  render();
  const now = document.activeElement;
  if (!path.length || (now && now !== document.body && root.contains(now))) return;
  let e = root;
  for (const i of path) e = e && e.children[i];
  if (!e || e.tagName !== a.tagName || e.getAttribute("tabindex") === "-1") return;
  e.focus({ preventScroll: true });
  if (caret && e === a) {
    e.setSelectionRange(caret[0], caret[1], caret[2]);
    e.scrollTop = caret[3];
  }
}
