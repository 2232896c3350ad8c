// API client: the base URL comes from config.json next to the page
// ("" or missing means the page's own origin).

let base = null;

async function apiBase() {
  if (base !== null) return base;
  try {
    const res = await fetch("config.json", { cache: "no-store" });
    base = res.ok ? ((await res.json()).api_url || "") : "";
  } catch {
    base = "";
  }
  base = base.replace(/\/+$/, "");
  return base;
}

// ApiError carries the API's message and the field it names, if any.
export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field || "";
  }
}

// request sends a JSON request and returns {data, next}: the decoded body
// and the next page's path from the Link header (or null).
export async function request(method, path, body) {
  const url = (await apiBase()) + path;
  let res;
  try {
    res = await fetch(url, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : (typeof body === "string" ? body : JSON.stringify(body)),
    });
  } catch {
    throw new ApiError(0, `Cannot reach the Stepflow API at ${url || "this origin"}.`);
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const msg = (data && data.error) || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, msg, data && data.field);
  }
  return { data, next: nextLink(res.headers.get("Link")) };
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
