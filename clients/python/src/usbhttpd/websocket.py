"""A WebSocket to the daemon from Python (wsproto's, sans-I/O and maintained, over a plain
socket or TLS through `ssl`), shared by the URB channel and consoles.

No thread of its own: whoever waits for something reads the socket (one waiter at a time, the
others wait for it) and hands every binary message to `_on_message`, so a message sent and
awaited on one thread costs no thread switch.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Callable, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Message, Ping, RejectConnection,
                            RejectData, Request, TextMessage)

from .connection import tls_context
from .errors import ProblemError, UsbHttpdError, problem_from_parts


class WebSocketClient:
    """A WebSocket to `target` (a path under the daemon at `url`) offering `subprotocol`.
    Subclasses take its binary messages in `_on_message`."""

    def __init__(self, url: str, target: str, subprotocol: str, headers: Sequence[Tuple[bytes, bytes]] = (),
                 verify: Union[bool, str] = True, timeout: float = 30.0, what: str = "the WebSocket"):
        parts = urlsplit(url)
        host, https = parts.hostname or "127.0.0.1", parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        self.timeout = timeout
        self._what = what
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = tls_context(verify).wrap_socket(raw, server_hostname=host) if https else raw
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._send_lock = threading.Lock()
        self._state = threading.Condition()
        self._reading = False
        self._closed: Optional[str] = None
        self._partial: List[bytes] = []
        self._text: List[str] = []
        netloc = f"{host}:{port}" if parts.port else host
        self._sock.sendall(self._ws.send(Request(host=netloc, target=parts.path.rstrip("/") + target,
                                                 subprotocols=[subprotocol], extra_headers=list(headers))))
        self._handshake()
        self._process_events()  # what came with the handshake's answer

    def _handshake(self) -> None:
        status, body = 0, b""
        while True:
            data = self._sock.recv(65536)
            if not data:
                raise UsbHttpdError(f"the daemon closed the connection during {self._what}'s handshake")
            self._ws.receive_data(data)
            for event in self._ws.events():
                if isinstance(event, AcceptConnection):
                    return
                if isinstance(event, RejectConnection):
                    status = event.status_code
                    if not event.has_body:
                        raise rejected(status, body)
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished:
                        raise rejected(status, body)

    @property
    def closed(self) -> Optional[str]:
        """Why it is closed, None while open."""
        return self._closed

    def close(self) -> None:
        if self._closed is None:
            self._closed = "closed by the client"
            try:
                with self._send_lock:
                    self._sock.sendall(self._ws.send(CloseConnection(code=1000)))
            except (OSError, Exception):
                pass
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _on_message(self, message: bytes) -> None:
        raise NotImplementedError

    def _on_text(self, text: str) -> None:
        """A text message: none, unless the protocol says (a console's notices)."""
        self._closed = "the daemon sent a text message"

    def _send(self, message: bytes) -> None:
        if self._closed is not None:
            raise UsbHttpdError(f"{self._what} is closed ({self._closed})")
        data = self._ws.send(Message(data=message))
        with self._send_lock:
            self._sock.sendall(data)

    def _wait(self, done: Callable[[], bool], timeout: Optional[float], closed_ok: bool = False) -> None:
        """Returns once `done()`: reads the socket meanwhile unless another waiter does. A
        closed socket raises, unless `closed_ok` (then it returns)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            if self._closed is not None:
                if closed_ok:
                    return
                raise UsbHttpdError(f"{self._what} is closed ({self._closed})")
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"no answer on {self._what} in time")
            with self._state:
                if self._reading:
                    self._state.wait(left)
                    continue
                self._reading = True
            try:
                self._receive(left)
            finally:
                with self._state:
                    self._reading = False
                    self._state.notify_all()

    def _receive(self, timeout: Optional[float]) -> None:
        self._sock.settimeout(timeout)
        try:
            data = self._sock.recv(1 << 20)
        except socket.timeout:
            return
        except OSError as error:
            self._closed = f"the connection failed: {error}"
            return
        if not data:
            self._closed = "the daemon closed the connection"
            return
        self._ws.receive_data(data)
        self._process_events()

    def _process_events(self) -> None:
        for event in self._ws.events():
            if isinstance(event, BytesMessage):
                self._partial.append(event.data)
                if event.message_finished:
                    message = b"".join(self._partial)
                    self._partial = []
                    self._on_message(message)
            elif isinstance(event, Ping):
                with self._send_lock:
                    self._sock.sendall(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self._closed = f"closed by the daemon: {event.code} {event.reason or ''}".strip()
                try:
                    with self._send_lock:
                        self._sock.sendall(self._ws.send(event.response()))
                except Exception:
                    pass
            elif isinstance(event, TextMessage):
                self._text.append(event.data)
                if event.message_finished:
                    text = "".join(self._text)
                    self._text = []
                    self._on_text(text)



def rejected(status: int, body: bytes) -> ProblemError:
    """The problem a refused handshake answered with."""
    return problem_from_parts(status, "", body)
