"""DFU 1.1 (USB Device Firmware Upgrade) through the daemon: the class requests go through
`/control` on the DFU interface, GETSTATUS is polled at the device's bwPollTimeout, and the
re-enumerations (detach into the bootloader, back into the firmware) are followed with
`Device.wait_back`, so a lease on the board holds through the whole cycle.

    from usbhttpd import Client
    from usbhttpd.dfu import flash

    with Client("http://bench-7:8080") as usb:
        board = usb.device("serial:lab-dfu")
        back = flash(board, open("firmware.bin", "rb").read())
        print(back.summary["product"], back.describe()["bcd_device"])
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

from .client import Device
from .errors import ProblemError, UsbHttpdError, WaitDeadline

DETACH, DNLOAD, UPLOAD, GETSTATUS, CLRSTATUS, GETSTATE, ABORT = range(7)
OUT, IN = 0x21, 0xA1  # class request to an interface
STATES = ["appIDLE", "appDETACH", "dfuIDLE", "dfuDNLOAD-SYNC", "dfuDNBUSY", "dfuDNLOAD-IDLE",
          "dfuMANIFEST-SYNC", "dfuMANIFEST", "dfuMANIFEST-WAIT-RESET", "dfuUPLOAD-IDLE", "dfuERROR"]
APP_IDLE, DFU_IDLE, DNLOAD_IDLE, MANIFEST, MANIFEST_WAIT_RESET, UPLOAD_IDLE, DFU_ERROR = 0, 2, 5, 7, 8, 9, 10
DNLOAD_SYNC, DNBUSY, MANIFEST_SYNC = 3, 4, 6


class DFUError(UsbHttpdError):
    """The device reported an error status (or an unexpected state) in DFU."""


@dataclass
class Status:
    status: int
    poll_timeout_ms: int
    state: int
    string: int

    @property
    def state_name(self) -> str:
        return STATES[self.state] if self.state < len(STATES) else str(self.state)


@dataclass
class Functional:
    """The DFU functional descriptor (DFU 1.1, 4.1.3)."""
    attributes: int
    detach_timeout_ms: int
    transfer_size: int
    version: int

    @property
    def will_detach(self) -> bool:
        return bool(self.attributes & 0x08)

    @property
    def manifestation_tolerant(self) -> bool:
        return bool(self.attributes & 0x04)


def find_interface(raw: bytes) -> tuple[int, int, Functional]:
    """In the raw descriptors (device descriptor, then whole configurations): the first DFU
    interface (class 0xfe, subclass 1) as (number, protocol: 1 runtime, 2 DFU mode) and the
    functional descriptor that follows it."""
    at, interface = 0, None
    while at + 2 <= len(raw):
        length, kind = raw[at], raw[at + 1]
        if length < 2:
            break
        d = raw[at:at + length]
        if kind == 0x04 and length >= 9:
            interface = (d[2], d[7]) if d[5] == 0xFE and d[6] == 0x01 else None
        elif kind == 0x21 and interface is not None and length >= 7:
            version = int.from_bytes(d[7:9], "little") if length >= 9 else 0x0100
            return interface[0], interface[1], Functional(
                d[2], int.from_bytes(d[3:5], "little"), int.from_bytes(d[5:7], "little"), version)
        at += length
    raise DFUError("the device has no DFU interface with a functional descriptor")


class DFU:
    """The DFU interface of a device (claimed by the caller or by `claim()`)."""

    def __init__(self, device: Device, interface: Optional[int] = None, deadline: Optional[float] = None):
        self.device = device
        number, self.protocol, self.functional = find_interface(device.raw_descriptors())
        self.interface = number if interface is None else interface
        # time.monotonic() by which every poll must be over: a device whose bwPollTimeout says
        # hours, or that stays busy for ever, ends in WaitDeadline instead of holding the caller.
        self.deadline = deadline

    @property
    def in_dfu_mode(self) -> bool:
        return self.protocol == 2

    def claim(self) -> None:
        self.device.claim(self.interface)

    def status(self) -> Status:
        reply = self.device.control(IN, GETSTATUS, index=self.interface, length=6)
        if len(reply) < 6:
            raise DFUError(f"GETSTATUS answered {len(reply)} bytes")
        return Status(reply[0], int.from_bytes(reply[1:4], "little"), reply[4], reply[5])

    def state(self) -> int:
        return self.device.control(IN, GETSTATE, index=self.interface, length=1)[0]

    def clear_status(self) -> None:
        self.device.control(OUT, CLRSTATUS, index=self.interface)

    def abort(self) -> None:
        self.device.control(OUT, ABORT, index=self.interface)

    def detach(self, timeout_ms: Optional[int] = None) -> None:
        """DFU_DETACH (runtime mode): a will-detach device leaves and comes back in DFU mode."""
        self.device.control(OUT, DETACH, value=timeout_ms or self.functional.detach_timeout_ms, index=self.interface)

    def ready(self) -> Status:
        """Back to dfuIDLE from an error or a transfer left halfway (a client that went away)."""
        status = self.status()
        if status.state == DFU_ERROR:
            self.clear_status()
        elif status.state in (DNLOAD_IDLE, UPLOAD_IDLE):
            self.abort()
        status = self.status()
        if status.state != DFU_IDLE:
            raise DFUError(f"the device is in {status.state_name}, not dfuIDLE")
        return status

    def _settle(self, wanted: tuple[int, ...], passing: tuple[int, ...], after: str) -> Status:
        """GETSTATUS until the state is one of `wanted`, waiting bwPollTimeout between polls
        (never past the deadline) while it is one of `passing`. Any other state cannot follow
        what was sent (`after`, for the error): the device did not take it, and polling on
        would wait for nothing (dfu-util 0.11 loops for ever on a dfuIDLE after a DNLOAD)."""
        while True:
            status = self.status()
            if status.status != 0 or status.state == DFU_ERROR:
                raise DFUError(f"status {status.status} in {status.state_name} after {after}")
            if status.state in wanted:
                return status
            if status.state not in passing:
                raise DFUError(f"the device is in {status.state_name} after {after}, a state that cannot follow it"
                               " (the device did not take the request)")
            pause = status.poll_timeout_ms / 1000
            if self.deadline is not None and time.monotonic() + pause > self.deadline:
                raise WaitDeadline(
                    f"the device is still in {status.state_name} and asks to be polled again in "
                    f"{status.poll_timeout_ms} ms, past the deadline")
            time.sleep(pause)

    def download(self, image: bytes, progress: Optional[Callable[[int], None]] = None) -> Status:
        """DNLOAD in blocks of wTransferSize, each followed by GETSTATUS polls; then the
        zero-length DNLOAD and the manifestation. Returns the last status (dfuMANIFEST or
        dfuMANIFEST-WAIT-RESET for a device that now goes back to its firmware)."""
        size = self.functional.transfer_size or 1024
        block = -1
        for block, at in enumerate(range(0, len(image), size)):
            self.device.control(OUT, DNLOAD, value=block & 0xFFFF, index=self.interface, data=image[at:at + size])
            self._settle((DNLOAD_IDLE,), (DNLOAD_SYNC, DNBUSY), f"block {block}")
            if progress:
                progress(min(at + size, len(image)))
        # The empty block that ends the download carries the next block number, as dfu-util's.
        self.device.control(OUT, DNLOAD, value=(block + 1) & 0xFFFF, index=self.interface, data=b"")
        return self._settle((MANIFEST, MANIFEST_WAIT_RESET, DFU_IDLE), (MANIFEST_SYNC,), "the last block")

    def upload(self, limit: int = 1 << 24) -> bytes:
        """UPLOAD blocks until a short one: the device's firmware image."""
        size = self.functional.transfer_size or 1024
        parts, block, total = [], 0, 0
        while total < limit:
            part = self.device.control(IN, UPLOAD, value=block & 0xFFFF, index=self.interface, length=size)
            parts.append(part)
            total += len(part)
            block += 1
            if len(part) < size:
                break
        return b"".join(parts)


def flash(device: Device, image: bytes, timeout_ms: int = 30000,
          progress: Optional[Callable[[int], None]] = None, deadline_s: float = 600.0,
          bootloader_vendor_id: Optional[int] = None, bootloader_serial: Optional[str] = None) -> Device:
    """A whole flash cycle of a board in runtime mode: claim its DFU interface, DETACH, wait
    for it on the same port in DFU mode, download `image`, manifest, wait for it back in
    runtime mode (a USB reset if it waits for one). Returns the board back in its firmware,
    its DFU interface claimed again (`Device.wait_back`). Take a lease on the device first to
    keep others off it for the whole cycle: the lease is on the port, and holds meanwhile.

    What comes back on the port must be the board that left: its vendor and its serial number
    (when it has one) are part of every wait, so another board plugged into the port meanwhile is
    neither claimed nor flashed (DFUError says what is there instead). A bootloader that shows
    another vendor or serial than the firmware is named with `bootloader_vendor_id` and
    `bootloader_serial`. The whole cycle ends by `deadline_s` (WaitDeadline), whatever the
    device's poll timeouts say; each wait for a re-enumeration by `timeout_ms`."""
    deadline = time.monotonic() + deadline_s
    details = device.describe()
    if device.address is None:
        device.address = details["address"]  # this instance: the way back is another address
    board = {"vendor_id": details["vendor_id"], "serial": details.get("serial")}
    in_bootloader = {"vendor_id": bootloader_vendor_id if bootloader_vendor_id is not None else board["vendor_id"],
                     "serial": bootloader_serial if bootloader_serial is not None else board["serial"]}
    runtime = DFU(device, deadline=deadline)
    if not runtime.in_dfu_mode:
        runtime.claim()
        runtime.detach()
        if not runtime.functional.will_detach:
            device.reset()
        device = _wait_back(device, timeout_ms, deadline, runtime.interface, class_=0xFE, **in_bootloader)
    else:
        device.claim(runtime.interface)
    bootloader = DFU(device, deadline=deadline)
    if not bootloader.in_dfu_mode:
        raise DFUError("the device did not come back in DFU mode")
    bootloader.ready()
    last = bootloader.download(image, progress)
    if last.state == MANIFEST_WAIT_RESET:
        try:
            device.reset()
        except UsbHttpdError:
            pass  # it may have gone back on its own already
    back = _wait_back(device, timeout_ms, deadline, runtime.interface, **board)
    if DFU(back).in_dfu_mode:
        raise DFUError("the device came back in DFU mode: the firmware did not start")
    return back


def _wait_back(device: Device, timeout_ms: int, deadline: float, interface: int, **expected) -> Device:
    """`Device.wait_back` for the board that left (`expected`: vendor, serial, class), within
    the cycle's deadline; when something else is on the port, DFUError says what."""
    left_ms = int((deadline - time.monotonic()) * 1000)
    if left_ms <= 0:
        raise WaitDeadline("the flash cycle ran past its deadline")
    filters = {name: value for name, value in expected.items() if value is not None}
    try:
        return device.wait_back(min(timeout_ms, left_ms), claim=[interface], **filters)
    except ProblemError as problem:
        if problem.status != 404:
            raise
        there = [d for d in device.client.devices(id=device.id)]
        if there:
            other = there[0]
            raise DFUError(
                f"port {device.id} holds {other.get('vendor_id', 0):04x}:{other.get('product_id', 0):04x} "
                f"serial {other.get('serial')!r}, not the board that left ({filters}): not claimed, not flashed"
            ) from problem
        raise
