"""The client and the PyUSB backend against the real daemon on the lab's devices. Run in the
lab's guest by the lab tests (Tests/LabTests/PythonClientTests.swift), with USBHTTPD_URL the
daemon there; skipped elsewhere."""
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import usb.util

import usbhttpd

URL = os.environ.get("USBHTTPD_URL")
pytestmark = pytest.mark.skipif(not URL, reason="needs the lab (USBHTTPD_URL)")
SCRIPT = Path(__file__).with_name("pyusb_script.py")
GET_OUT_COUNT = 0x04


@pytest.fixture
def client():
    with usbhttpd.Client(URL) as client:
        yield client


def gadget(client, serial="lab-ffs"):
    (summary,) = client.devices(serial=serial)
    return client.device(summary["id"], address=summary["address"])


def endpoints(device, kind, direction):
    details = device.describe()
    alt = details["configurations"][0]["interfaces"][0]["alt_settings"][0]
    return [e["address"] for e in alt["endpoints"]
            if e["transfer_type"] == kind and e["direction"] == direction]


def test_the_pyusb_script_gives_the_same_transcript_both_ways():
    """PyUSB's libusb1 backend on the devices, then usbhttpd.pyusb through the daemon."""
    run = lambda *args: subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                                       timeout=300)
    native = run("native")
    remote = run("http", URL)
    assert native.returncode == 0, native.stderr
    assert remote.returncode == 0, remote.stderr
    assert "stopped" not in native.stdout, native.stdout
    assert remote.stdout == native.stdout


def test_a_stream_in_is_read_as_it_comes(client):
    device = gadget(client, "lab-sourcesink")
    device.claim(0)
    try:
        (source,) = endpoints(device, "bulk", "in")[:1]
        total = 0
        with device.stream_in(source, max_bytes=1 << 20) as stream:
            first = stream.read(64)
            total += len(first)
            for chunk in stream:
                total += len(chunk)
        assert first == bytes(i % 63 for i in range(64))
        assert total == 1 << 20
    finally:
        device.release(0)


def test_a_stream_out_is_sent_from_a_generator(client):
    device = gadget(client)
    device.claim(0)
    try:
        (sink,) = endpoints(device, "bulk", "out")
        count = lambda: int.from_bytes(device.control(0xC0, GET_OUT_COUNT, length=8), "little")
        before = count()
        pieces = (bytes(65536) for _ in range(16))
        answer = device.stream_out(sink, pieces)
        assert answer["actual_length"] == 1 << 20
        assert count() - before == 1 << 20
    finally:
        device.release(0)


def test_problems_carry_their_code(client):
    device = gadget(client)
    with pytest.raises(usbhttpd.ProblemError) as caught:
        device.read(0x81, 8)  # not claimed
    assert caught.value.code == "interface-not-claimed" and caught.value.status == 409
    stale = client.device(device.id, address=device.address % 127 + 1)
    with pytest.raises(usbhttpd.DeviceGone) as gone:
        stale.state()
    assert gone.value.code == "device-reenumerated"


def test_a_lease_keeps_others_out_and_is_renewed(client):
    device = gadget(client)
    with device.lease(ttl_ms=1500) as lease:
        renewed = threading.Event()
        original = lease.renew

        def counting():
            answer = original()
            renewed.set()
            return answer

        lease.renew = counting
        assert renewed.wait(10), "renewed in the background"
        with usbhttpd.Client(URL) as other:
            with pytest.raises(usbhttpd.ProblemError) as caught:
                other.device(device.id).claim(0)
            assert caught.value.code == "lease-held"
        device.claim(0)
        device.release(0)
    assert lease.error is None
    with usbhttpd.Client(URL) as other:
        other.device(device.id).claim(0)
        other.device(device.id).release(0)


def test_events_start_with_the_devices_present(client):
    events = client.events(present=True, serial="lab-ffs")
    first = next(events)
    assert first.type == "present" and first.device["serial"] == "lab-ffs"
    assert first.id
    events.close()


def test_wait_answers_at_once_for_a_present_device(client):
    (summary,) = client.wait(timeout_ms=5000, serial="lab-ffs")
    assert summary["serial"] == "lab-ffs"
    with pytest.raises(usbhttpd.ProblemError) as caught:
        client.wait(timeout_ms=300, serial="no-such-serial")
    assert caught.value.code == "device-not-present"


def audio(client):
    (summary,) = [d for d in client.devices() if d.get("product") == "QEMU USB Audio"]
    return summary


def test_isochronous_out_through_the_client_and_the_backend(client):
    """QEMU's usb-audio: endpoint 0x01 of interface 1, alternate setting 1, 192 bytes a packet."""
    import usb.core
    import usbhttpd.pyusb

    summary = audio(client)
    device = client.device(summary["id"])
    device.claim(1)
    try:
        device.set_alt_setting(1, 1)
        answer = device.iso_write(0x01, bytes(range(192)) * 10, packet_size=192)
        assert answer["failed_packets"] == 0 and answer["actual_length"] == 1920
        assert len(answer["packets"]) == 10
    finally:
        device.set_alt_setting(1, 0)
        device.release(1)

    dev = usb.core.find(idVendor=summary["vendor_id"], idProduct=summary["product_id"],
                        backend=usbhttpd.pyusb.get_backend(URL))
    detached = dev.is_kernel_driver_active(1)
    if detached:
        dev.detach_kernel_driver(1)
    try:
        dev.set_interface_altsetting(interface=1, alternate_setting=1)
        assert dev.write(0x01, bytes(192 * 8), timeout=2000) == 192 * 8
        dev.set_interface_altsetting(interface=1, alternate_setting=0)
    finally:
        usb.util.release_interface(dev, 1)
        if detached:
            dev.attach_kernel_driver(1)
        usb.util.dispose_resources(dev)


def replug(gadget):
    """lab/guest/replug.py: the gadget unplugged and plugged again (waited for in sysfs)."""
    script = Path(__file__).resolve().parents[4] / "lab" / "guest" / "replug.py"
    subprocess.run(["python3", str(script), "cycles", gadget, "1"], check=True, capture_output=True, timeout=120)


def test_events_resume_where_the_client_left(client):
    """The iterator follows a replug; a new one given the last id gets what it missed."""
    events = client.events(present=True, serial="lab-loopback")
    present = next(events)
    assert present.type == "present"
    replug("loopback")
    removed, added = next(events), next(events)
    assert (removed.type, added.type) == ("removed", "added")
    assert added.device["id"] == present.device["id"]
    events.close()

    replug("loopback")  # while nobody follows
    resumed = client.events(last_event_id=added.id, serial="lab-loopback")
    missed = [next(resumed).type, next(resumed).type]
    resumed.close()
    assert missed == ["removed", "added"]
