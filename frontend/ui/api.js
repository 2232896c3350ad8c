// API client: the base URL comes from config.json next to the page
// ("" or missing means the page's own origin). The token is kept in
// sessionStorage only, so it ends with the browser session; the local
// stack may also hand one over in config.json to sign in by itself.

const TOKEN = "stepflow.token";
const SIGNED_OUT = "stepflow.signed-out";
let config = null;

async function loadConfig() {
  if (config !== null) return config;
  try {
    const res = await fetch("config.json", { cache: "no-store" });
    config = res.ok ? await res.json() : {};
  } catch {
    config = {};
  }
  config.api_url = (config.api_url || "").replace(/\/+$/, "");
  return config;
}

async function token() {
  const saved = sessionStorage.getItem(TOKEN);
  if (saved) return saved;
  const c = await loadConfig();
  return c.token && !sessionStorage.getItem(SIGNED_OUT) ? c.token : "";
}

export function signIn(t) {
  sessionStorage.setItem(TOKEN, t);
  sessionStorage.removeItem(SIGNED_OUT);
  caller = null;
}

export function signOut() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.setItem(SIGNED_OUT, "1");
  caller = null;
}

let caller = null;

// me returns who the caller is ({role, name, auth}), asked once per
// sign-in. An API without GET /me is taken to allow everything, as it
// did before roles.
export function me() {
  if (caller === null) {
    caller = request("GET", "/me").then(({ data }) => data).catch((e) => {
      caller = null;
      if (e.status === 404) return { role: "operator", auth: false };
      throw e;
    });
  }
  return caller;
}

// canWrite tells whether the caller may start, cancel, retry and redrive.
export async function canWrite() {
  return (await me()).role === "operator";
}

export const READ_ONLY = "Your token is a reader token: it can watch but not start, cancel, retry, redrive or decide approvals. Sign in with an operator token to do that.";

// apiBase is the API's base URL as the browser reaches it (the page's
// own origin when config.json names none). It is known once a request
// has loaded the config.
export function apiBase() {
  return (config && config.api_url) || location.origin;
}

// tryToken checks a token against the API without keeping it.
export async function tryToken(t) {
  await request("GET", "/runs?limit=1", undefined, t);
}

// ApiError carries the API's message and the field it names, if any.
export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field || "";
  }
}

// request sends a JSON request and returns {data, next, text}: the decoded
// body, the next page's path from the Link header (or null), and the body
// as received (for values that must be shown exactly as stored).
export async function request(method, path, body, withToken) {
  const url = (await loadConfig()).api_url + path;
  const headers = body === undefined ? {} : { "Content-Type": "application/json" };
  const t = withToken === undefined ? await token() : withToken;
  if (t) headers.Authorization = "Bearer " + t;
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : (typeof body === "string" ? body : JSON.stringify(body)),
    });
  } catch {
    throw new ApiError(0, `Cannot reach the Stepflow API at ${url || "this origin"}.`);
  }
  let data = null;
  let text = "";
  try {
    text = await res.text();
    data = JSON.parse(text);
  } catch {
    data = null;
  }
  if (!res.ok) {
    const msg = (data && data.error) || `${res.status} ${res.statusText}`;
    if (res.status === 401 && withToken === undefined && !location.hash.startsWith("#/signin")) {
      location.hash = "#/signin";
    }
    throw new ApiError(res.status, msg, data && data.field);
  }
  return { data, next: nextLink(res.headers.get("Link")), text };
}

function nextLink(header) {
  if (!header) return null;
  const m = header.match(/<([^>]+)>;\s*rel="next"/);
  return m ? m[1] : null;
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body) => request("POST", path, body),
};
