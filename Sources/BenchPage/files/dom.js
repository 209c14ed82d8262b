// Making the page's elements: every string becomes a text node (a device controls its own
// strings: a serial like <img onerror=…> must show as those characters).

export const $ = (id) => document.getElementById(id);

export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "on") for (const [type, fn] of Object.entries(value)) node.addEventListener(type, fn);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const hex4 = (n) => n.toString(16).padStart(4, "0");
export const hex2 = (n) => n.toString(16).padStart(2, "0");
export const name = (d) => d.product || `${hex4(d.vendor_id)}:${hex4(d.product_id)}`;

export function fact(label, value) {
  return [el("dt", {}, label), el("dd", {}, value === null || value === undefined ? "—" : value)];
}

export function button(label, action, props) {
  return el("button", Object.assign({ type: "button", on: { click: action } }, props || {}), label);
}

// The event log: newest first, the last 200.
export function logEvent(kind, text) {
  const list = $("events");
  const time = new Date().toLocaleTimeString();
  list.prepend(el("li", { class: `kind-${kind}` }, el("time", {}, time), " ", el("span", { class: "kind" }, kind), " ", text));
  while (list.children.length > 200) list.lastChild.remove();
}
