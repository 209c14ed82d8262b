"""The URB channel (docs/urb-channel.md) from Python: one WebSocket per device handle, many
transfers in flight, each a `Transfer` (a future) that completes on its own.

    with client.device("1-2") as dev:
        channel = dev.channel()
        channel.claim(0)
        reads = [channel.read(0x81, 65536) for _ in range(8)]      # all eight in flight
        data = b"".join(read.result().data for read in reads)

The WebSocket is `websocket.WebSocketClient` (wsproto's): no thread of its own, whoever waits
for a result reads the socket and hands every message to the transfer or operation it answers,
so a transfer made and awaited on one thread costs no thread switch.
"""
from __future__ import annotations

import struct
from typing import Dict, Iterable, List, Optional, Tuple, Union

from .errors import DeviceGone, ProblemError, TransferTimeout
from .websocket import WebSocketClient

SUBPROTOCOL = "usbhttpd.urb.1"
SUBMIT, CANCEL, OPERATION = 0x01, 0x02, 0x03
HELLO, COMPLETE, RESULT, EVENT = 0x81, 0x82, 0x83, 0x84
CONTROL, ISOCHRONOUS, BULK, INTERRUPT = 0, 1, 2, 3
COMPLETED, ERROR, TIMED_OUT, CANCELLED, STALL, NO_DEVICE, OVERFLOW = range(7)
SHORT_NOT_OK, ZERO_PACKET = 1, 2
(CLAIM_INTERFACE, RELEASE_INTERFACE, SET_ALT_SETTING, CLEAR_HALT, RESET_DEVICE, KERNEL_DRIVER_ACTIVE,
 DETACH_KERNEL_DRIVER, ATTACH_KERNEL_DRIVER, SET_CONFIGURATION, GET_CONFIGURATION, USE_LEASE) = range(1, 12)
DEVICE_GONE, DEVICE_BACK = 1, 2

STATUS_NAMES = ["completed", "error", "timed_out", "cancelled", "stall", "no_device", "overflow"]
# A transfer that did not complete, as the REST API's problem (status, code) for it.
STATUS_PROBLEMS = {
    ERROR: (502, "usb-transfer-error"), TIMED_OUT: (504, "usb-timeout"), CANCELLED: (503, "transfer-cancelled"),
    STALL: (409, "usb-stall"), NO_DEVICE: (410, "device-gone"), OVERFLOW: (502, "usb-overflow"),
}


class Hello:
    """The daemon's HELLO: the protocol's version, the channel's limits, the device."""

    def __init__(self, data: bytes):
        (_, self.version, _, self.max_in_flight, self.max_transfer, self.max_message, self.bus, self.address,
         self.speed, self.configuration, self.max_timeout, self.max_bytes_in_flight,
         self.scope) = struct.unpack_from("<BBHIIIBBBBIIB", data)
        self.device = data[32:].decode()


class Completion:
    """How a transfer ended: `status` (libusb_transfer_status), `actual_length`, `data` (IN),
    `packets` [(actual_length, status)] (isochronous), and for a refused SUBMIT the libusb
    `error` and the `reason` (which starts with the REST problem's code)."""

    def __init__(self, status: int, actual_length: int, error: int, packets: List[Tuple[int, int]],
                 data: bytes, reason: str):
        self.status, self.actual_length, self.error = status, actual_length, error
        self.packets, self.data, self.reason = packets, data, reason

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status] if self.status < len(STATUS_NAMES) else str(self.status)

    def problem(self, what: str) -> Optional[ProblemError]:
        """The exception the REST API's answer for this transfer raises (None when it completed)."""
        if self.error:
            return refusal(self.error, self.reason)
        if self.status == COMPLETED:
            return None
        status, code = STATUS_PROBLEMS.get(self.status, (502, "usb-transfer-error"))
        kind = TransferTimeout if code == "usb-timeout" else DeviceGone if status == 410 else ProblemError
        detail = f"{what}: the transfer ended {self.status_name} after {self.actual_length} bytes"
        return kind(status, code, code, detail, {"code": code, "detail": detail}, self.status_name, self.actual_length)


def refusal(error: int, reason: str) -> ProblemError:
    """A refused SUBMIT or OPERATION as the REST API's problem (`reason` is "status code: detail")."""
    head, _, detail = reason.partition(": ")
    status_text, _, code = head.partition(" ")
    status = int(status_text) if status_text.isdigit() else 502
    kind = DeviceGone if status == 410 else ProblemError
    error_object = kind(status, code or "usb-error", code, detail or reason, {"code": code, "detail": detail})
    error_object.libusb_error = error
    return error_object


class Transfer:
    """A transfer in flight: `result()` waits for its `Completion` (reading the channel while
    it waits), `cancel()` asks the daemon to cancel it."""

    def __init__(self, channel: "Channel", id: int):
        self.channel, self.id = channel, id
        self.completion: Optional[Completion] = None

    def done(self) -> bool:
        return self.completion is not None

    def result(self, timeout: Optional[float] = None) -> Completion:
        self.channel._wait(self.done, timeout)
        assert self.completion is not None
        return self.completion

    def cancel(self) -> None:
        if not self.done():
            self.channel._send(struct.pack("<BBBBI", CANCEL, 0, 0, 0, self.id))


class Channel(WebSocketClient):
    """The URB channel of device `device_id` of the daemon at `url`."""

    def __init__(self, url: str, device_id: str, token: Optional[str] = None, verify: Union[bool, str] = True,
                 lease: Optional[str] = None, address: Optional[int] = None, timeout: float = 30.0):
        headers = []
        if token:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        if lease:
            headers.append((b"x-usb-lease", lease.encode()))
        if address is not None:
            headers.append((b"x-usb-device-address", str(address).encode()))
        self._next_id = 1
        self._transfers: Dict[int, Transfer] = {}
        self._operations: Dict[int, list] = {}
        self.events: List[Tuple[int, int, int]] = []
        self.hello: Optional[Hello] = None
        super().__init__(url, f"/v1/devices/{device_id}/urb", SUBPROTOCOL, headers, verify, timeout,
                         what="the URB channel")
        self._wait(lambda: self.hello is not None, timeout)

    # Transfers

    def submit(self, type: int, endpoint: int, length: int = 0, data: bytes = b"", setup: Optional[bytes] = None,
               timeout_ms: int = 0, flags: int = 0, packets: Iterable[int] = ()) -> Transfer:
        """Submits one transfer (SUBMIT) and returns it at once, in flight."""
        packets = list(packets)
        with self._send_lock:
            id = self._next_id
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
            transfer = Transfer(self, id)
            self._transfers[id] = transfer
        message = struct.pack("<BBBBIIIHHI", SUBMIT, type, endpoint, flags, id, length, timeout_ms, len(packets), 0, 0)
        if setup is not None:
            message += setup
        if packets:
            message += struct.pack(f"<{len(packets)}I", *packets)
        self._send(message + bytes(data))
        return transfer

    def control(self, request_type: int, request: int, value: int = 0, index: int = 0, data: bytes = b"",
                length: int = 0, timeout_ms: int = 0) -> Transfer:
        """A control transfer: IN (bit 7 of `request_type`) reads up to `length` bytes, OUT sends `data`."""
        size = length if request_type & 0x80 else len(data)
        setup = struct.pack("<BBHHH", request_type, request, value, index, size)
        return self.submit(CONTROL, 0, size, b"" if request_type & 0x80 else data, setup, timeout_ms)

    def read(self, endpoint: int, length: int, timeout_ms: int = 0, type: int = BULK, flags: int = 0) -> Transfer:
        return self.submit(type, endpoint | 0x80, length, timeout_ms=timeout_ms, flags=flags)

    def write(self, endpoint: int, data: bytes, timeout_ms: int = 0, type: int = BULK, zlp: bool = False) -> Transfer:
        return self.submit(type, endpoint & 0x7F, len(data), data, timeout_ms=timeout_ms,
                           flags=ZERO_PACKET if zlp else 0)

    def iso(self, endpoint: int, packets: Iterable[int], data: bytes = b"", timeout_ms: int = 0) -> Transfer:
        packets = list(packets)
        return self.submit(ISOCHRONOUS, endpoint, sum(packets), data, timeout_ms=timeout_ms, packets=packets)

    # Operations: synchronous, each raising the REST API's problem when refused

    def operation(self, op: int, a: int = 0, b: int = 0, timeout: Optional[float] = None, tail: bytes = b"") -> int:
        with self._send_lock:
            id = self._next_id
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
            slot: list = []
            self._operations[id] = slot
        self._send(struct.pack("<BBHIii", OPERATION, op, 0, id, a, b) + tail)
        self._wait(lambda: bool(slot), timeout if timeout is not None else self.timeout)
        error, value, reason = slot[0]
        if error:
            raise refusal(error, reason)
        return value

    def claim(self, interface: int, detach: bool = True) -> int:
        return self.operation(CLAIM_INTERFACE, interface, 1 if detach else 0)

    def release(self, interface: int) -> None:
        self.operation(RELEASE_INTERFACE, interface)

    def set_alt_setting(self, interface: int, alt_setting: int) -> None:
        self.operation(SET_ALT_SETTING, interface, alt_setting)

    def clear_halt(self, endpoint: int) -> None:
        self.operation(CLEAR_HALT, endpoint)

    def reset(self) -> None:
        self.operation(RESET_DEVICE)

    def kernel_driver_active(self, interface: int) -> bool:
        return bool(self.operation(KERNEL_DRIVER_ACTIVE, interface))

    def detach_kernel_driver(self, interface: int) -> None:
        self.operation(DETACH_KERNEL_DRIVER, interface)

    def attach_kernel_driver(self, interface: int) -> None:
        self.operation(ATTACH_KERNEL_DRIVER, interface)

    def set_configuration(self, value: int) -> None:
        self.operation(SET_CONFIGURATION, value)

    def get_configuration(self) -> int:
        return self.operation(GET_CONFIGURATION)

    def use_lease(self, token: Optional[str]) -> None:
        """The channel's next messages act under the lease `token` (None: no lease)."""
        self.operation(USE_LEASE, tail=(token or "").encode())

    def _on_message(self, message: bytes) -> None:
        kind = message[0]
        if kind == COMPLETE:
            status, count, id, actual, error = struct.unpack_from("<xBHIIi", message)
            packets = [struct.unpack_from("<II", message, 16 + 8 * index) for index in range(count)]
            rest = message[16 + 8 * count:]
            transfer = self._transfers.pop(id, None)
            if transfer is not None:
                transfer.completion = Completion(
                    status, actual, error, packets, b"" if error else rest, rest.decode("utf-8", "replace") if error else "")
        elif kind == RESULT:
            _, id, error, value = struct.unpack_from("<xBxxIii", message)
            slot = self._operations.pop(id, None)
            if slot is not None:
                slot.append((error, value, message[16:].decode("utf-8", "replace")))
        elif kind == HELLO:
            self.hello = Hello(message)
        elif kind == EVENT:
            self.events.append((message[1], message[4], message[5]))

