// The bench page: usbhttpd's devices, leases and events, live, from the public API only.
// Rules kept throughout: every string from a device or a client goes into the page as text
// (textContent, never HTML); the token lives in this tab's sessionStorage and travels only in
// an Authorization header (a WebSocket gets a one-use ticket instead); nothing polls: the page
// follows GET /v1/events?activity=true and asks again only for what an event says changed.
import { $, logEvent, name } from "./dom.js";
import { state, api, headers, Problem, TOKEN_KEY } from "./session.js";
import { loadDevices, loadClaims, renderDevices, renderDetail } from "./devices.js";
import { loadLeases } from "./leases.js";

// ---- The token -----------------------------------------------------------------------------

function needToken(why) {
  $("login").hidden = false;
  $("login-error").textContent = state.token ? (why || "The token was refused.") : "";
  $("token").focus();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  $("token").value = "";
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $("login").hidden = true;
  reconnect(0);
});

$("sign").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  if (state.stream) state.stream.abort();
  state.stream = null;
  setLink(false, "token needed");
  needToken();
});

// A violation of the page's Content-Security-Policy is a bug of the page: say so where tests look.
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
});

// ---- The event stream ----------------------------------------------------------------------

let retryTimer = null;

function setLink(connected, text) {
  state.connected = connected;
  const link = $("link");
  link.textContent = text;
  link.className = connected ? "link up" : "link down";
  document.body.classList.toggle("offline", !connected);
}

function reconnect(delay) {
  clearTimeout(retryTimer);
  if (state.stream) state.stream.abort();
  state.stream = null;
  retryTimer = setTimeout(connect, delay);
}

async function connect() {
  const controller = new AbortController();
  state.stream = controller;
  try {
    // Open: says whether a token is needed without a 401 (a page opened for the first time).
    state.who = await api("GET", "/v1/whoami");
    if (state.who.tokens_required && !state.who.scope) {
      setLink(false, "token needed");
      needToken();
      return;
    }
    $("login").hidden = true;
    $("node").textContent = state.who.node || location.host;
    $("who").textContent = state.who.tokens_required ? `${state.who.name} · ${state.who.scope}` : "no tokens";
    $("sign").hidden = !state.who.tokens_required;
    $("sign").textContent = "Forget token";
    // The stream first, then the list: a change in between is in both, and applying it twice is harmless.
    const response = await fetch("/v1/events?activity=true&keepalive_ms=5000", {
      headers: headers({ Accept: "text/event-stream" }), signal: controller.signal, cache: "no-store",
    });
    if (!response.ok) throw new Problem(response.status, await response.json().catch(() => null));
    // What a daemon that went away held is gone with it: streams are told by events.
    state.streams.clear();
    await Promise.all([loadDevices(), leasesChanged(), loadClaims()]);
    setLink(true, "live");
    logEvent("link", "connected to the daemon");
    await follow(response.body.getReader(), controller);
  } catch (error) {
    if (state.stream !== controller) return; // replaced by a newer one
    if (error instanceof Problem && error.status === 401) {
      setLink(false, "token needed");
      needToken(error.message);
      return;
    }
    // A fetch that failed or was cut is the network's (TypeError) or the watchdog's (AbortError).
    if (!(error instanceof TypeError || error instanceof Problem || error.name === "AbortError")) {
      console.error("bench page:", error);
    }
    if (state.connected) logEvent("link", "lost the daemon: retrying");
  }
  if (state.stream !== controller) return;
  setLink(false, "daemon unreachable: retrying…");
  reconnect(1000);
}

// Server-Sent Events over a fetched body (EventSource cannot send the Authorization header).
async function follow(reader, controller) {
  const decoder = new TextDecoder();
  let buffer = "";
  let watchdog = null;
  const arm = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => controller.abort(), 16000); // three keep-alives missed
  };
  arm();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      arm();
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let type = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) type = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (!data) continue;
        try {
          handle(type, JSON.parse(data));
        } catch (error) {
          // A bug of the page, not of the link: said where tests look, and the stream goes on.
          console.error("bench page: handling", type, error);
          logEvent("error", `${type}: ${error.message}`);
        }
      }
    }
  } finally {
    clearTimeout(watchdog);
  }
}

function handle(type, data) {
  switch (type) {
    case "added":
    case "present":
      state.devices.set(data.device.id, data.device);
      state.details.delete(data.device.id);
      if (type === "added") logEvent("added", `${data.device.id} ${name(data.device)}`);
      renderDevices();
      if (state.selected === data.device.id) renderDetail();
      break;
    case "removed":
      state.devices.delete(data.device.id);
      state.details.delete(data.device.id);
      state.claims.delete(data.device.id);
      state.streams.delete(data.device.id);
      logEvent("removed", `${data.device.id} ${name(data.device)}`);
      renderDevices();
      if (state.selected === data.device.id) renderDetail();
      break;
    case "resync":
      loadDevices();
      break;
    case "activity":
      activity(data);
      break;
  }
}

function activity(entry) {
  if (entry.kind === "lease" || entry.kind === "all") leasesChanged();
  if (entry.kind === "claim" || entry.kind === "all") {
    loadClaims();
  }
  if (entry.kind === "stream") {
    const before = state.streams.get(entry.device) || { open: 0 };
    const open = entry.streams || 0;
    // Reports while streams run carry their throughput; a stream starting or ending carries none
    // (the rate shown is then the next report's).
    state.streams.set(entry.device, { open, rate: entry.bytes_per_second ?? (before.open === open ? before.rate : undefined) });
    renderDevices();
    if (before.open === open) return; // a throughput report: not an event
  }
  if (entry.kind !== "all") logEvent(entry.kind, `${entry.device}: ${describe(entry)}`);
}

function describe(entry) {
  if (entry.kind === "stream") return `${entry.streams} stream${entry.streams === 1 ? "" : "s"} open`;
  return entry.kind === "lease" ? "lease changed" : "claims changed";
}

// Leases changed: the list, and what shows them on devices.
async function leasesChanged() {
  await loadLeases();
  renderDevices();
  if (state.selected) renderDetail();
}

window.addEventListener("usbhttpd:unauthorized", (event) => needToken(event.detail));
document.addEventListener("keydown", (event) => {
  if (event.key === "/" && document.activeElement.tagName !== "INPUT") {
    event.preventDefault();
    $("filter").focus();
  }
});

// ---- Start ---------------------------------------------------------------------------------

setLink(false, "connecting…");
if (state.token === null) sessionStorage.removeItem(TOKEN_KEY);
connect();
