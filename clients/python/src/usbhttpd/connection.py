"""One keep-alive connection for a device's single requests (transfers, claims, settings), on
Python's own http.client.

Why not httpx here as everywhere else: a transfer is one small request and one small answer,
and what it costs is the HTTP library's own work. Measured against the daemon on one
keep-alive connection (2000 requests, medians, this repository's host): httpx 411 µs a
request, urllib3 201 µs, http.client 116 µs, the daemon's own share about 90 µs; in the lab's
emulated guest httpx took 8.8 ms for /healthz where http.client took 2.2 ms. Streams, events
and leases, where a request lasts long, stay on httpx.
"""
from __future__ import annotations

import http.client
import json
import ssl
from typing import Any, Dict, Optional, Union
from urllib.parse import urlencode, urlsplit

# A keep-alive connection the daemon closed while it sat idle fails on its next use in one of
# these ways, before the daemon read anything of the request: it is sent again, once, on a new one.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest)


def tls_context(verify: Union[bool, str]) -> ssl.SSLContext:
    """The TLS settings for `verify`: True (the system's CAs), a CA bundle's path, or False
    (no verification)."""
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Answer:
    """The parts of an answer the client reads (the names httpx's Response has for them)."""

    def __init__(self, status: int, reason: str, headers: http.client.HTTPMessage, content: bytes):
        self.status_code = status
        self.reason_phrase = reason
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def read(self) -> bytes:
        return self.content


class Connection:
    """A keep-alive HTTP/1.1 connection to the daemon at `url`, opened when first used and
    again after the daemon closed it."""

    def __init__(self, url: str, headers: Dict[str, str], verify: Union[bool, str], timeout: float):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.base = parts.path.rstrip("/")
        self.headers = dict(headers)
        self.timeout = timeout
        self.context = tls_context(verify) if self.https else None
        self._connection: Optional[http.client.HTTPConnection] = None
        self._used = False

    def _open(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self.https:
                self._connection = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self.context)
            else:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._used = False
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(self, method: str, path: str, params: Optional[Dict[str, str]] = None, body: bytes = b"",
                headers: Optional[Dict[str, str]] = None, timeout: Optional[float] = -1.0) -> Answer:
        """One request and its whole answer. `timeout`: seconds for the answer (None: no limit;
        -1: the connection's)."""
        target = self.base + path + ("?" + urlencode(params) if params else "")
        all_headers = dict(self.headers)
        all_headers.update(headers or {})
        if body or method in ("POST", "PUT"):
            all_headers["Content-Length"] = str(len(body))
        for attempt in (0, 1):
            connection = self._open()
            reused = self._used
            try:
                connection.request(method, target, body=body or None, headers=all_headers)
                if connection.sock is not None:
                    connection.sock.settimeout(self.timeout if timeout == -1.0 else timeout)
                response = connection.getresponse()
                content = response.read()
            except _STALE:
                self.close()
                if attempt == 0 and reused:
                    continue
                raise
            except (OSError, http.client.HTTPException):
                self.close()
                raise
            self._used = True
            if response.will_close:
                self.close()
            return Answer(response.status, response.reason, response.headers, content)
        raise AssertionError("unreachable")

