"""pexpect on a device's console: `expect()`, `send()`, `sendline()`, `before`/`after` as with
any pexpect child (pexpect is an optional dependency: pip install "usbhttpd[expect]").

    with client.device("1-3").console(0, start="start") as console:
        board = usbhttpd.expect.spawn(console, timeout=30, encoding="utf-8")
        board.expect("login: ")
        board.send("root\\r")

Why not pexpect-serial's `SerialSpawn` over `serial_for_url("usbhttpd://…")`: it reads the
port's file descriptor, and a console is a WebSocket's messages, not a descriptor. This class
is pexpect's own `SpawnBase` (as its `PopenSpawn`) reading the console's messages.
"""
from __future__ import annotations

from typing import Any

from pexpect import EOF, TIMEOUT
from pexpect.spawnbase import SpawnBase

from .console import Console


class ConsoleSpawn(SpawnBase):
    """A pexpect child whose output is `console`'s and whose input is typed on it (the
    console must have been opened with `write=True` to send). Closing it closes the console."""

    def __init__(self, console: Console, **options: Any):
        super().__init__(**options)
        self.console = console
        self.name = f"<usbhttpd console {console.device.id} interface {console.interface}>"
        self.linesep = "\r" if self.encoding else b"\r"  # what a board's shell takes as Enter

    def read_nonblocking(self, size: int = 1, timeout: Any = -1) -> Any:
        """What came, up to `size`, once at least a byte did; TIMEOUT after `timeout` seconds
        (-1: the child's timeout, None: none) with nothing; EOF once the console is gone."""
        if timeout == -1:
            timeout = self.timeout
        data = self.console.read(1, timeout=timeout)
        if data:
            data += self.console.read(size - 1, timeout=0)  # the rest of what came: no wait
        elif self.console.closed is not None:
            self.flag_eof = True
            raise EOF(f"the console is gone: {self.console.closed}")
        else:
            raise TIMEOUT(f"nothing from the console within {timeout} s")
        text = self._decoder.decode(data, final=False)
        self._log(text, "read")
        return text

    def send(self, s: Any) -> int:
        """Types `s` (encoded as the child's encoding says); the bytes typed."""
        s = self._coerce_send_string(s)
        self._log(s, "send")
        return self.console.write(self._encoder.encode(s, final=False))

    def sendline(self, s: Any = "") -> int:
        """Types `s` and the line ending (a carriage return, as a terminal's Enter)."""
        return self.send(self._coerce_send_string(s) + self.linesep)

    def isalive(self) -> bool:
        return self.console.closed is None

    def close(self) -> None:
        self.console.close()
        self.closed = True


def spawn(console: Console, **options: Any) -> ConsoleSpawn:
    """A pexpect child on `console`; `options` as pexpect's (timeout, encoding, logfile,
    searchwindowsize, maxread, codec_errors)."""
    return ConsoleSpawn(console, **options)
