"""PyUSB through usbhttpd.pyusb against PyUSB's libusb1 backend on the device itself, in one
run: a ctrl_transfer (the lab gadget's GET_INFO, 21 bytes IN) and a 512-byte bulk read (the
SourceSink gadget's source), alternating native and remote, ROUNDS rounds of N calls each.
Prints each round's median per call, then the median over rounds and the ratio.

    python pyusb_speed.py http://127.0.0.1:8080 [ROUNDS] [N]
"""
import statistics
import sys
import time

import usb.backend.libusb1
import usb.core
import usb.util

import usbhttpd.pyusb

URL = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
N = int(sys.argv[3]) if len(sys.argv) > 3 else 200


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


native_backend = usb.backend.libusb1.get_backend()
remote_backend = usbhttpd.pyusb.get_backend(URL)
rows = []
for round in range(ROUNDS):
    native = measure(native_backend)
    remote = measure(remote_backend)
    rows.append((native, remote))
    print(f"round {round + 1}: ctrl_transfer native {native[0]:.0f} us, remote {remote[0]:.0f} us; "
          f"read(512) native {native[1]:.0f} us, remote {remote[1]:.0f} us", flush=True)

for index, name in ((0, "ctrl_transfer"), (1, "read(512)")):
    native = [row[0][index] for row in rows]
    remote = [row[1][index] for row in rows]
    ratios = [r / n for n, r in zip(native, remote)]
    print(f"{name}: native {statistics.median(native):.0f} us ({min(native):.0f}-{max(native):.0f}), "
          f"remote {statistics.median(remote):.0f} us ({min(remote):.0f}-{max(remote):.0f}), "
          f"ratio {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
