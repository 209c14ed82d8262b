"""The client without a daemon: descriptors, events, problems and requests, on
httpx.MockTransport (what the requests look like); the lab tests drive the real daemon."""
import email.message
import errno
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import usb.core

import usbhttpd
from usbhttpd import descriptors, pyusb
from usbhttpd.client import Client
from usbhttpd.connection import Answer, Connection
from usbhttpd.events import EventParser

# QEMU's USB keyboard: a device descriptor, then a configuration with a HID descriptor.
KEYBOARD = bytes.fromhex(
    "120100020000004027060100000001020301"  # device: USB 2.0, 0627:0001, strings 1-3
    "0902220001010 0a032".replace(" ", "")  # configuration 1, 34 bytes, 1 interface
    + "090400000103010100"  # interface 0: HID boot keyboard, 1 endpoint
    + "092111010001223f00"  # the HID descriptor
    + "0705810308000a")  # endpoint 0x81, interrupt, 8 bytes, every 10 frames


def test_descriptors_are_grouped_as_libusb_groups_them():
    device, configurations = descriptors.parse(KEYBOARD)
    assert (device.idVendor, device.idProduct, device.bNumConfigurations) == (0x0627, 0x0001, 1)
    (configuration,) = configurations
    assert configuration.bConfigurationValue == 1 and configuration.extra_descriptors == []
    (interface,) = configuration.interfaces
    (alt,) = interface
    assert alt.bInterfaceClass == 3
    assert bytes(alt.extra_descriptors).hex() == "092111010001223f00"  # the HID descriptor
    (endpoint,) = alt.endpoints
    assert (endpoint.bEndpointAddress, endpoint.wMaxPacketSize, endpoint.bInterval) == (0x81, 8, 10)


def test_alternate_settings_of_one_interface_are_one_interface():
    config = bytes.fromhex(
        "0902320002010 0c032".replace(" ", "")  # 50 bytes, 2 interfaces
        + "0904000000ff000000"  # interface 0
        + "0904010001ff000000" + "07050102000200"  # interface 1, alt 0
        + "0904010101ff000000" + "07058102000201")  # interface 1, alt 1
    parsed = descriptors.parse_configuration(config)
    assert [[alt.bAlternateSetting for alt in interface] for interface in parsed.interfaces] == [[0], [0, 1]]


def test_a_truncated_descriptor_is_an_error():
    with pytest.raises(ValueError):
        descriptors.parse(b"\x12\x01")


def test_events_are_parsed_and_the_last_id_kept():
    parser = EventParser()
    lines = ["retry: 1000", ": keep-alive", "", "id: run-7", "event: added",
             'data: {"type": "added", "device": {"id": "1-1"}}', "", "data: plain", ""]
    events = list(parser.feed(lines))
    assert [event.type for event in events] == ["added", "message"]
    assert events[0].device == {"id": "1-1"} and events[0].id == "run-7"
    assert parser.last_id == "run-7" and parser.retry_ms == 1000


def problem(status, code, **headers):
    body = {"type": f"urn:usbhttpd:problem:{code}", "title": "t", "status": status, "detail": "d",
            "code": code, "instance": "/", "request_id": "r"}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json", **headers})


class FakeConnection:
    """A device's connection (usbhttpd.connection.Connection) answered by `handler`."""

    def __init__(self, handler):
        self.handler = handler

    def request(self, method, path, params=None, body=b"", headers=None, timeout=-1.0):
        request = httpx.Request(method, "http://daemon.test" + path, params=params, content=body,
                                headers=headers or {})
        response = self.handler(request)
        response.read()
        message = email.message.Message()
        for name, value in response.headers.items():
            message[name] = value
        return Answer(response.status_code, response.reason_phrase, message, response.content)

    def close(self):
        pass


def client_answering(handler):
    """A client whose REST requests `handler` answers (no URB channel: these tests are about
    the REST requests; tests/unit/test_urb.py has the channel)."""
    client = Client("http://daemon.test", channel=False)
    client.connection = lambda keepalive=1: httpx.Client(  # type: ignore[method-assign]
        base_url=client.url, transport=httpx.MockTransport(handler))
    client.single_requests = lambda: FakeConnection(handler)  # type: ignore[method-assign]
    client._http = client.connection()
    return client


def test_problems_become_exceptions_with_their_code():
    client = client_answering(lambda request: problem(504, "usb-timeout", **{"X-USB-Actual-Length": "64",
                                                                          "X-USB-Transfer-Status": "timed_out"}))
    with pytest.raises(usbhttpd.TransferTimeout) as caught:
        client.device("1-1").read(0x81, 128, timeout_ms=100)
    assert caught.value.code == "usb-timeout" and caught.value.actual_length == 64
    assert caught.value.transfer_status == "timed_out"


def test_requests_name_the_instance_and_the_lease():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, content=b"\x01\x02")

    device = client_answering(handler).device("3-1", address=7)
    device.lease_token = "lease-token"
    assert device.control(0xC0, 1, length=2, timeout_ms=0) == b"\x01\x02"
    request = seen[0]
    assert request.url.path == "/v1/devices/3-1/control"
    assert dict(request.url.params) == {"request_type": "192", "request": "1", "value": "0", "index": "0",
                                        "timeout_ms": "0", "length": "2"}
    assert request.headers["X-USB-Device-Address"] == "7" and request.headers["X-USB-Lease"] == "lease-token"


def test_uploads_are_sent_as_they_are_read():
    bodies = []

    def handler(request):
        bodies.append(b"".join(request.stream))
        return httpx.Response(200, json={"status": "completed", "actual_length": 6})

    device = client_answering(handler).device("1-1")
    assert device.stream_out(0x02, iter([b"abc", b"def"]))["actual_length"] == 6
    assert bodies == [b"abcdef"]


@pytest.mark.parametrize("code,status,number,text,kind", [
    ("usb-stall", 409, -9, "Pipe error", usb.core.USBError),
    ("usb-timeout", 504, -7, "Operation timed out", usb.core.USBTimeoutError),
    ("device-busy", 409, -6, "Resource busy", usb.core.USBError),
    ("device-gone", 410, -4, "No such device (it may have been disconnected)", usb.core.USBError),
    ("interface-protected", 403, -3, "Access denied (insufficient permissions)", usb.core.USBError),
    ("usb-overflow", 502, -8, "Overflow", usb.core.USBError),
    ("something-new", 500, -99, "Other error", usb.core.USBError),
])
def test_problems_become_the_errors_pyusb_raises(code, status, number, text, kind):
    error = usbhttpd.ProblemError(status, code, "t", "d", {})
    raised = pyusb.libusb_error(error)
    assert type(raised) is kind
    assert (raised.backend_error_code, raised.strerror) == (number, text)
    assert raised.errno == pyusb.ERRNO[number]


def test_not_supported_is_not_implemented_as_in_pyusb():
    raised = pyusb.libusb_error(usbhttpd.ProblemError(400, "usb-not-supported", "t", "d", {}))
    assert isinstance(raised, NotImplementedError)
    assert pyusb.ERRNO[pyusb.PIPE] == errno.EPIPE


def test_the_backend_finds_devices_by_their_descriptors():
    def handler(request):
        if request.url.path == "/v1/devices":
            return httpx.Response(200, json={"devices": [
                {"id": "1-1", "bus": 1, "address": 2, "port_path": [1], "speed": "full"}]})
        if request.url.path == "/v1/devices/1-1/descriptors/raw":
            assert request.headers["X-USB-Device-Address"] == "2"
            return httpx.Response(200, content=KEYBOARD)
        return problem(404, "not-found")

    backend = pyusb.get_backend(client=client_answering(handler))
    device = usb.core.find(idVendor=0x0627, backend=backend)
    assert device is not None and (device.bus, device.address, device.port_numbers) == (1, 2, (1,))
    assert device.speed == 2
    assert device[0][(0, 0)][0].bEndpointAddress == 0x81


class KeepAliveHandler(BaseHTTPRequestHandler):
    """A server that closes the connection after every other answer (as an idle timeout does)."""
    protocol_version = "HTTP/1.1"
    count = 0

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        KeepAliveHandler.count += 1
        answer = json.dumps({"path": self.path, "body": body.decode(), "n": KeepAliveHandler.count}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        if KeepAliveHandler.count % 2 == 0:
            self.close_connection = True

    def log_message(self, *args):
        pass


def test_the_connection_keeps_alive_and_recovers_from_a_close():
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAliveHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = Connection(f"http://127.0.0.1:{server.server_port}", {"Authorization": "Bearer t"}, True, 5.0)
        answers = [connection.request("POST", "/v1/x", params={"a": "1"}, body=b"hi").json() for _ in range(4)]
        assert [a["n"] for a in answers] == [1, 2, 3, 4]
        assert answers[0]["path"] == "/v1/x?a=1" and answers[0]["body"] == "hi"
        connection.close()
    finally:
        server.shutdown()


class ListingHandler(KeepAliveHandler):
    def do_GET(self):
        answer = json.dumps({"devices": [{"id": "1-1", "auth": self.headers.get("Authorization")}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def tls_server(tmp_path):
    """A server over TLS with a self-signed certificate for localhost (openssl makes it)."""
    import ssl
    import subprocess
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(certificate)],
                   check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), ListingHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://localhost:{server.server_port}", str(certificate)
    server.shutdown()


def test_tls_with_the_servers_certificate_and_a_token(tls_server):
    url, certificate = tls_server
    with Client(url, token="secret", verify=certificate) as client:
        assert client.devices()[0]["auth"] == "Bearer secret"  # httpx
    connection = Connection(url, {"Authorization": "Bearer secret"}, certificate, 5.0)
    assert connection.request("GET", "/v1/devices").json()["devices"][0]["auth"] == "Bearer secret"
    connection.close()


def test_tls_refuses_an_unknown_certificate_unless_told(tls_server):
    import ssl
    url, _ = tls_server
    with pytest.raises(ssl.SSLError):
        Connection(url, {}, True, 5.0).request("GET", "/v1/devices")
    unchecked = Connection(url, {}, False, 5.0)
    assert unchecked.request("GET", "/v1/devices").status_code == 200
    unchecked.close()


class FakeDaemon(BaseHTTPRequestHandler):
    """A daemon with one device per node; leases on a device: the first 201, later 423."""
    protocol_version = "HTTP/1.1"
    leased: set = set()

    def answer(self, status, body, content_type="application/json"):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        node = self.server.node
        serial = "board-" + node
        devices = [{"id": "1-1", "address": 3, "serial": serial, "node": node}]
        if "serial=" in self.path:
            wanted = self.path.split("serial=")[1].split("&")[0]
            devices = [d for d in devices if d["serial"] == wanted]
        self.answer(200, {"devices": devices})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        key = (self.server.node, self.path.split("?")[0])
        if key in FakeDaemon.leased:
            self.answer(423, {"code": "lease-held", "status": 423, "title": "Leased", "detail": "held by ci-1"},
                        "application/problem+json")
            return
        FakeDaemon.leased.add(key)
        self.answer(201, {"id": "L1", "token": "T", "device": "1-1", "interface": None, "holder": "ci-1"})

    def do_DELETE(self):
        self.answer(200, {})

    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer(200, {})

    def log_message(self, *args):
        pass


@pytest.fixture
def three_daemons():
    servers = []
    for node in ("bench-1", "bench-2", "bench-3"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDaemon)
        server.node = node
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    FakeDaemon.leased = set()
    yield [f"http://127.0.0.1:{s.server_port}" for s in servers]
    for server in servers:
        server.shutdown()


def test_the_fleet_lists_every_node_and_reports_the_silent_ones(three_daemons):
    from usbhttpd.fleet import Fleet
    silent = "http://127.0.0.1:9"  # discard: nothing listens
    with Fleet(three_daemons + [silent], timeout=2.0) as fleet:
        devices = fleet.devices()
        assert sorted(d["node"] for d in devices) == ["bench-1", "bench-2", "bench-3"]
        assert {d["url"] for d in devices} == set(three_daemons)
        assert list(fleet.unreachable) == [silent]


def test_the_fleet_finds_a_board_and_one_of_two_racers_gets_it(three_daemons):
    from usbhttpd.fleet import Fleet
    with Fleet(three_daemons) as fleet, Fleet(three_daemons) as other:
        device = fleet.find(serial="board-bench-2")
        assert device.id == "1-1" and device.address == 3 and device.client.url == three_daemons[1]
        _, lease = fleet.lease(serial="board-bench-2", ttl_ms=60000)
        with pytest.raises(usbhttpd.ProblemError) as caught:
            other.lease(serial="board-bench-2")
        assert caught.value.code == "lease-held" and "ci-1" in caught.value.detail
        lease.release()
        with pytest.raises(LookupError):
            fleet.find(serial="no-such-board")


def test_a_service_name_resolves_to_every_daemon():
    from usbhttpd.fleet import Fleet
    fleet = Fleet.from_service("localhost", port=8080)
    assert fleet.clients and all(c.url.endswith(":8080") for c in fleet.clients)
    fleet.close()


# DFU (usbhttpd.dfu) against a stand-in device: the requests and the state machine's polls.

class FakeDFUDevice:
    """Answers /control as a DFU-mode board with a 4-byte transfer size would."""

    def __init__(self):
        from usbhttpd.dfu import DNLOAD_IDLE
        self.state, self.requests, self.image = 2, [], b""
        self.DNLOAD_IDLE = DNLOAD_IDLE

    def raw_descriptors(self):
        device = bytes([18, 1]) + bytes(16)
        interface = bytes([9, 4, 0, 0, 0, 0xFE, 0x01, 0x02, 0])
        functional = bytes([9, 0x21, 0x0B, 0xE8, 0x03, 4, 0, 0x10, 0x01])
        config = bytes([9, 2, 27, 0, 1, 1, 0, 0x80, 50])
        return device + config + interface + functional

    def control(self, request_type, request, value=0, index=0, data=None, length=0, timeout_ms=None):
        self.requests.append((request_type, request, value, len(data or b"")))
        if request == 1:  # DNLOAD
            self.image += data or b""
            self.state = 3 if data else 6
            return len(data or b"")
        if request == 3:  # GETSTATUS
            self.state = {3: 5, 6: 7}.get(self.state, self.state)
            return bytes([0, 0, 0, 0, self.state, 0])
        return 0


def test_the_dfu_interface_and_its_functional_descriptor_are_found():
    from usbhttpd.dfu import find_interface
    number, protocol, functional = find_interface(FakeDFUDevice().raw_descriptors())
    assert (number, protocol) == (0, 2)
    assert functional.transfer_size == 4 and functional.will_detach and functional.version == 0x0110
    with pytest.raises(Exception):
        find_interface(bytes([18, 1]) + bytes(16))


def test_a_download_is_blocks_each_with_getstatus_then_the_empty_block():
    from usbhttpd.dfu import DFU, MANIFEST
    device = FakeDFUDevice()
    status = DFU(device).download(b"abcdefghij")
    assert device.image == b"abcdefghij"
    assert status.state == MANIFEST
    dnloads = [(value, size) for (kind, request, value, size) in device.requests if request == 1]
    assert dnloads == [(0, 4), (1, 4), (2, 2), (3, 0)]
    assert [r[1] for r in device.requests] == [1, 3, 1, 3, 1, 3, 1, 3]


def test_a_block_the_device_did_not_take_ends_the_download_at_once():
    # A board that never saw block 0 (the lab's gadgetfs can drop a request) answers dfuIDLE,
    # which no DNLOAD leads to: an error at the first GETSTATUS, not polls until the deadline.
    from usbhttpd.dfu import DFU, DFUError
    device = FakeDFUDevice()
    taken = device.control
    device.control = lambda kind, request, **rest: 0 if request == 1 else taken(kind, request, **rest)
    with pytest.raises(DFUError, match="dfuIDLE after block 0"):
        DFU(device, deadline=time.monotonic() + 2).download(b"abcdefghij")
    assert [r[1] for r in device.requests] == [3]


def test_a_token_never_goes_over_plain_http_to_another_machine():
    for url in ("http://bench-7:8080", "http://10.0.0.7:8080", "http://[2001:db8::1]:8080"):
        with pytest.raises(usbhttpd.UsbHttpdError):
            usbhttpd.Client(url, token="secret")
    # Loopback, TLS, no token, or the caller's say-so: fine.
    for url, token, allowed in (("http://127.0.0.1:8080", "secret", False), ("http://localhost:8080", "secret", False),
                                ("http://[::1]:8080", "secret", False), ("https://bench-7:8443", "secret", False),
                                ("http://bench-7:8080", None, False), ("http://bench-7:8080", "secret", True)):
        usbhttpd.Client(url, token=token, allow_plain_token=allowed).close()


def test_a_fleet_found_by_name_asks_over_https():
    from usbhttpd.fleet import Fleet
    with Fleet.from_service("localhost", port=8443) as fleet:
        assert all(client.url.startswith("https://") for client in fleet.clients)


# Issue 24, class 7: waits and the DFU helper end by their deadlines, and the DFU helper
# flashes only the board that left.

class TricklingHandler(BaseHTTPRequestHandler):
    """A server that never finishes its answer: a byte every 0.1 s (each read within httpx's timeout)."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(600):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    def do_POST(self):
        self.do_GET()

    def log_message(self, *args):
        pass


def test_a_wait_ends_by_its_deadline_whatever_the_server_trickles():
    server = ThreadingHTTPServer(("127.0.0.1", 0), TricklingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with usbhttpd.Client(f"http://127.0.0.1:{server.server_port}", timeout=1.0) as client:
            start = time.monotonic()
            with pytest.raises(usbhttpd.WaitDeadline):
                client.wait(timeout_ms=500, id="1-1")
            assert time.monotonic() - start < 4
            start = time.monotonic()
            with pytest.raises(TimeoutError):  # WaitDeadline is a TimeoutError too
                client.device("1-1").wait_back(timeout_ms=500, claim=[0])
            assert time.monotonic() - start < 4
    finally:
        server.shutdown()


def test_a_dfu_poll_never_sleeps_past_the_deadline():
    from usbhttpd.dfu import DFU

    class Busy(FakeDFUDevice):
        def control(self, request_type, request, value=0, index=0, data=None, length=0, timeout_ms=None):
            if request == 3:  # GETSTATUS: dfuDNBUSY, poll again in 4.6 hours
                return bytes([0, 0xFF, 0xFF, 0xFF, 4, 0])
            return super().control(request_type, request, value, index, data, length, timeout_ms)

    start = time.monotonic()
    with pytest.raises(usbhttpd.WaitDeadline):
        DFU(Busy(), deadline=time.monotonic() + 1).download(b"abcd")
    assert time.monotonic() - start < 1


def test_the_dfu_helper_flashes_only_the_board_that_left():
    from usbhttpd import dfu

    class Runtime(FakeDFUDevice):
        """The board in its firmware (DFU runtime interface); another board comes back on its port."""
        id, address, lease_token = "1-1", 5, None

        def __init__(self):
            super().__init__()
            self.waits, self.claims, self.client = [], [], self

        def raw_descriptors(self):
            return super().raw_descriptors().replace(bytes([0xFE, 0x01, 0x02]), bytes([0xFE, 0x01, 0x01]))

        def describe(self):
            return {"address": 5, "vendor_id": 0x1209, "serial": "board-A"}

        def claim(self, interface, detach=True):
            self.claims.append(interface)

        def wait_back(self, timeout_ms=30000, claim=(), **filters):
            self.waits.append(filters)
            raise usbhttpd.ProblemError(404, "wait-timeout", "Not found", "no such device came", {})

        def devices(self, **filters):
            return [{"id": "1-1", "vendor_id": 0x1209, "product_id": 0x0011, "serial": "board-B"}]

    board = Runtime()
    with pytest.raises(dfu.DFUError, match="board-B"):
        dfu.flash(board, b"firmware", timeout_ms=1000)
    assert board.waits == [{"class_": 0xFE, "vendor_id": 0x1209, "serial": "board-A"}], "the wait names the board"
    # A bootloader that shows itself otherwise is named by the caller.
    board = Runtime()
    with pytest.raises(dfu.DFUError):
        dfu.flash(board, b"firmware", timeout_ms=1000, bootloader_vendor_id=0x0483, bootloader_serial="BL")
    assert board.waits == [{"class_": 0xFE, "vendor_id": 0x0483, "serial": "BL"}]
