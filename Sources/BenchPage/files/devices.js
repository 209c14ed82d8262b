// The device tree (by bus, hub and port) and one device's details, descriptors and actions.
import { $, el, hex2, hex4, name, fact, button, logEvent } from "./dom.js";
import { state, api, can, rememberLease } from "./session.js";
import { endLease, renewLease } from "./leases.js";
import { openConsole } from "./console.js";

export async function loadDevices() {
  const list = await api("GET", "/v1/devices");
  state.devices = new Map(list.devices.map((d) => [d.id, d]));
  renderDevices();
  if (state.selected) renderDetail();
}

// What the daemon holds: every device with claimed interfaces, asked at once of the sessions
// open now (no device is opened to answer), at connection and when an event says claims changed.
export async function loadClaims() {
  try {
    state.claims = new Map((await api("GET", "/v1/claims")).devices.map((held) => [held.id, held.claims]));
  } catch (error) {
    logEvent("error", `claims: ${error.message}`);
  }
  renderDevices();
  if (state.selected) renderDetail();
}

// ---- The device tree ---------------------------------------------------------------------

export function renderDevices() {
  const filter = $("filter").value.trim().toLowerCase();
  const devices = [...state.devices.values()].sort((a, b) => a.bus - b.bus || comparePorts(a.port_path, b.port_path));
  const list = $("devices");
  const focused = document.activeElement && document.activeElement.dataset.id;
  list.replaceChildren();
  let bus = null;
  let shown = 0;
  for (const d of devices) {
    const text = [d.id, d.product, d.manufacturer, d.serial, hex4(d.vendor_id), hex4(d.product_id)].join(" ").toLowerCase();
    if (filter && !text.includes(filter)) continue;
    if (d.bus !== bus) {
      bus = d.bus;
      list.append(el("li", { class: "bus", role: "presentation" }, `Bus ${bus}`));
    }
    shown++;
    const leases = state.leases.filter((l) => l.device === d.id);
    const claims = state.claims.get(d.id) || [];
    const streams = state.streams.get(d.id) || { open: 0 };
    const row = el("li", { role: "treeitem", "aria-level": d.port_path.length + 1, "aria-selected": d.id === state.selected },
      el("button", {
        type: "button", class: "device", dataset: { id: d.id },
        on: { click: () => select(d.id), keydown: moveFocus },
      },
        el("span", { class: "port" }, d.id),
        el("span", { class: "name" }, name(d)),
        el("span", { class: "ids" }, `${hex4(d.vendor_id)}:${hex4(d.product_id)}`),
        d.serial ? el("span", { class: "serial", title: "serial" }, d.serial) : null,
        el("span", { class: "speed" }, d.speed),
        leases.length ? el("span", { class: "badge lease" }, `leased · ${leases.map((l) => l.holder).join(", ")}`) : null,
        claims.length ? el("span", { class: "badge claim" }, `claimed ${claims.map((c) => c.interface).join(",")}`) : null,
        streams.open ? el("span", { class: "badge stream" },
          `${streams.open} stream${streams.open === 1 ? "" : "s"}${streams.rate === undefined ? "" : ` · ${rate(streams.rate)}`}`) : null,
      ));
    row.classList.add(`depth-${Math.min(d.port_path.length, 7)}`);
    list.append(row);
  }
  $("count").textContent = `(${shown}${shown !== devices.length ? ` of ${devices.length}` : ""})`;
  if (focused) {
    const again = list.querySelector(`button[data-id="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

function rate(bytesPerSecond) {
  const units = [["GB/s", 1e9], ["MB/s", 1e6], ["kB/s", 1e3]];
  for (const [unit, size] of units) if (bytesPerSecond >= size) return `${(bytesPerSecond / size).toFixed(1)} ${unit}`;
  return `${bytesPerSecond} B/s`;
}

function comparePorts(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] === undefined) return -1;
    if (b[i] === undefined) return 1;
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return 0;
}

function moveFocus(event) {
  const buttons = [...$("devices").querySelectorAll("button.device")];
  const index = buttons.indexOf(event.currentTarget);
  const next = { ArrowDown: index + 1, ArrowUp: index - 1, Home: 0, End: buttons.length - 1 }[event.key];
  if (next === undefined || !buttons[next]) return;
  event.preventDefault();
  buttons[next].focus();
}

$("filter").addEventListener("input", renderDevices);

// ---- One device ----------------------------------------------------------------------------

function select(id) {
  state.selected = id;
  renderDevices();
  renderDetail();
}

export async function renderDetail() {
  const id = state.selected;
  const box = $("detail");
  const summary = state.devices.get(id);
  if (!summary) {
    box.replaceChildren(el("p", { class: "muted" }, `${id} is not plugged in.`));
    return;
  }
  let detail = state.details.get(id);
  if (!detail) {
    try {
      detail = await api("GET", `/v1/devices/${id}`);
      state.details.set(id, detail);
    } catch (error) {
      box.replaceChildren(el("p", { class: "error" }, error.message));
      return;
    }
    if (state.selected !== id) return;
  }
  const leases = state.leases.filter((l) => l.device === id);
  const claims = state.claims.get(id) || [];
  const mine = myLease(id);
  box.replaceChildren(...[
    el("h3", {}, name(summary), " ", el("span", { class: "muted" }, id)),
    el("dl", { class: "facts" },
      fact("Manufacturer", summary.manufacturer), fact("Product", summary.product), fact("Serial", summary.serial),
      fact("Vendor:product", `${hex4(summary.vendor_id)}:${hex4(summary.product_id)}`),
      fact("Speed", summary.speed), fact("Bus / address", `${summary.bus} / ${summary.address}`),
      fact("Class", summary.device_class || summary.device_class_code),
      fact("Configuration", detail.active_configuration),
      fact("Lease", leases.length ? leases.map((l) => `${l.holder}${l.interface === null ? "" : ` (interface ${l.interface})`}`).join(", ") : "none")),
    el("div", { class: "actions" },
      can("transfer") ? button(mine ? "Release my lease" : "Take lease", () => mine ? endLease(mine) : takeLease(id)) : null,
      mine ? button("Renew", () => renewLease(mine)) : null,
      can("transfer") ? leaseLength() : null,
      can("admin") ? button("Reset", () => act("POST", `/v1/devices/${id}/reset`, id)) : null),
    interfacesTable(id, detail, claims),
    consolesList(id, detail),
    descriptors(id, detail),
  ].filter(Boolean));
}

function interfacesTable(id, detail, claims) {
  const active = detail.configurations.find((c) => c.value === detail.active_configuration) || detail.configurations[0];
  if (!active) return el("p", { class: "muted" }, "No configuration.");
  const rows = active.interfaces.map((i) => {
    const alt = i.alt_settings[0] || {};
    const claim = claims.find((c) => c.interface === i.number);
    return el("tr", {},
      el("td", {}, i.number),
      el("td", {}, `${alt.interface_class_name || ""} (${hex2(alt.interface_class || 0)})`),
      el("td", {}, i.driver || "—"),
      el("td", {}, claim ? `claimed, alt ${claim.alt_setting}` : "—"),
      el("td", {}, can("transfer")
        ? button(claim ? "Release" : "Claim", () => act(claim ? "DELETE" : "POST", `/v1/devices/${id}/interfaces/${i.number}/claim`, id))
        : null));
  });
  return el("table", { class: "interfaces" },
    el("caption", {}, `Interfaces of configuration ${active.value}`),
    el("thead", {}, el("tr", {}, ["#", "Class", "Driver", "Claim", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function consolesList(id, detail) {
  if (!detail.consoles || !detail.consoles.length) return null;
  return el("div", { class: "consoles" },
    el("h4", {}, "Consoles"),
    detail.consoles.map((c) => el("p", {},
      `interface ${c.interface}: ${c.tty} (${c.driver}, ${c.state}) `,
      c.state === "open" ? button("Open console", () => openConsole(id, c.interface)) : null)));
}

function descriptors(id, detail) {
  const raw = el("pre", { class: "hex" }, "…");
  const rawBox = el("details", { class: "raw", on: { toggle: async (event) => {
    if (!event.currentTarget.open || raw.dataset.loaded) return;
    try {
      raw.textContent = hexDump(await api("GET", `/v1/devices/${id}/descriptors/raw`, { as: "bytes" }));
      raw.dataset.loaded = "1";
    } catch (error) {
      raw.textContent = error.message;
    }
  } } }, el("summary", {}, "Raw descriptor bytes"), raw);
  return el("div", { class: "descriptors" },
    el("h4", {}, "Descriptors"),
    tree("Device descriptor", detail.device_descriptor, true),
    detail.configurations.map((c) => tree(`Configuration ${c.value}`, c, false)),
    rawBox);
}

// A descriptor as nested <details>: objects and lists open on demand, values as text.
function tree(label, value, open) {
  if (value === null || typeof value !== "object") {
    return el("div", { class: "kv" }, el("span", { class: "k" }, label), " ", el("span", { class: "v" }, format(label, value)));
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [`${label.replace(/s$/, "")} ${i}`, v]) : Object.entries(value);
  return el("details", { open }, el("summary", {}, label), el("div", { class: "nested" }, entries.map(([k, v]) => tree(k, v, false))));
}

function format(key, value) {
  if (value === null) return "null";
  if (typeof value === "number" && /id$|Id$|class$|Class$|bcd|attributes|address/i.test(key)) return `0x${value.toString(16)} (${value})`;
  return String(value);
}

function hexDump(bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = [...bytes.slice(i, i + 16)];
    lines.push(`${i.toString(16).padStart(4, "0")}  ${row.map(hex2).join(" ").padEnd(48)}  ${row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("")}`);
  }
  return lines.join("\n");
}

// ---- Actions -------------------------------------------------------------------------------

// The lease this tab holds on device `id` (it took it, and keeps its token), if any.
function myLease(id) {
  return state.leases.find((l) => l.device === id && state.leaseTokens[l.id]);
}

async function act(method, path, id) {
  const mine = myLease(id);
  try {
    await api(method, path, { lease: mine && state.leaseTokens[mine.id] });
    logEvent("done", `${method} ${path}`);
  } catch (error) {
    logEvent("error", `${method} ${path}: ${error.message}`);
  }
  state.details.delete(id);
  if (state.selected === id) renderDetail();
}

// How long a lease the page takes or renews lasts: the choice holds for the tab.
function leaseLength() {
  const choice = el("select", { "aria-label": "Lease length", on: { change: () => { state.leaseMinutes = Number(choice.value); } } },
    [10, 30, 60].map((m) => el("option", { value: m, selected: m === state.leaseMinutes }, m < 60 ? `${m} min` : "1 hour")));
  return el("label", { class: "muted" }, "for ", choice);
}

async function takeLease(id) {
  try {
    const lease = await api("POST", `/v1/devices/${id}/leases?ttl_ms=${state.leaseMinutes * 60000}`);
    rememberLease(lease.id, lease.token);
    logEvent("done", `lease ${lease.id} taken on ${id}`);
  } catch (error) {
    logEvent("error", `lease on ${id}: ${error.message}`);
  }
}
