// Stepflow dashboard: a hash router over three views.
import { renderRuns } from "./runs.js";
import { renderNew } from "./newrun.js";
import { renderRun } from "./run.js";
import { renderSignIn } from "./signin.js";
import { signOut } from "./api.js";

const main = document.getElementById("main");
const notice = document.getElementById("notice");
let stopView = () => {};

// showError puts a visible message at the top of the page.
export function showError(msg) {
  notice.textContent = msg;
  notice.hidden = !msg;
}

// poll calls fn every ms milliseconds while the tab is visible, until fn
// returns true (done) or the view changes. It returns a stop function.
export function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  let busy = false; // a request is in flight: never start a second loop
  const tick = async () => {
    timer = null;
    if (stopped || busy) return;
    if (document.hidden) return; // resumed by visibilitychange
    busy = true;
    let done = false;
    try {
      done = await fn();
      if (!stopped) showError("");
    } catch (e) {
      // A 401 has already sent the page to the sign-in view.
      if (!stopped && e.status !== 401) showError(e.message);
    } finally {
      busy = false;
    }
    if (!done && !stopped) timer = setTimeout(tick, ms);
  };
  const onVisible = () => { if (!document.hidden && timer === null && !busy && !stopped) tick(); };
  document.addEventListener("visibilitychange", onVisible);
  tick();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisible);
  };
}

function route() {
  stopView();
  stopView = () => {};
  showError("");
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  for (const a of document.querySelectorAll("[data-nav]")) {
    const current = (a.dataset.nav === "new" && path === "/new") || (a.dataset.nav === "runs" && path === "/");
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const m = path.match(/^\/runs\/([A-Za-z0-9_]+)$/);
  let result;
  if (path === "/signin") result = renderSignIn(main);
  else if (path === "/new") result = renderNew(main);
  else if (m) result = renderRun(main, m[1]);
  else result = renderRuns(main, params);
  if (typeof result === "function") stopView = result;
}

document.querySelector(".skip").addEventListener("click", (ev) => {
  ev.preventDefault();
  main.focus();
});
document.getElementById("signout").addEventListener("click", () => {
  signOut();
  location.hash = "#/signin";
});
window.addEventListener("hashchange", route);
route();
