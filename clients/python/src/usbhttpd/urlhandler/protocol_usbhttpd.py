"""pyserial's `usbhttpd://` URLs: a usbhttpd console as a serial port (see the package's doc)."""
from __future__ import annotations

import os
import time
from urllib.parse import parse_qs, unquote, urlsplit

import serial
from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from ..client import Client
from ..errors import UsbHttpdError

_PARITIES = {serial.PARITY_NONE: "none", serial.PARITY_EVEN: "even", serial.PARITY_ODD: "odd",
             serial.PARITY_MARK: "mark", serial.PARITY_SPACE: "space"}
SCHEME = "usbhttpd"


class Serial(SerialBase):
    """A usbhttpd console as pyserial's Serial."""

    BAUDRATES = (50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600, 74880,
                 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000, 3000000, 4000000)

    def open(self) -> None:
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        url, device, interface, options = self.from_url(self.portstr)
        try:
            self._client = Client(url, token=os.environ.get("USBHTTPD_TOKEN"), verify=options["verify"],
                                  allow_plain_token=options["plain_token"])
            self._device = self._client.device(device)
            self._console = self._device.console(interface, start=options["start"], write=options["write"])
        except (UsbHttpdError, OSError) as error:
            self._release()
            raise SerialException(f"could not open {self.portstr}: {error}") from error
        self.is_open = True
        try:
            self._reconfigure_port()
            if not self._dsrdtr:
                self._update_dtr_state()
            if not self._rtscts:
                self._update_rts_state()
        except Exception:
            self.close()
            raise

    def from_url(self, url: str):
        """(the daemon's URL, the device, the interface, options) from `usbhttpd://…`."""
        parts = urlsplit(url)
        if parts.scheme not in ("usbhttpd", "usbhttpds"):
            raise SerialException(f"expected a usbhttpd:// or usbhttpds:// URL, not {url!r}")
        path = [unquote(part) for part in parts.path.split("/") if part]
        if not parts.hostname or not 1 <= len(path) <= 2:
            raise SerialException(f"expected usbhttpd://HOST:PORT/DEVICE[/INTERFACE], not {url!r}")
        try:
            interface = int(path[1], 0) if len(path) == 2 else 0
        except ValueError:
            raise SerialException(f"the interface must be a number, not {path[1]!r}") from None
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"start", "write", "verify", "plain_token"}
        if unknown:
            raise SerialException(f"unknown option(s) in {url!r}: {', '.join(sorted(unknown))} (the token comes from USBHTTPD_TOKEN)")
        verify = query.get("verify", "true")
        options = {
            "start": query.get("start", "end"),
            "write": query.get("write", "true").lower() not in ("0", "false", "no"),
            "verify": False if verify.lower() in ("0", "false", "no") else True if verify.lower() in ("1", "true", "yes") else verify,
            "plain_token": query.get("plain_token", "0").lower() in ("1", "true", "yes"),
        }
        base = ("https" if parts.scheme == "usbhttpds" else "http") + "://" + parts.netloc
        return base, path[0], interface, options

    def _release(self) -> None:
        for name in ("_console", "_device", "_client"):
            thing = getattr(self, name, None)
            if thing is not None:
                try:
                    thing.close()
                except Exception:
                    pass
            setattr(self, name, None)

    def close(self) -> None:
        self._release()
        self.is_open = False

    def _reconfigure_port(self) -> None:
        if not self.is_open:
            return
        if self._stopbits not in (serial.STOPBITS_ONE, serial.STOPBITS_TWO):
            raise ValueError("1.5 stop bits: not a setting usbhttpd's consoles take")
        flow = "rtscts" if self._rtscts else "xonxoff" if self._xonxoff else "none"
        self._console.set_line(baud=self._baudrate, data_bits=self._bytesize, parity=_PARITIES[self._parity],
                               stop_bits=int(self._stopbits), flow=flow)

    @property
    def in_waiting(self) -> int:
        self._check_open()
        return self._console.in_waiting

    def read(self, size: int = 1) -> bytes:
        """pyserial's read: blocks for `size` bytes with timeout None, returns what is there with
        0, waits at most `timeout` seconds otherwise."""
        self._check_open()
        if size <= 0:
            return b""
        if self._timeout is not None and self._timeout == 0:
            return self._console.read(min(size, self._console.in_waiting), timeout=0.01)
        data = self._console.read(size, timeout=self._timeout)
        if not data and self._console.closed and self._timeout is None:
            raise SerialException(f"the console is gone ({self._console.closed})")
        return data

    def write(self, data) -> int:
        self._check_open()
        return self._console.write(serial.to_bytes(data))

    def flush(self) -> None:
        self._check_open()

    def reset_input_buffer(self) -> None:
        self._check_open()
        self._console.reset_input()

    def reset_output_buffer(self) -> None:
        self._check_open()

    def send_break(self, duration: float = 0.25) -> None:
        self._check_open()
        self._console.send_break(duration)

    def _update_break_state(self) -> None:
        if self._break_state:
            raise SerialException("a lasting break_condition is not offered: use send_break(duration)")

    def _update_rts_state(self) -> None:
        if self.is_open:
            self._console.set_modem_lines(rts=self._rts_state)

    def _update_dtr_state(self) -> None:
        if self.is_open:
            self._console.set_modem_lines(dtr=self._dtr_state)

    def _modem(self, name: str) -> bool:
        self._check_open()
        return bool(self._console.info().get("modem", {}).get(name, False))

    @property
    def cts(self) -> bool:
        return self._modem("cts")

    @property
    def dsr(self) -> bool:
        return self._modem("dsr")

    @property
    def ri(self) -> bool:
        return self._modem("ri")

    @property
    def cd(self) -> bool:
        return self._modem("cd")

    def _check_open(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
