// What this tab holds (its token, what it learned of the daemon) and the one way it asks the
// API: the token only ever in an Authorization header, an answer's problem document made an error.

export const TOKEN_KEY = "usbhttpd.token";
const LEASES_KEY = "usbhttpd.leaseTokens";

export const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  who: null,              // GET /v1/whoami
  devices: new Map(),     // id -> summary
  details: new Map(),     // id -> GET /v1/devices/{id}
  claims: new Map(),      // id -> [claim]
  streams: new Map(),     // id -> { open, rate }: streams open, bytes a second
  leases: [],             // GET /v1/leases
  leaseTokens: JSON.parse(sessionStorage.getItem(LEASES_KEY) || "{}"), // lease id -> its token
  leaseMinutes: 10,       // how long the page's leases last, as taken or renewed (the daemon's most: 60)
  selected: null,
  connected: false,
  stream: null,           // the event stream's AbortController
  console: null,          // { socket, id, interface }
};

export class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

export function headers(extra) {
  const h = new Headers(extra || {});
  if (state.token) h.set("Authorization", `Bearer ${state.token}`);
  return h;
}

export async function api(method, path, { lease, as = "json" } = {}) {
  const h = headers();
  if (lease) h.set("X-USB-Lease", lease);
  const response = await fetch(path, { method, headers: h, cache: "no-store" });
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not a problem document */ }
    // The page asks for a token again (app.js listens).
    if (response.status === 401) window.dispatchEvent(new CustomEvent("usbhttpd:unauthorized", { detail: body && body.detail }));
    throw new Problem(response.status, body);
  }
  if (as === "bytes") return new Uint8Array(await response.arrayBuffer());
  return response.status === 204 ? null : response.json();
}

export const can = (scope) => {
  const order = ["read", "transfer", "admin"];
  return state.who && order.indexOf(state.who.scope) >= order.indexOf(scope);
};


// Lease tokens this tab took (to release its own leases, and act under them), kept for the tab.
export function rememberLease(id, token) {
  if (token) state.leaseTokens[id] = token; else delete state.leaseTokens[id];
  sessionStorage.setItem(LEASES_KEY, JSON.stringify(state.leaseTokens));
}
