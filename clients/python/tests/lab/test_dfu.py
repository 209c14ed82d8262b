"""A whole firmware update of the lab's DFU gadget through the daemon, with the client's DFU
helper (usbhttpd.dfu): detach, download, manifest, back in the firmware with the new version,
and the image read back; under a lease that holds through the re-enumerations. Run in the
lab's guest (USBHTTPD_URL); skipped elsewhere."""
import os
import zlib
from pathlib import Path

import pytest

import usbhttpd
from usbhttpd import ProblemError
from usbhttpd.dfu import DFU, flash

URL = os.environ.get("USBHTTPD_URL")
pytestmark = pytest.mark.skipif(not URL, reason="needs the lab (USBHTTPD_URL)")
MODE = 0x40  # the gadget's vendor request: leave and come back in the other mode


def image(major, minor, size=64 * 1024):
    head = b"LABFW" + bytes([major, minor])
    return head + os.urandom(size - len(head))


def board(client):
    """The lab's board in its firmware with nothing claimed: a test that failed halfway may
    have left it in its bootloader or its interface claimed."""
    for stranded in client.devices(serial="lab-dfu", product_id=0x0011):
        client.device(stranded["id"]).control(0x40, MODE)
    (summary,) = client.wait(serial="lab-dfu", product_id=0x0010, timeout_ms=20000)
    device = client.device(summary["id"], address=summary["address"])
    for claim in device.state()["claims"]:
        device.release(claim["interface"])
    return device


GADGET_LOG = Path(os.environ.get("LAB_RUN", "/nonexistent")) / "dfu-gadget.log"


def blocks_lost():
    return GADGET_LOG.read_text().count("block lost") if GADGET_LOG.exists() else 0


def flash_in_the_lab(client, device, firmware, tries=10):
    """flash(), and again (up to `tries` in all) while the lab's board loses a block to
    gadgetfs' race (its log says so, and it answered errUNKNOWN or an empty GETSTATUS):
    gadgetfs ends a control OUT's status stage before the board has read the data, and a
    request that comes quickly after can drop it (lab/gadget/dfu-gadget.c, lose_block). A real
    board has no such race; any other failure fails the test."""
    for attempt in range(tries):
        lost = blocks_lost()
        try:
            return flash(device, firmware)
        except (usbhttpd.dfu.DFUError, ProblemError):
            if blocks_lost() == lost or attempt == tries - 1:
                raise
        (summary,) = client.devices(serial="lab-dfu")  # in its bootloader now, its interface claimed
        again = client.device(summary["id"], address=summary["address"])
        again.lease_token = device.lease_token
        again.release(0)
        device = again


def test_a_flash_cycle_under_a_lease_brings_the_new_firmware_back():
    firmware = image(2, 0x13)
    with usbhttpd.Client(URL) as client, usbhttpd.Client(URL) as other:
        device = board(client)
        assert device.describe()["product_id"] == 0x0010
        with device.lease(ttl_ms=30000, grace_ms=10000):
            back = flash_in_the_lab(client, device, firmware)  # its time: bench/dfu.sh
            details = back.describe()
            assert details["product_id"] == 0x0010
            assert details["device_descriptor"]["bcd_device"] == 0x0213
            assert details["configurations"][0]["string"] == f"firmware 2.13 crc32 {zlib.crc32(firmware):08x}"
            assert back.claims == {"claimed": [0], "not_claimed": []}
            # Another client is still kept off the board it holds.
            with pytest.raises(ProblemError) as refused:
                other.device(back.id).claim(0)
            assert refused.value.code == "lease-held"
            # Into the bootloader again: UPLOAD reads back what was written.
            runtime = DFU(back)
            runtime.detach()
            boot = back.wait_back(claim=[0], product_id=0x0011)
            assert DFU(boot).upload() == firmware
            boot.control(0x40, MODE)
            home = boot.wait_back(product_id=0x0010)
            assert home.describe()["device_descriptor"]["bcd_device"] == 0x0213


def test_a_bad_image_is_refused_and_the_firmware_stays():
    with usbhttpd.Client(URL) as client:
        device = board(client)
        before = device.describe()["configurations"][0]["string"]
        dfu = DFU(device)
        dfu.claim()
        dfu.detach()
        boot = device.wait_back(claim=[0], class_=0xFE)
        bootloader = DFU(boot)
        bootloader.ready()
        for attempt in range(10):  # again while the board loses a block (flash_in_the_lab)
            lost = blocks_lost()
            with pytest.raises(usbhttpd.dfu.DFUError) as failed:
                bootloader.download(b"not a lab image" * 100)
            if blocks_lost() == lost:
                break
            bootloader.ready()
        assert "status 2" in str(failed.value) or "dfuERROR" in str(failed.value)
        status = bootloader.status()
        assert (status.status, status.state_name) == (2, "dfuERROR")  # errFILE
        bootloader.ready()  # CLRSTATUS
        boot.control(0x40, MODE)
        home = boot.wait_back(product_id=0x0010)
        assert home.describe()["configurations"][0]["string"] == before
