"""The URB channel client (usbhttpd.urb) against a stand-in daemon: a WebSocket server on
wsproto in a thread that speaks docs/urb-channel.md with a scripted device. What the client
sends, and what it makes of each answer; the lab tests run it against the real daemon."""
import socket
import struct
import threading

import pytest
import usb.core
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Message, Ping, RejectConnection, RejectData, Request

import usbhttpd
from usbhttpd import pyusb, urb
from usbhttpd.client import Client


def hello(device=b"1-2"):
    return struct.pack("<BBHIIIBBBBIIB3x", 0x81, 1, 0, 64, 1 << 20, (1 << 20) + 568, 1, 5, 3, 1, 600000, 8 << 20, 2) + device


def complete(id, status=0, data=b"", error=0, packets=()):
    head = struct.pack("<BBHIIi", 0x82, status, len(packets), id, len(data) if not error else 0, error)
    for length, packet_status in packets:
        head += struct.pack("<II", length, packet_status)
    return head + data


def result(op, id, error=0, value=0, reason=b""):
    return struct.pack("<BBHIii", 0x83, op, 0, id, error, value) + reason


class StandIn:
    """A daemon's URB channel on a loopback port: answers each message with `script(message)`
    (a list of messages to send back, perhaps later ones first); records the handshake."""

    def __init__(self, script, reject=None):
        self.script, self.reject = script, reject
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.request = None
        self.received = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        conn, _ = self.listener.accept()
        ws = WSConnection(ConnectionType.SERVER)
        buffered = []
        while True:
            data = conn.recv(65536)
            if not data:
                return
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Request):
                    self.request = event
                    if self.reject is not None:
                        status, body = self.reject
                        conn.sendall(ws.send(RejectConnection(status_code=status, headers=[
                            (b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())],
                            has_body=True)) + ws.send(RejectData(data=body)))
                        return
                    conn.sendall(ws.send(AcceptConnection(subprotocol="usbhttpd.urb.1")))
                    conn.sendall(ws.send(Message(data=hello())))
                elif isinstance(event, BytesMessage):
                    buffered.append(event.data)
                    if event.message_finished:
                        message = b"".join(buffered)
                        buffered = []
                        self.received.append(message)
                        for answer in self.script(message):
                            if answer == b"ping":
                                conn.sendall(ws.send(Ping(b"p")))
                            elif answer == b"close":
                                conn.sendall(ws.send(CloseConnection(code=1008, reason="a bad message")))
                            else:
                                conn.sendall(ws.send(Message(data=answer)))
                elif isinstance(event, CloseConnection):
                    if ws.state.name != "CLOSED":
                        conn.sendall(ws.send(event.response()))
                    return


def submit_fields(message):
    return struct.unpack_from("<BBBBIIIHHI", message)


def test_the_handshake_says_who_and_what_and_hello_is_read():
    daemon = StandIn(lambda message: [])
    channel = urb.Channel(f"http://127.0.0.1:{daemon.port}", "1-2", token="secret", lease="lease-1", address=5)
    assert channel.hello.device == "1-2" and channel.hello.max_in_flight == 64 and channel.hello.address == 5
    assert channel.hello.speed == 3 and channel.hello.scope == 2
    headers = dict(daemon.request.extra_headers)
    assert daemon.request.target == "/v1/devices/1-2/urb" and daemon.request.subprotocols == ["usbhttpd.urb.1"]
    assert headers[b"authorization"] == b"Bearer secret" and headers[b"x-usb-lease"] == b"lease-1"
    assert headers[b"x-usb-device-address"] == b"5"
    channel.close()


def test_many_transfers_in_flight_complete_each_on_its_own():
    held = []

    def script(message):
        kind, type, endpoint, flags, id, length, timeout, packets, _, _ = submit_fields(message)
        held.append(id)
        if len(held) < 3:
            return []
        # The third SUBMIT: answer all three, the last one first, with a ping between.
        return [complete(held[2], data=b"c"), b"ping", complete(held[0], data=b"a"), complete(held[1], status=4)]

    daemon = StandIn(script)
    channel = urb.Channel(f"http://127.0.0.1:{daemon.port}", "1-2")
    transfers = [channel.read(0x81, 512, timeout_ms=100) for _ in range(3)]
    assert transfers[1].result(5).status == urb.STALL
    assert transfers[0].result(5).data == b"a" and transfers[2].result(5).data == b"c"
    kind, type, endpoint, flags, id, length, timeout, packets, _, _ = submit_fields(daemon.received[0])
    assert (kind, type, endpoint, length, timeout) == (1, urb.BULK, 0x81, 512, 100)
    channel.close()


def test_control_and_out_data_are_laid_out_as_the_page_says():
    daemon = StandIn(lambda message: [complete(submit_fields(message)[4], data=b"\x07" if message[24] & 0x80 else b"")]
                     if message[0] == 1 and message[1] == 0 else [complete(submit_fields(message)[4])])
    channel = urb.Channel(f"http://127.0.0.1:{daemon.port}", "1-2")
    assert channel.control(0xC0, 0x5C, 3, 4, length=8).result(5).data == b"\x07"
    message = daemon.received[0]
    assert message[24:32] == struct.pack("<BBHHH", 0xC0, 0x5C, 3, 4, 8) and len(message) == 32
    channel.write(0x02, b"hello", zlp=True).result(5)
    fields = submit_fields(daemon.received[1])
    assert fields[2] == 0x02 and fields[3] == urb.ZERO_PACKET and fields[5] == 5 and daemon.received[1][24:] == b"hello"
    channel.close()


def test_a_refused_operation_is_the_rest_problem_with_libusbs_error():
    daemon = StandIn(lambda message: [result(message[1], struct.unpack_from("<I", message, 4)[0], error=-6,
                                             reason=b"423 lease-held: the device is leased")])
    channel = urb.Channel(f"http://127.0.0.1:{daemon.port}", "1-2")
    with pytest.raises(usbhttpd.ProblemError) as caught:
        channel.claim(0)
    assert caught.value.code == "lease-held" and caught.value.status == 423 and caught.value.libusb_error == -6
    mapped = pyusb.libusb_error(caught.value)
    assert isinstance(mapped, usb.core.USBError) and mapped.backend_error_code == -6
    channel.close()


def test_a_device_reads_over_the_channel_keeping_what_a_timeout_left():
    def script(message):
        id = struct.unpack_from("<I", message, 4)[0]
        if message[0] == 3:
            return [result(message[1], id)]
        return [complete(id, status=urb.TIMED_OUT, data=b"\x01\x02\x03")]

    daemon = StandIn(script)
    device = Client(f"http://127.0.0.1:{daemon.port}").device("1-2")
    device._endpoints = {0x81: None}  # no descriptors needed: a bulk endpoint, packets of 1
    with pytest.raises(usbhttpd.TransferTimeout):
        device.read(0x81, 64, timeout_ms=10)
    assert device.read(0x81, 2) == b"\x01\x02" and device.read(0x81, 64) == b"\x03"
    device.close()


def test_a_daemon_without_the_channel_is_used_over_rest():
    daemon = StandIn(lambda message: [], reject=(404, b'{"code": "not-found", "detail": "no route"}'))
    client = Client(f"http://127.0.0.1:{daemon.port}")
    device = client.device("1-2")
    assert device._over_channel() is None and device._no_channel


def test_a_refused_handshake_is_its_problem_whatever_its_body():
    for body, code, status in [(b'{"code": "console-writer-busy", "title": "busy"}', "console-writer-busy", 409),
                               (b"[1, 2]", "http-409", 409), (b"not json", "http-410", 410)]:
        daemon = StandIn(lambda message: [], reject=(status, body))
        with pytest.raises(usbhttpd.ProblemError) as caught:
            urb.Channel(f"http://127.0.0.1:{daemon.port}", "1-2")
        assert caught.value.code == code and caught.value.status == status
        assert isinstance(caught.value, usbhttpd.DeviceGone) == (status == 410)


def test_a_channel_the_daemon_closed_says_so():
    daemon = StandIn(lambda message: [b"close"])
    channel = urb.Channel(f"http://127.0.0.1:{daemon.port}", "1-2")
    transfer = channel.read(0x81, 8)
    with pytest.raises(usbhttpd.UsbHttpdError) as caught:
        transfer.result(5)
    assert "1008" in str(caught.value)
