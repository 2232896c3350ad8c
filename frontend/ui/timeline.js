// The timeline: one row per step, one bar per attempt on a shared time
// axis with round-numbered ticks. Bars are buttons: arrow keys move
// between them (one tab stop), focus shows the attempt's details under
// the chart, and Enter opens the step. After a retry of the run, a line
// marks where the retry began, and attempts of earlier generations are
// hatched.
import { h, fill, clock, fmtMs } from "./dom.js";
import { roving } from "./graph.js";

const STEPS_MS = [10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5];

// attemptsOf returns a step's attempts as {n, start, end, state, error,
// gen, earlier}, the running or waiting one included. gen is the run's
// generation the attempt ran in (undefined when unknown: a step that
// completed before the latest retry); earlier tells an attempt of a
// generation before the run's current one.
export function attemptsOf(s, now, run) {
  const gen = run ? run.generation || 0 : 0;
  const earlierGen = (g) => gen > 0 && (g === undefined || g === null || g < gen);
  const out = s.attempts.map((a) => ({
    n: a.number, start: Date.parse(a.started_at), end: Date.parse(a.ended_at),
    state: a.error ? "failed" : "completed", error: a.error || "",
    gen: a.generation ?? undefined, earlier: earlierGen(a.generation),
  }));
  if ((s.status === "running" || s.status === "waiting") && s.attempt_started_at) {
    out.push({ n: out.length + 1, start: Date.parse(s.attempt_started_at), end: now, state: s.status, error: "", gen, earlier: false });
  }
  return out;
}

// genLabel names an attempt's generation for a run that was retried.
export function genLabel(a) {
  if (a.gen === undefined) return "before the last retry";
  return a.gen === 0 ? "generation 0, as started" : `generation ${a.gen}, retry ${a.gen}`;
}

function tickStep(span, px) {
  const most = Math.max(2, Math.floor(px / 72));
  return STEPS_MS.find((s) => span / s <= most) || STEPS_MS[STEPS_MS.length - 1];
}

function tickLabel(ms, step) {
  if (ms === 0) return "0";
  if (step < 1000) return `${(ms / 1000).toFixed(step < 100 ? 2 : 1)} s`;
  if (ms < 60000) return `${Math.round(ms / 1000)} s`;
  const m = Math.floor(ms / 60000), s = Math.round((ms % 60000) / 1000);
  return s ? `${m} min ${s} s` : `${m} min`;
}

export function describeAttempt(stepID, a, retried) {
  const took = fmtMs(a.end - a.start);
  const live = a.state === "running" || a.state === "waiting";
  const verb = live ? `${a.state} for ${took}` : `${a.state} after ${took}`;
  return `${stepID} · attempt ${a.n}${retried ? ` (${genLabel(a)})` : ""} · ${verb} · started ${clock(a.start)}${live ? "" : `, ended ${clock(a.end)}`}${a.error ? ` · error: ${a.error}` : ""}`;
}

// drawTimeline renders the run's attempts into box. state.focus keeps the
// focused bar ("step#attempt") across redraws; onPick(step) opens a step.
export function drawTimeline(box, run, state, onPick) {
  const hadFocus = box.contains(document.activeElement);
  const now = Date.now();
  const all = run.steps.map((s) => attemptsOf(s, now, run));
  const flat = all.flat();
  if (!flat.length) {
    box.replaceChildren(h("p", { class: "muted" }, "No attempt has started yet."));
    return;
  }
  const retried = run.retries > 0;
  const retryAt = retried && run.retried_at ? Date.parse(run.retried_at) : null;
  const marks = retryAt === null ? [] : [retryAt];
  const waits = run.steps.map((s) => (s.next_attempt_at && s.status === "pending" ? Date.parse(s.next_attempt_at) : null));
  const first = Math.min(...flat.map((a) => a.start));
  const t0 = Math.min(first, ...marks);
  const t1 = Math.max(...flat.map((a) => a.end), ...waits.filter((w) => w !== null && w > t0), ...marks, t0 + 1);
  const span = t1 - t0;
  const pct = (t) => ((t - t0) / span) * 100;
  const trackPx = Math.max(120, (box.clientWidth || 600) - 130);
  const step = tickStep(span, trackPx);
  const ticks = [];
  for (let t = 0; t <= span + 1; t += step) ticks.push(t);

  const detail = h("p", { class: "tl-detail", id: "tl-detail", "aria-live": "polite" },
    "Select a bar (or use the arrow keys) for an attempt's details.");
  const bars = [];
  // A line at the very end would sit one pixel past the track.
  const grid = () => ticks.filter((t) => t < span).map((t) => {
    const line = h("span", { class: "tl-grid", "aria-hidden": "true" });
    line.style.left = `${(t / span) * 100}%`;
    return line;
  });
  const retryLine = () => {
    if (retryAt === null) return null;
    const line = h("span", { class: "tl-retry", "aria-hidden": "true" });
    line.style.left = `${pct(retryAt)}%`;
    return line;
  };
  const rows = run.steps.map((s, i) => {
    const track = h("div", { class: "tl-track" }, grid(), retryLine());
    if (waits[i] !== null && s.attempts.length) {
      const from = Date.parse(s.attempts[s.attempts.length - 1].ended_at);
      const wait = h("span", { class: "tl-wait", title: `${s.step_id}: next attempt by ${clock(waits[i])}`, "aria-hidden": "true" });
      wait.style.left = `${pct(from)}%`;
      wait.style.width = `${Math.max(pct(waits[i]) - pct(from), 0.5)}%`;
      track.append(wait);
    }
    for (const a of all[i]) {
      const key = `${s.step_id}#${a.n}`;
      const bar = h("button", {
        type: "button", class: `tl-bar ${a.state}${a.earlier ? " earlier" : ""}`, "aria-label": describeAttempt(s.step_id, a, retried), "aria-describedby": "tl-detail",
        dataset: { step: s.step_id, attempt: String(a.n), start: String(a.start), end: String(a.end), key, generation: a.gen === undefined ? "" : String(a.gen) },
        onfocus: () => { state.focus = key; detail.textContent = describeAttempt(s.step_id, a, retried); },
        onclick: () => onPick(s.step_id, a.n),
      });
      bar.style.left = `${pct(a.start)}%`;
      bar.style.width = `${Math.max(pct(a.end) - pct(a.start), 0.6)}%`;
      track.append(bar);
      bars.push(bar);
    }
    return h("div", { class: "tl-row" }, h("span", { class: "tl-label", title: s.step_id }, s.step_id), track);
  });
  // Labels are centred on their tick, but kept inside the axis at its
  // ends.
  const axis = h("div", { class: "tl-axis", "aria-hidden": "true" }, ticks.map((t) => {
    const at = (t / span) * 100;
    const l = h("span", { class: at === 0 ? "start" : at > 90 ? "end" : "" }, tickLabel(t, step));
    // The last tick may lie past the span (by up to a millisecond, which
    // is a tenth of a 10 ms run): keep its label inside the axis.
    l.style.left = `${Math.min(at, 100)}%`;
    return l;
  }));
  const body = h("div", { class: "tl-body", role: "group", "aria-label": "Attempts, one bar each" }, rows);
  let retryRow = null;
  let retryNote = "";
  if (retryAt !== null) {
    const at = pct(retryAt);
    const flag = h("span", { class: `tl-retry-flag${at < 10 ? " start" : at > 90 ? " end" : ""}`, id: "tl-retry-flag", dataset: { at: String(retryAt) } },
      `↻ retry ${run.retries}`);
    flag.style.left = `${at}%`;
    retryRow = h("div", { class: "tl-row tl-marks", "aria-hidden": "true" }, h("span", { class: "tl-label" }), h("div", { class: "tl-markbar" }, flag));
    retryNote = ` The line marks where retry ${run.retries} began, at ${clock(retryAt)}; hatched bars ran in earlier generations.`;
  }
  fill(box,
    h("p", { class: "tl-origin muted" }, t0 < first
      ? `Time since retry ${run.retries} began at ${clock(t0)}; one bar per attempt.${retryNote}`
      : `Time since the first attempt started at ${clock(t0)}; one bar per attempt.${retryNote}`),
    retryRow,
    h("div", { class: "tl-row tl-head" }, h("span", { class: "tl-label muted" }, "Step"), axis),
    body, detail);
  const stop = bars.find((b) => b.dataset.key === state.focus) || bars[0];
  for (const b of bars) b.tabIndex = b === stop ? 0 : -1;
  roving(body, bars, () => {});
  if (hadFocus) stop.focus();
}
