// Leases: who holds which device until when, counted down on the page's own clock.
import { $, el, button, logEvent } from "./dom.js";
import { state, api, can, rememberLease } from "./session.js";

export async function loadLeases() {
  try {
    state.leases = (await api("GET", "/v1/leases")).leases;
    // The tokens of leases that ended (ran out, or an admin ended them) are of no more use.
    for (const id of Object.keys(state.leaseTokens)) {
      if (!state.leases.some((lease) => lease.id === id)) rememberLease(id, null);
    }
  } catch (error) {
    logEvent("error", `leases: ${error.message}`);
  }
  renderLeases();
}

export async function endLease(lease) {
  const token = state.leaseTokens[lease.id];
  try {
    if (token) await api("DELETE", `/v1/leases/${lease.id}`, { lease: token });
    else await api("DELETE", `/v1/leases/${lease.id}?force=true`);
    rememberLease(lease.id, null);
    logEvent("done", `lease ${lease.id} on ${lease.device} ended`);
  } catch (error) {
    logEvent("error", `ending lease ${lease.id}: ${error.message}`);
  }
}

// The lease's length chosen in the page (state.leaseMinutes) from now, for a lease this tab holds.
export async function renewLease(lease) {
  try {
    await api("PUT", `/v1/leases/${lease.id}?ttl_ms=${state.leaseMinutes * 60000}`, { lease: state.leaseTokens[lease.id] });
    logEvent("done", `lease ${lease.id} on ${lease.device} renewed`);
  } catch (error) {
    logEvent("error", `renewing lease ${lease.id}: ${error.message}`);
  }
}

// ---- Leases --------------------------------------------------------------------------------

function left(lease) {
  const ms = Date.parse(lease.expires_at) - Date.now();
  if (ms <= 0) return "ending";
  const s = Math.round(ms / 1000);
  return s >= 120 ? `${Math.floor(s / 60)} min` : `${s} s`;
}

function renderLeases() {
  const body = $("leases");
  body.replaceChildren(...state.leases.map((lease) => {
    const mine = !!state.leaseTokens[lease.id];
    const end = mine || can("admin")
      ? button(mine ? "Release" : "End", () => endLease(lease), { class: "quiet", "aria-label": `End lease ${lease.id} of ${lease.holder}` })
      : null;
    return el("tr", { dataset: { lease: lease.id } },
      el("td", {}, lease.device, lease.interface === null ? "" : ` #${lease.interface}`),
      el("td", { class: "holder" }, lease.holder),
      el("td", { class: "left", title: lease.expires_at, dataset: { expires: lease.expires_at } }, left(lease)),
      el("td", {}, mine ? button("Renew", () => renewLease(lease), { class: "quiet", "aria-label": `Renew lease ${lease.id}` }) : null, end));
  }));
  if (!state.leases.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No leases.")));
}

// The time left counts down on the page's own clock: nothing is asked of the daemon.
setInterval(() => {
  for (const cell of document.querySelectorAll("#leases td.left")) {
    cell.textContent = left({ expires_at: cell.dataset.expires });
  }
}, 1000);
