"""PyUSB through usbhttpd.pyusb against PyUSB's libusb1 backend on the device itself, in one
run: a ctrl_transfer (the lab gadget's GET_INFO, 21 bytes IN) and a 512-byte bulk read (the
SourceSink gadget's source), alternating native, remote over the URB channel (the client's
default) and remote over REST (Client(channel=False)), ROUNDS rounds of N calls each; and the
Python floor, a bare WebSocket echo from Python (wsproto, as usbhttpd.urb) against
bench/ws-floor.c at FLOOR_PORT when given. Prints each round's median per call, then the
median over rounds and the ratios.

    python pyusb_speed.py http://127.0.0.1:8080 [ROUNDS] [N] [FLOOR_PORT]
"""
import socket
import statistics
import sys
import time

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Message, Request

import usb.backend.libusb1
import usb.core
import usb.util

import usbhttpd.pyusb

URL = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
N = int(sys.argv[3]) if len(sys.argv) > 3 else 200
FLOOR_PORT = int(sys.argv[4]) if len(sys.argv) > 4 else None


def open_devices(backend):
    ffs = usb.core.find(idVendor=0x1209, idProduct=0x0003, backend=backend)
    source_sink = usb.core.find(idVendor=0x1209, idProduct=0x0001, backend=backend)
    usb.util.claim_interface(source_sink, 0)
    source = usb.util.find_descriptor(
        source_sink.get_active_configuration()[(0, 0)],
        custom_match=lambda e: usb.util.endpoint_direction(e.bEndpointAddress) == usb.util.ENDPOINT_IN
        and usb.util.endpoint_type(e.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK)
    return ffs, source_sink, source


def timed(call):
    samples = []
    for _ in range(N):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def measure(backend):
    ffs, source_sink, source = open_devices(backend)
    control = timed(lambda: ffs.ctrl_transfer(0xC0, 0x01, 0, 0, 64))
    read = timed(lambda: source.read(512, timeout=2000))
    usb.util.dispose_resources(ffs)
    usb.util.dispose_resources(source_sink)
    return control, read


def floor():
    """A 24-byte binary message echoed by bench/ws-floor.c, from Python on wsproto: what a
    Python WebSocket round trip costs here before any USB."""
    sock = socket.create_connection(("127.0.0.1", FLOOR_PORT))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host="127.0.0.1", target="/echo", subprotocols=["usbhttpd.urb.1"])))
    accepted = False
    while not accepted:
        ws.receive_data(sock.recv(65536))
        accepted = any(isinstance(event, AcceptConnection) for event in ws.events())

    def echo():
        sock.sendall(ws.send(Message(data=b"\x00" * 24)))
        while True:
            ws.receive_data(sock.recv(65536))
            if any(isinstance(event, BytesMessage) for event in ws.events()):
                return

    result = timed(echo)
    sock.close()
    return result


native_backend = usb.backend.libusb1.get_backend()
remote_backend = usbhttpd.pyusb.get_backend(URL)
rest_backend = usbhttpd.pyusb.get_backend(client=usbhttpd.Client(URL, channel=False))
rows = []
for round in range(ROUNDS):
    native = measure(native_backend)
    remote = measure(remote_backend)
    rest = measure(rest_backend)
    echo = floor() if FLOOR_PORT else 0.0
    rows.append((native, remote, rest, echo))
    print(f"round {round + 1}: ctrl_transfer native {native[0]:.0f} us, channel {remote[0]:.0f} us, REST {rest[0]:.0f} us; "
          f"read(512) native {native[1]:.0f} us, channel {remote[1]:.0f} us, REST {rest[1]:.0f} us; "
          f"Python WebSocket echo {echo:.0f} us", flush=True)


def spread(values):
    return f"{statistics.median(values):.0f} us ({min(values):.0f}-{max(values):.0f})"


def ratio(a, b):
    ratios = [x / y for x, y in zip(a, b)]
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


for index, name in ((0, "ctrl_transfer"), (1, "read(512)")):
    native = [row[0][index] for row in rows]
    remote = [row[1][index] for row in rows]
    rest = [row[2][index] for row in rows]
    print(f"{name}: native {spread(native)}, channel {spread(remote)}, REST {spread(rest)}; "
          f"channel/native {ratio(remote, native)} (target <= 3), REST/native {ratio(rest, native)}")
if FLOOR_PORT:
    echoes = [row[3] for row in rows]
    native = [row[0][0] for row in rows]
    print(f"Python floor: a WebSocket echo {spread(echoes)}; (native ctrl_transfer + echo)/native "
          f"{ratio([n + e for n, e in zip(native, echoes)], native)}")
