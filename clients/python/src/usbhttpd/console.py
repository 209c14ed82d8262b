"""A device's serial console from Python: what the board prints, what to type, the line and
the modem lines (docs: the README's "Consoles", openapi.yaml's /v1/devices/{id}/consoles).

    with client.device("1-3") as dev, dev.console(0) as console:
        console.set_line(baud=115200)
        console.write(b"reboot\\r")
        print(console.read_until(b"login: ", timeout=30).decode())

The output and the typing go over the console's WebSocket (subprotocol usbhttpd.console.1);
the line, the modem lines and breaks are single requests on the device's connection.
pyserial's `serial_for_url("usbhttpd://…")` builds on it (`usbhttpd.serial`).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

from .websocket import WebSocketClient

if TYPE_CHECKING:
    from .client import Device

SUBPROTOCOL = "usbhttpd.console.1"


class Console(WebSocketClient):
    """Console `interface` of `device`: its output from `start` ("start": everything the daemon
    kept, the boot log included; "end": only what comes next; or a byte offset) and, with
    `write` (the default), its input: one client types at a time (another's `write=True`
    raises the daemon's 409 console-writer-busy)."""

    def __init__(self, device: "Device", interface: int = 0, start: Union[str, int] = "end", write: bool = True):
        self.device = device
        self.interface = interface
        self._path = f"/consoles/{interface}"
        self._buffer = bytearray()
        #: Output bytes the daemon dropped before this reader got them (it read too slowly, or
        #: asked for output older than the daemon keeps).
        self.lost = 0
        client = device.client
        headers = [(name.lower().encode(), value.encode()) for name, value in device._headers().items()]
        if client.token:
            headers.append((b"authorization", f"Bearer {client.token}".encode()))
        target = f"/v1/devices/{device.id}/consoles/{interface}/ws?from={start}&write={'true' if write else 'false'}"
        super().__init__(client.url, target, SUBPROTOCOL, headers, client.verify, client.timeout, what="the console")

    def _on_message(self, message: bytes) -> None:
        self._buffer += message

    def _on_text(self, text: str) -> None:
        # The daemon's one notice: output its ring dropped before this reader read it.
        try:
            self.lost += int(json.loads(text)["lost"])
        except (ValueError, KeyError, TypeError):
            self._closed = "the daemon sent a text message that is not a console notice"

    # Output

    @property
    def in_waiting(self) -> int:
        """Bytes received and not read yet (what has come so far is taken in first)."""
        self._take_in()
        return len(self._buffer)

    def _take_in(self) -> None:
        """Reads what the socket has now (a hundredth of a second at most)."""
        try:
            self._wait(lambda: False, 0.01, closed_ok=True)
        except TimeoutError:
            pass

    def read(self, size: int = 1, timeout: Optional[float] = None) -> bytes:
        """Up to `size` bytes: returns once `size` came, or at `timeout` (None: waits) with what
        came; b"" once the console is gone and nothing is left."""
        try:
            self._wait(lambda: len(self._buffer) >= size, timeout, closed_ok=True)
        except TimeoutError:
            pass
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read_until(self, expected: bytes, timeout: Optional[float] = None) -> bytes:
        """Everything up to and including `expected`; at `timeout` (or the console gone), what
        came (without `expected`)."""
        try:
            self._wait(lambda: expected in self._buffer, timeout, closed_ok=True)
        except TimeoutError:
            pass
        at = self._buffer.find(expected)
        end = len(self._buffer) if at < 0 else at + len(expected)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def reset_input(self) -> None:
        """Drops what came and was not read."""
        self._take_in()
        self._buffer.clear()

    # Input

    def write(self, data: bytes) -> int:
        """Types `data` (in messages of at most 64 KiB)."""
        for start in range(0, len(data), 65536):
            self._send(bytes(data[start:start + 65536]))
        return len(data)

    # The line and the modem lines (single requests)

    def info(self) -> Dict[str, Any]:
        """The console as the daemon lists it (line, modem lines, output offsets, readers)."""
        for console in self.device._call("GET", "/consoles").json()["consoles"]:
            if console["interface"] == self.interface:
                return console
        return {}

    def set_line(self, baud: Optional[int] = None, data_bits: Optional[int] = None, parity: Optional[str] = None,
                 stop_bits: Optional[int] = None, flow: Optional[str] = None) -> Dict[str, Any]:
        """Changes the given settings (parity: none, even, odd, mark, space; flow: none,
        rtscts, xonxoff); the line as the driver took it."""
        params = {name: value for name, value in
                  (("baud", baud), ("data_bits", data_bits), ("parity", parity), ("stop_bits", stop_bits), ("flow", flow))
                  if value is not None}
        return self.device._call("PUT", self._path + "/line", params=params).json()["line"]

    def set_modem_lines(self, dtr: Optional[bool] = None, rts: Optional[bool] = None) -> Dict[str, bool]:
        """Raises (True) or lowers (False) DTR and RTS; the modem lines now."""
        params = {name: "true" if value else "false" for name, value in (("dtr", dtr), ("rts", rts)) if value is not None}
        return self.device._call("PUT", self._path + "/modem", params=params).json()["modem"]

    def send_break(self, duration: float = 0.25) -> None:
        """Holds the line in break for `duration` seconds."""
        self.device._call("POST", self._path + "/break", params={"duration_ms": max(1, int(duration * 1000))})

