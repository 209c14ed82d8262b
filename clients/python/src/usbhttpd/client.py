"""A client for the whole usbhttpd API, on httpx.

    from usbhttpd import Client
    with Client("http://bench-7:8080", token="…") as usb:
        dev = usb.device("serial:ABC123")
        dev.claim(0)
        dev.control(0xC0, 0x01, length=64)
        for chunk in dev.stream_in(0x81, max_bytes=1 << 20):
            ...

Problems become `ProblemError`s carrying the daemon's `code`. Each `Device` keeps one
keep-alive connection of its own (a second opens only while a stream holds the first), and
carries its control, bulk and interrupt transfers over the daemon's URB channel (a WebSocket, see
`usbhttpd.urb`) when the daemon offers it: a transfer is then one small message each way
instead of an HTTP request. Claims and settings stay REST requests, whose claims the daemon
holds until released whoever made them (a channel gives back the claims made on it when it
closes). `dev.channel()` gives the channel itself, for many transfers in flight.
"""
from __future__ import annotations

import base64
import ipaddress
import threading
import time
from typing import IO, Any, Dict, Iterable, Iterator, Optional, Union
from urllib.parse import urlsplit

import httpx

from . import descriptors, urb
from .console import Console
from .connection import Connection, tls_context
from .errors import ProblemError, StreamEnded, UsbHttpdError, WaitDeadline, problem_from
from .events import Event, EventParser

Body = Union[bytes, bytearray, memoryview, Iterable[bytes], IO[bytes]]


def _plain_to_another_host(url: str) -> bool:
    """Whether `url` is plain HTTP to a host other than this machine (loopback)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: it may resolve anywhere


class Client:
    """The daemon at `url`. `token`: a bearer token; `verify`: TLS verification (a CA
    bundle's path, or False); `timeout`: seconds to wait for an answer beyond a transfer's
    own timeout. A token is never sent over plain HTTP to another machine (anyone on the way
    could read and replay it) unless `allow_plain_token=True` says the network is trusted."""

    def __init__(self, url: str = "http://127.0.0.1:8080", token: Optional[str] = None,
                 verify: Union[bool, str] = True, timeout: float = 30.0, channel: bool = True,
                 allow_plain_token: bool = False):
        if token and not allow_plain_token and _plain_to_another_host(url):
            raise UsbHttpdError(
                f"a token over plain HTTP to {url} could be read on the way: use https://, or pass "
                "allow_plain_token=True on a network you trust")
        self.url = url.rstrip("/")
        self.token = token
        self.verify = verify
        self.timeout = timeout
        # Devices carry transfers and operations over the URB channel when the daemon has it.
        self.use_channel = channel
        self._http = self.connection()

    def _auth(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def connection(self, keepalive: int = 1) -> httpx.Client:
        """A new httpx client for the daemon (keep-alive, token, TLS settings)."""
        return httpx.Client(
            base_url=self.url, headers=self._auth(), verify=tls_context(self.verify),
            timeout=httpx.Timeout(self.timeout, connect=10.0),
            limits=httpx.Limits(max_keepalive_connections=keepalive))

    def single_requests(self) -> Connection:
        """A keep-alive connection for one device's single requests (see connection.py)."""
        return Connection(self.url, self._auth(), self.verify, self.timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # Devices

    def devices(self, **filters: Any) -> list:
        """GET /v1/devices: summaries, filtered by vendor_id, product_id, class, serial, id."""
        return call(self._http, "GET", "/v1/devices", params=_params(filters)).json()["devices"]

    def device(self, id: str, address: Optional[int] = None) -> "Device":
        """Device `id` ("1-2", "serial:ABC"); `address` pins the instance (410
        device-reenumerated once it enumerates again)."""
        return Device(self, id, address)

    def wait(self, timeout_ms: int = 30000, absent: bool = False, **filters: Any) -> list:
        """GET /v1/wait: the matching devices once one is present (or, `absent`, none is)."""
        params = _params(filters)
        params["timeout_ms"] = str(timeout_ms)
        if absent:
            params["for"] = "absent"
        timeout = httpx.Timeout(self.timeout + timeout_ms / 1000, connect=10.0)
        deadline = time.monotonic() + self.timeout + timeout_ms / 1000
        return call(self._http, "GET", "/v1/wait", params=params, timeout=timeout, deadline=deadline).json()["devices"]

    def events(self, present: bool = False, last_event_id: Optional[str] = None,
               reconnect: bool = True, **filters: Any) -> Iterator[Event]:
        """GET /v1/events as an endless iterator of `Event`s. A dropped connection is
        resumed with `Last-Event-ID`, so no change is missed; a `resync` event says the daemon
        could not resume (present events follow)."""
        parser = EventParser()
        parser.last_id = last_event_id
        params = _params(filters)
        if present:
            params["present"] = "true"
        http = self.connection()
        try:
            while True:
                headers = {"Last-Event-ID": parser.last_id} if parser.last_id else {}
                try:
                    with http.stream("GET", "/v1/events", params=params, headers=headers,
                                     timeout=httpx.Timeout(None, connect=10.0)) as response:
                        _check(response)
                        params.pop("present", None)
                        yield from parser.feed(response.iter_lines())
                except (httpx.TransportError, httpx.RemoteProtocolError):
                    if not reconnect:
                        raise
                time.sleep((parser.retry_ms or 1000) / 1000)
        finally:
            http.close()

    # Leases

    def lease_by_id(self, lease_id: str, token: str) -> "Lease":
        return Lease(self, lease_id, token, ttl_ms=30000, device=None)


class Device:
    """One device of the daemon, with a keep-alive connection of its own."""

    def __init__(self, client: Client, id: str, address: Optional[int] = None):
        self.client = client
        self.id = id
        self.address = address
        self.lease_token: Optional[str] = None
        self._connection = client.single_requests()
        self._path = f"/v1/devices/{id}"
        self._channel: Optional[urb.Channel] = None
        self._channel_lease: Optional[str] = None
        self._no_channel = not client.use_channel
        self._endpoints: Optional[Dict[int, Any]] = None
        self._kept: Dict[int, bytes] = {}

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self._connection.close()

    def channel(self) -> urb.Channel:
        """The device's URB channel (opened now if it is not, under the device's lease token):
        many transfers in flight, each a future (see `usbhttpd.urb`)."""
        if self._channel is not None and self._channel_lease != self.lease_token:
            # The channel's claims stay: it acts under the new lease from its next message on.
            self._channel.use_lease(self.lease_token)
            self._channel_lease = self.lease_token
        if self._channel is None:
            self._channel = urb.Channel(self.client.url, self.id, token=self.client.token, verify=self.client.verify,
                                        lease=self.lease_token, address=self.address, timeout=self.client.timeout)
            self._channel_lease = self.lease_token
        return self._channel

    def console(self, interface: int = 0, start: Union[str, int] = "end", write: bool = True) -> "Console":
        """The device's serial console on USB interface `interface` (see `usbhttpd.console`):
        its output from `start` ("start" for everything kept, the boot log included), and with
        `write` its input."""
        return Console(self, interface, start=start, write=write)

    def _over_channel(self) -> Optional[urb.Channel]:
        """The channel for single transfers and operations, or None: REST (the client was told
        not to, or the daemon has no channel: an older daemon answers its route 404 not-found)."""
        if self._no_channel:
            return None
        try:
            return self.channel()
        except ProblemError as error:
            if error.code != "not-found":
                raise
            self._no_channel = True
            return None

    def _endpoint(self, address: int):
        """The endpoint's descriptor in any alternate setting (for its type and packet size)."""
        if self._endpoints is None:
            _, configurations = descriptors.parse(self.raw_descriptors())
            self._endpoints = {}
            for configuration in configurations:
                for interface in configuration.interfaces:
                    for alt in interface:
                        for endpoint in alt.endpoints:
                            self._endpoints.setdefault(endpoint.bEndpointAddress, endpoint)
        return self._endpoints.get(address)

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _headers(self) -> Dict[str, str]:
        headers = {}
        if self.address is not None:
            headers["X-USB-Device-Address"] = str(self.address)
        if self.lease_token:
            headers["X-USB-Lease"] = self.lease_token
        return headers

    def _call(self, method: str, path: str = "", params: Optional[dict] = None,
              content: Optional[bytes] = None, timeout_ms: Optional[int] = None,
              headers: Optional[dict] = None) -> Any:
        """One request on the device's keep-alive connection; an error answer raises its problem.
        `timeout_ms`: the transfer's, which the wait for the answer outlasts (0: no limit)."""
        timeout: Optional[float] = -1.0
        if timeout_ms is not None:
            timeout = None if timeout_ms == 0 else self.client.timeout + timeout_ms / 1000
        all_headers = self._headers()
        all_headers.update(headers or {})
        answer = self._connection.request(method, self._path + path, params=params, body=content or b"",
                                          headers=all_headers, timeout=timeout)
        _check(answer)
        return answer

    # What the device is

    def wait_back(self, timeout_ms: int = 30000, claim: Iterable[int] = (), **filters: Any) -> "Device":
        """After a reset, a DFU detach or a firmware update: waits for the device on this port
        to enumerate again (at another address than this instance's; `filters` such as
        product_id=… or class_=0xfe say what it must come back as), claims the interfaces in
        `claim` on it that its new descriptors have, and returns it as a new `Device` (with
        this one's lease token). `claims` on the result: what was claimed and what not."""
        params = _params({("class" if k == "class_" else k): v for k, v in filters.items()})
        params.update(id=self.id, timeout_ms=str(timeout_ms))
        if self.address is not None:
            params["not_address"] = str(self.address)
        numbers = ",".join(str(n) for n in claim)
        if numbers:
            params["claim"] = numbers
        headers = {"X-USB-Lease": self.lease_token} if self.lease_token else {}
        timeout = httpx.Timeout(self.client.timeout + timeout_ms / 1000, connect=10.0)
        # Claiming is a change: the daemon takes it as a POST only (transfer scope).
        method = "POST" if numbers else "GET"
        deadline = time.monotonic() + self.client.timeout + timeout_ms / 1000
        answer = call(self.client._http, method, "/v1/wait", params=params, headers=headers, timeout=timeout,
                      deadline=deadline).json()
        (summary,) = answer["devices"]
        back = Device(self.client, self.id, summary["address"])
        back.lease_token = self.lease_token
        back.summary = summary
        back.claims = answer.get("claims", {"claimed": [], "not_claimed": []})
        return back

    def describe(self) -> dict:
        """GET /v1/devices/{id}: descriptors, strings, each interface's kernel driver."""
        return self._call("GET").json()

    def raw_descriptors(self) -> bytes:
        """The device descriptor then every whole configuration descriptor."""
        return self._call("GET", "/descriptors/raw").content

    def state(self) -> dict:
        """GET …/claims: the active configuration and the claims."""
        return self._call("GET", "/claims").json()

    # Claims and settings

    def claim(self, interface: int, detach: bool = True) -> dict:
        """Claims `interface`; a bound kernel driver is detached unless `detach` is False
        (then 409 device-busy)."""
        self._kept.clear()
        params = None if detach else {"detach": "false"}
        return self._call("POST", f"/interfaces/{interface}/claim", params=params).json()

    def release(self, interface: int) -> dict:
        self._kept.clear()
        return self._call("DELETE", f"/interfaces/{interface}/claim").json()

    def set_alt_setting(self, interface: int, alt_setting: int) -> dict:
        self._kept.clear()
        return self._call("PUT", f"/interfaces/{interface}/alt-setting",
                          params={"value": str(alt_setting)}).json()

    def set_configuration(self, value: int) -> dict:
        self._kept.clear()
        return self._call("PUT", "/configuration", params={"value": str(value)}).json()

    def reset(self) -> bool:
        """Resets the port; True when the device came back as a new device (re-enumerated)."""
        self._kept.clear()
        return bool(self._call("POST", "/reset").json().get("reenumerated"))

    # Transfers

    def control(self, request_type: int, request: int, value: int = 0, index: int = 0,
                data: Optional[bytes] = None, length: int = 0,
                timeout_ms: Optional[int] = None) -> Union[bytes, int]:
        """A control transfer: IN (bit 7 of `request_type`) returns up to `length` bytes; OUT
        sends `data` and returns the bytes sent."""
        channel = self._over_channel()
        if channel is not None:
            what = f"Control request 0x{request:x} to {self.id}"
            done = channel.control(request_type, request, value, index, bytes(data or b""), length,
                                   self._timeout(timeout_ms)).result()
            _raise(done, what)
            return done.data if request_type & 0x80 else done.actual_length
        params = {"request_type": str(request_type), "request": str(request),
                  "value": str(value), "index": str(index)}
        if timeout_ms is not None:
            params["timeout_ms"] = str(timeout_ms)
        if request_type & 0x80:
            params["length"] = str(length)
            return self._call("POST", "/control", params=params, timeout_ms=timeout_ms).content
        answer = self._call("POST", "/control", params=params, content=bytes(data or b""),
                            timeout_ms=timeout_ms)
        return int(answer.json()["actual_length"])

    def read(self, endpoint: int, length: int, timeout_ms: Optional[int] = None) -> bytes:
        """One bulk or interrupt IN transfer of up to `length` bytes. As the REST API does, the
        transfer asks for whole packets and what comes beyond `length` is kept for the next read,
        as are the bytes of a read that timed out."""
        channel = self._over_channel()
        if channel is not None:
            return self._read_over(channel, endpoint | 0x80, length, timeout_ms)
        params = {"length": str(length)}
        if timeout_ms is not None:
            params["timeout_ms"] = str(timeout_ms)
        return self._call("GET", f"/endpoints/{endpoint}/data", params=params, timeout_ms=timeout_ms).content

    def write(self, endpoint: int, data: bytes, timeout_ms: Optional[int] = None,
              zlp: bool = False) -> int:
        """One bulk or interrupt OUT transfer; returns the bytes sent."""
        channel = self._over_channel()
        if channel is not None:
            done = channel.write(endpoint, bytes(data), self._timeout(timeout_ms), self._type(endpoint), zlp).result()
            _raise(done, f"Writing {len(data)} bytes to endpoint 0x{endpoint:02x} of {self.id}")
            return done.actual_length
        params = {"zlp": "true"} if zlp else {}
        if timeout_ms is not None:
            params["timeout_ms"] = str(timeout_ms)
        answer = self._call("POST", f"/endpoints/{endpoint}/data", params=params, content=bytes(data),
                            timeout_ms=timeout_ms)
        return int(answer.json()["actual_length"])

    def clear_halt(self, endpoint: int) -> None:
        self._kept.pop(endpoint, None)
        self._call("POST", f"/endpoints/{endpoint}/clear-halt")

    def _timeout(self, timeout_ms: Optional[int]) -> int:
        """A transfer's timeout on the channel: the daemon's default (5 s) when none is given, as REST."""
        return 5000 if timeout_ms is None else timeout_ms

    def _type(self, endpoint: int) -> int:
        descriptor = self._endpoint(endpoint)
        return urb.INTERRUPT if descriptor is not None and descriptor.bmAttributes & 3 == 3 else urb.BULK

    def _read_over(self, channel: urb.Channel, endpoint: int, length: int, timeout_ms: Optional[int]) -> bytes:
        kept = self._kept.pop(endpoint, b"")
        if kept:
            if len(kept) > length:
                self._kept[endpoint] = kept[length:]
            return kept[:length]
        descriptor = self._endpoint(endpoint)
        packet = max((descriptor.wMaxPacketSize & 0x7FF) if descriptor is not None else 1, 1)
        asked = (length + packet - 1) // packet * packet
        what = f"Reading {length} bytes from endpoint 0x{endpoint:02x} of {self.id}"
        done = channel.read(endpoint, asked, self._timeout(timeout_ms), self._type(endpoint)).result()
        if done.status in (urb.TIMED_OUT, urb.CANCELLED) and done.data:
            self._kept[endpoint] = done.data  # what came is not lost: the next read gets it
        _raise(done, what)
        if len(done.data) > length:
            self._kept[endpoint] = done.data[length:]
        return done.data[:length]

    def iso_read(self, endpoint: int, packets: Optional[int] = None, packet_size: Optional[int] = None,
                 packet_lengths: Optional[Iterable[int]] = None, timeout_ms: Optional[int] = None) -> dict:
        """One isochronous IN transfer: the answer's packets, and `data` (the bytes, packed)."""
        params = _iso_params(packets, packet_size, packet_lengths, timeout_ms)
        answer = self._call("GET", f"/endpoints/{endpoint}/iso", params=params, timeout_ms=timeout_ms).json()
        answer["data"] = base64.b64decode(answer.get("data_base64") or "")
        return answer

    def iso_write(self, endpoint: int, data: bytes, packet_size: Optional[int] = None,
                  packet_lengths: Optional[Iterable[int]] = None, timeout_ms: Optional[int] = None) -> dict:
        params = _iso_params(None, packet_size, packet_lengths, timeout_ms)
        return self._call("POST", f"/endpoints/{endpoint}/iso", params=params, content=bytes(data),
                          timeout_ms=timeout_ms).json()

    # Streams

    def stream_in(self, endpoint: int, max_bytes: Optional[int] = None, duration_ms: Optional[int] = None,
                  transfers: Optional[int] = None, transfer_size: Optional[int] = None,
                  timeout_ms: Optional[int] = None, chunk_size: int = 65536) -> "InStream":
        """GET …/stream: the endpoint's data as it comes, never held whole in memory; iterate
        over it (chunks of bytes) or `read()` it like a file."""
        params = {}
        for name, value in (("max_bytes", max_bytes), ("duration_ms", duration_ms), ("transfers", transfers),
                            ("transfer_size", transfer_size), ("timeout_ms", timeout_ms)):
            if value is not None:
                params[name] = str(value)
        return InStream(self, f"/endpoints/{endpoint}/stream", params, chunk_size)

    def stream_out(self, endpoint: int, source: Body, transfers: Optional[int] = None,
                   transfer_size: Optional[int] = None, timeout_ms: Optional[int] = None,
                   zlp: bool = False) -> dict:
        """POST …/stream: sends `source` (bytes, an iterable of bytes, or a binary file) as it
        is read, in chunked encoding; returns the daemon's summary of what went out."""
        params = {}
        for name, value in (("transfers", transfers), ("transfer_size", transfer_size), ("timeout_ms", timeout_ms)):
            if value is not None:
                params[name] = str(value)
        if zlp:
            params["zlp"] = "true"
        content = _chunks(source) if not isinstance(source, (bytes, bytearray, memoryview)) else bytes(source)
        http = self.client.connection()
        try:
            headers = self._headers()
            return call(http, "POST", self._path + f"/endpoints/{endpoint}/stream", params=params,
                        content=content, headers=headers, timeout=httpx.Timeout(None, connect=10.0)).json()
        finally:
            http.close()

    # Leases

    def lease(self, interface: Optional[int] = None, ttl_ms: int = 30000,
              grace_ms: Optional[int] = None) -> "Lease":
        """Takes a lease on the device (or one interface) and uses it for this device's
        requests; renewed in the background every third of `ttl_ms`. Use with `with`. It is on
        the port: it holds while the device enumerates again, up to `grace_ms` away (the
        daemon's default: 60 s)."""
        params = {"ttl_ms": str(ttl_ms)}
        if grace_ms is not None:
            params["grace_ms"] = str(grace_ms)
        if interface is not None:
            params["interface"] = str(interface)
        answer = self._call("POST", "/leases", params=params).json()
        lease = Lease(self.client, answer["id"], answer["token"], ttl_ms, device=self, details=answer)
        self.lease_token = lease.token
        lease.start()
        return lease


class Lease:
    """A lease, renewed by a background thread until released (or the `with` block ends)."""

    def __init__(self, client: Client, id: str, token: str, ttl_ms: int, device: Optional[Device],
                 details: Optional[dict] = None):
        self.client, self.id, self.token, self.ttl_ms, self.device = client, id, token, ttl_ms, device
        self.details = details or {}
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.id}", daemon=True)
        self._thread.start()

    def renew(self) -> dict:
        return call(self.client._http, "PUT", f"/v1/leases/{self.id}", params={"ttl_ms": str(self.ttl_ms)},
                    headers={"X-USB-Lease": self.token}).json()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                self.renew()
            except UsbHttpdError as error:  # expired or ended by an admin: stop, keep the reason
                self.error = error
                return
            except httpx.TransportError as error:  # try again at the next turn
                self.error = error

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        try:
            call(self.client._http, "DELETE", f"/v1/leases/{self.id}", headers={"X-USB-Lease": self.token})
        finally:
            if self.device is not None and self.device.lease_token == self.token:
                self.device.lease_token = None

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class InStream:
    """A streamed IN body: an iterator of chunks, and a file-like `read()`. Closing it (or
    leaving its `with` block) hangs up, which cancels the stream's transfers."""

    def __init__(self, device: Device, path: str, params: dict, chunk_size: int):
        self._http = device.client.connection()
        request = self._http.build_request("GET", device._path + path, params=params, headers=device._headers(),
                                           timeout=httpx.Timeout(None, connect=10.0))
        self._response = self._http.send(request, stream=True)
        if self._response.status_code >= 400:
            self._response.read()
            error = problem_from(self._response)
            self.close()
            raise error
        self.headers = self._response.headers
        self._chunks = self._response.iter_bytes(chunk_size)
        self._pending = b""
        self.bytes_read = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._pending:
            chunk, self._pending = self._pending, b""
        else:
            try:
                chunk = next(self._chunks)
            except httpx.RemoteProtocolError as error:
                raise StreamEnded(f"the stream ended early after {self.bytes_read} bytes: {error}") from error
        self.bytes_read += len(chunk)
        return chunk

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left for -1); b"" at the end."""
        parts, have = [], 0
        while size < 0 or have < size:
            try:
                chunk = self._pending or next(self._chunks)
            except StopIteration:
                break
            except httpx.RemoteProtocolError as error:
                raise StreamEnded(f"the stream ended early after {self.bytes_read} bytes: {error}") from error
            self._pending = b""
            if size >= 0 and have + len(chunk) > size:
                chunk, self._pending = chunk[: size - have], chunk[size - have:]
            parts.append(chunk)
            have += len(chunk)
        self.bytes_read += have
        return b"".join(parts)

    def close(self) -> None:
        self._response.close()
        self._http.close()

    def __enter__(self) -> "InStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def call(http: httpx.Client, method: str, path: str, params: Optional[dict] = None, content: Any = None,
         headers: Optional[dict] = None, timeout: Any = None, deadline: Optional[float] = None) -> httpx.Response:
    """One request; an error answer raises its problem. With `deadline` (time.monotonic()),
    the whole answer must have come by then: httpx's timeouts bound each read, so a server that
    sends a byte now and then would otherwise hold the caller for ever."""
    kwargs: Dict[str, Any] = {"params": params, "content": content, "headers": headers}
    if timeout is not None:
        kwargs["timeout"] = timeout
    if deadline is None:
        response = http.request(method, path, **kwargs)
        _check(response)
        return response
    with http.stream(method, path, **kwargs) as streamed:
        body = bytearray()
        for piece in streamed.iter_bytes():
            body += piece
            if time.monotonic() > deadline:
                raise WaitDeadline(f"{method} {path}: no whole answer by the deadline")
        response = httpx.Response(streamed.status_code, headers=streamed.headers, content=bytes(body),
                                  request=streamed.request)
    _check(response)
    return response


def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        response.read()
        raise problem_from(response)


def _raise(done: "urb.Completion", what: str) -> None:
    """Raises the REST API's problem for a transfer that did not complete."""
    problem = done.problem(what)
    if problem is not None:
        raise problem


def _params(filters: Dict[str, Any]) -> Dict[str, str]:
    return {name: str(value) for name, value in filters.items() if value is not None}


def _iso_params(packets: Optional[int], packet_size: Optional[int], packet_lengths: Optional[Iterable[int]],
                timeout_ms: Optional[int]) -> Dict[str, str]:
    params = {}
    if packets is not None:
        params["packets"] = str(packets)
    if packet_size is not None:
        params["packet_size"] = str(packet_size)
    if packet_lengths is not None:
        params["packet_lengths"] = ",".join(str(n) for n in packet_lengths)
    if timeout_ms is not None:
        params["timeout_ms"] = str(timeout_ms)
    return params


def _chunks(source: Any, size: int = 65536) -> Iterator[bytes]:
    """Pieces of `source` (a binary file or an iterable of bytes), read as they are sent."""
    if hasattr(source, "read"):
        while True:
            piece = source.read(size)
            if not piece:
                return
            yield bytes(piece)
    else:
        for piece in source:
            if piece:
                yield bytes(piece)
