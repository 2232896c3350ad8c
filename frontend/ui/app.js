// Stepflow dashboard: a hash router over the views.
import { renderRuns } from "./runs.js";
import { renderNew } from "./newrun.js";
import { renderRun } from "./run.js";
import { renderWorkflows } from "./workflows.js";
import { renderOrders, renderOrder } from "./orders.js";
import { renderSignIn } from "./signin.js";
import { signOut, me } from "./api.js";
import { h } from "./dom.js";

const main = document.getElementById("main");
const notice = document.getElementById("notice");
const who = document.getElementById("who");
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

// showCaller names the signed-in token and its role in the header, and
// hides "New run" from readers.
async function showCaller(path) {
  if (path === "/signin") {
    who.textContent = "";
    return;
  }
  try {
    const c = await me();
    who.textContent = c.auth ? `${c.name} · ${c.role}` : "no sign-in needed";
    document.querySelector('[data-nav="new"]').hidden = c.role !== "operator";
  } catch {
    who.textContent = "";
  }
}

const routes = [
  [/^\/signin$/, () => renderSignIn(main)],
  [/^\/new$/, () => renderNew(main)],
  [/^\/runs\/([A-Za-z0-9_]+)$/, (m, params) => renderRun(main, m[1], params)],
  [/^\/workflows(?:\/([A-Za-z0-9_]+))?$/, (m) => renderWorkflows(main, m[1] || "")],
  [/^\/orders$/, (m, params) => renderOrders(main, params)],
  [/^\/orders\/([A-Za-z0-9_]+)$/, (m) => renderOrder(main, m[1])],
  [/^\/$/, (m, params) => renderRuns(main, params)],
];

function route() {
  stopView();
  stopView = () => {};
  showError("");
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const section = path.split("/")[1] || "runs";
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const found = routes.find(([re]) => re.test(path));
  const result = found ? found[1](path.match(found[0]), params) : main.replaceChildren(h("p", {}, "No such page. ", h("a", { href: "#/" }, "See the runs.")));
  if (typeof result === "function") stopView = result;
  showCaller(path);
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
