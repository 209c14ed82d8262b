// A console pane: a device's serial console over its WebSocket (usbhttpd.console.1), opened
// with a one-use ticket (POST /v1/tickets) offered as a subprotocol, never the token.
import { $ } from "./dom.js";
import { state, api, can } from "./session.js";

const ESCAPES = /\x1b\[[0-9;?]*[ -\/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>78]|\r(?!\n)/g;

export async function openConsole(id, number) {
  closeConsole();
  const pane = $("console");
  pane.hidden = false;
  $("console-title").textContent = `Console · ${id} interface ${number}`;
  $("console-output").textContent = "";
  const write = can("transfer");
  const protocols = ["usbhttpd.console.1"];
  try {
    if (state.who.tokens_required) protocols.push((await api("POST", "/v1/tickets")).subprotocol);
  } catch (error) {
    $("console-state").textContent = error.message;
    return;
  }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/v1/devices/${id}/consoles/${number}/ws?from=start&write=${write}`, protocols);
  socket.binaryType = "arraybuffer";
  const decoder = new TextDecoder();
  let shown = 0; // characters in the pane (counted, not read back from the DOM each message)
  state.console = { socket, id, number };
  $("console-state").textContent = "opening…";
  $("console-input").disabled = !write;
  socket.addEventListener("open", () => { $("console-state").textContent = write ? "typing allowed" : "reading along"; });
  socket.addEventListener("message", (event) => {
    const output = $("console-output");
    // Output comes as binary messages; the daemon's one text message says output was lost.
    const text = typeof event.data === "string" ? `\n[${lostBytes(event.data)} bytes of output lost]\n`
      : decoder.decode(event.data, { stream: true });
    const clean = text.replace(/\r\n/g, "\n").replace(ESCAPES, "");
    output.append(document.createTextNode(clean));
    shown += clean.length;
    if (shown > 200000) {
      output.textContent = output.textContent.slice(-100000);
      shown = output.textContent.length;
    }
    output.scrollTop = output.scrollHeight;
  });
  socket.addEventListener("close", (event) => {
    if (state.console && state.console.socket === socket) {
      $("console-state").textContent = `closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`;
    }
  });
}

function lostBytes(notice) {
  try {
    return Number(JSON.parse(notice).lost) || "some";
  } catch (_) {
    return "some";
  }
}

function closeConsole() {
  if (state.console) state.console.socket.close(1000);
  state.console = null;
}

function send(text) {
  if (state.console && state.console.socket.readyState === WebSocket.OPEN) {
    state.console.socket.send(new TextEncoder().encode(text));
  }
}

$("console-form").addEventListener("submit", (event) => {
  event.preventDefault();
  send(`${$("console-input").value}\r`);
  $("console-input").value = "";
});
$("console-ctrlc").addEventListener("click", () => send("\x03"));
$("console-close").addEventListener("click", () => {
  closeConsole();
  $("console").hidden = true;
});
