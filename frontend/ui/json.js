// JSON data of a run (its inputs, its steps' outputs), shown as text: a
// <details> whose summary names the value's shape and size, around a
// <pre> of the indented JSON. Data is only ever set as text. A large
// value starts collapsed; a state map keeps what the user opened or
// closed across the view's refreshes.
import { h, plural } from "./dom.js";

// A value is large, and starts collapsed, past either bound.
const LARGE_CHARS = 600;
const LARGE_LINES = 16;

const isRaw = (v) => typeof JSON.isRawJSON === "function" && JSON.isRawJSON(v);

// parseExact parses JSON text, keeping a number's text wherever a
// JavaScript number would change it (1.0, 12345678901234567890), so that
// it prints as it was given. Browsers without JSON.rawJSON get plain
// numbers.
export function parseExact(text) {
  if (typeof JSON.rawJSON !== "function") return JSON.parse(text);
  return JSON.parse(text, (key, value, ctx) =>
    (typeof value === "number" && ctx && typeof ctx.source === "string" && ctx.source !== String(value)
      ? JSON.rawJSON(ctx.source) : value));
}

// withExactData replaces the run's inputs and its steps' outputs with
// their exact parse from the response text.
export function withExactData(run, text) {
  let exact;
  try {
    exact = parseExact(text);
  } catch {
    return run;
  }
  if (!exact || exact.id !== run.id) return run;
  run.input = exact.input;
  run.inputs = exact.inputs;
  (exact.steps || []).forEach((s, i) => {
    if (run.steps[i] && run.steps[i].step_id === s.step_id) run.steps[i].output = s.output;
  });
  return run;
}

// shape says what a value is: "object, 3 keys", "array, 5 items", "string".
export function shape(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return `array, ${plural(v.length, "item")}`;
  if (isRaw(v)) return "number";
  if (typeof v === "object") return `object, ${plural(Object.keys(v).length, "key")}`;
  return typeof v;
}

function bytes(n) {
  return n < 1024 ? plural(n, "byte") : `${(n / 1024).toFixed(1)} KiB`;
}

// jsonBlock shows value under label. key names it in state (a Map of
// key to open), so a refresh keeps it as the user left it; id is the
// element's id.
export function jsonBlock(value, { id, key, label, state }) {
  const text = JSON.stringify(value, null, 2);
  const size = new TextEncoder().encode(JSON.stringify(value)).length;
  const large = text.length > LARGE_CHARS || text.split("\n").length > LARGE_LINES;
  const open = state && state.has(key) ? state.get(key) : !large;
  const box = h("details", { class: "json", id, open, dataset: { large: String(large) } },
    h("summary", {}, h("span", { class: "json-label" }, label), " ",
      h("span", { class: "json-shape" }, `${shape(value)} · ${bytes(size)}`)),
    // Focusable, so that the keyboard can scroll a long or wide value.
    h("pre", { class: "json-body", tabindex: "0" }, text));
  if (state) box.addEventListener("toggle", () => state.set(key, box.open));
  return box;
}
