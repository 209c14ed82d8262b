"""Many benches at once, with the cluster's DNS as the registry: a headless Service's name
resolves to every daemon (deploy/kubernetes), or a list of URLs is given.

    from usbhttpd.fleet import Fleet
    fleet = Fleet.from_service("usbhttpd.usbhttpd.svc", port=8080, scheme="https", token="…")
    for device in fleet.devices():        # each with its `node` and the `url` of its daemon
        print(device["node"], device["id"], device["serial"])
    device = fleet.find(serial="ABC123")  # the one device with that serial, wherever it is
    with device.lease(ttl_ms=60000):
        ...

Daemons that do not answer are reported (`Fleet.unreachable`), not fatal.
"""
from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Union

from .client import Client, Device
from .errors import ProblemError, UsbHttpdError


class Fleet:
    """The daemons at `urls`, asked together."""

    def __init__(self, urls: List[str], token: Optional[str] = None, verify: Union[bool, str] = True,
                 timeout: float = 10.0, allow_plain_token: bool = False):
        self.clients = [Client(url, token=token, verify=verify, timeout=timeout, allow_plain_token=allow_plain_token)
                        for url in urls]
        # URL → why its daemon did not answer the last call that asked it.
        self.unreachable: Dict[str, str] = {}

    @classmethod
    def from_service(cls, name: str, port: int = 8080, scheme: str = "https", **options: Any) -> "Fleet":
        """Every address `name` resolves to (a headless Service: one per daemon); https by
        default, as the fleet's daemons serve with TLS (deploy/kubernetes)."""
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)})
        urls = [f"{scheme}://{'[' + a + ']' if ':' in a else a}:{port}" for a in addresses]
        return cls(urls, **options)

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def devices(self, **filters: Any) -> List[dict]:
        """Every daemon's devices (filtered as GET /v1/devices filters), each with `url`: the
        daemon that has it. Daemons that fail are in `unreachable`."""
        def listing(client: Client):
            try:
                return client, client.devices(**filters), None
            except (UsbHttpdError, OSError) as error:
                return client, [], error
            except Exception as error:  # httpx's transport errors, TLS errors
                return client, [], error

        found: List[dict] = []
        self.unreachable = {}
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(self.clients)))) as pool:
            for client, devices, error in pool.map(listing, self.clients):
                if error is not None:
                    self.unreachable[client.url] = f"{type(error).__name__}: {error}"
                for device in devices:
                    found.append(dict(device, url=client.url))
        return found

    def find(self, **filters: Any) -> Device:
        """The one device matching `filters` in the whole fleet (e.g. serial=…), as a `Device`
        pinned to its instance; LookupError when none or several match."""
        matches = self.devices(**filters)
        if len(matches) != 1:
            where = ", ".join(f"{m.get('node') or m['url']}:{m['id']}" for m in matches) or "nowhere"
            unreachable = f" ({len(self.unreachable)} daemons did not answer)" if self.unreachable else ""
            raise LookupError(f"{len(matches)} devices match {filters}: {where}{unreachable}")
        match = matches[0]
        client = next(c for c in self.clients if c.url == match["url"])
        return client.device(match["id"], address=match.get("address"))

    def lease(self, interface: Optional[int] = None, ttl_ms: int = 30000, **filters: Any):
        """Finds the one device matching `filters` and takes a lease on it: (device, lease).
        Another client racing for it gets ProblemError `lease-held` naming the holder."""
        device = self.find(**filters)
        try:
            return device, device.lease(interface=interface, ttl_ms=ttl_ms)
        except ProblemError:
            device.close()
            raise
