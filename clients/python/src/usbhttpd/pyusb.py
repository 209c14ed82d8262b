"""A PyUSB backend that drives the devices of a usbhttpd daemon:

    import usb.core, usbhttpd.pyusb
    backend = usbhttpd.pyusb.get_backend("http://bench-7:8080", token="…")
    dev = usb.core.find(idVendor=0x1209, idProduct=0x0001, backend=backend)
    dev.set_configuration()
    dev.write(0x01, b"hello")

Errors are the ones PyUSB's libusb1 backend raises, with libusb's error number, text and
errno (`USBError('Pipe error', -9, 32)`, `USBTimeoutError('Operation timed out', -7, 110)`,
`NotImplementedError` for LIBUSB_ERROR_NOT_SUPPORTED), because scripts match on them.

Kernel drivers: the daemon detaches a bound driver when it claims an interface, and gives the
interface back on release. To keep PyUSB's (and libusb's) rules, this backend claims without
detaching (a bound driver makes the claim fail with 'Resource busy', as libusb's does without
detach_kernel_driver); `detach_kernel_driver` claims with detaching and keeps that claim, so
the interface stays detached after PyUSB releases it, until `attach_kernel_driver` (or closing
the device) gives it back.
"""
from __future__ import annotations

import errno as _errno
from typing import Any, Dict, Optional

import usb.backend
import usb.core

from . import descriptors
from .client import Client, Device
from .errors import ProblemError, UsbHttpdError

# libusb's error numbers, texts (libusb_strerror, English) and the errno PyUSB gives each.
IO, INVALID_PARAM, ACCESS, NO_DEVICE, NOT_FOUND, BUSY = -1, -2, -3, -4, -5, -6
TIMEOUT, OVERFLOW, PIPE, INTERRUPTED, NO_MEM, NOT_SUPPORTED, OTHER = -7, -8, -9, -10, -11, -12, -99

STRERROR = {
    IO: "Input/Output Error", INVALID_PARAM: "Invalid parameter",
    ACCESS: "Access denied (insufficient permissions)",
    NO_DEVICE: "No such device (it may have been disconnected)", NOT_FOUND: "Entity not found",
    BUSY: "Resource busy", TIMEOUT: "Operation timed out", OVERFLOW: "Overflow", PIPE: "Pipe error",
    INTERRUPTED: "System call interrupted (perhaps due to signal)", NO_MEM: "Insufficient memory",
    NOT_SUPPORTED: "Operation not supported or unimplemented on this platform", OTHER: "Other error",
}
ERRNO = {
    IO: _errno.EIO, INVALID_PARAM: _errno.EINVAL, ACCESS: _errno.EACCES, NO_DEVICE: _errno.ENODEV,
    NOT_FOUND: _errno.ENOENT, BUSY: _errno.EBUSY, TIMEOUT: _errno.ETIMEDOUT, OVERFLOW: _errno.EOVERFLOW,
    PIPE: _errno.EPIPE, INTERRUPTED: _errno.EINTR, NO_MEM: _errno.ENOMEM, NOT_SUPPORTED: _errno.ENOSYS,
    OTHER: None,
}

# The daemon's problem codes as the libusb error a local program would have got.
CODE_TO_LIBUSB = {
    "usb-stall": PIPE, "usb-timeout": TIMEOUT, "usb-overflow": OVERFLOW,
    "usb-transfer-error": IO, "usb-error": IO, "transfer-cancelled": INTERRUPTED,
    "device-gone": NO_DEVICE, "device-reenumerated": NO_DEVICE,
    "device-busy": BUSY, "interface-claimed": BUSY, "claims-held": BUSY, "lease-held": BUSY,
    "usb-access-denied": ACCESS, "interface-protected": ACCESS, "insufficient-scope": ACCESS,
    "unauthorized": ACCESS, "invalid-token": ACCESS, "foreign-origin": ACCESS, "request-refused": ACCESS,
    "usb-invalid-parameter": INVALID_PARAM, "invalid-parameter": INVALID_PARAM,
    "device-not-found": NO_DEVICE, "configuration-not-found": NOT_FOUND, "interface-not-found": NOT_FOUND,
    "alt-setting-not-found": NOT_FOUND, "endpoint-not-found": NOT_FOUND, "interface-not-claimed": NOT_FOUND,
    "endpoint-not-in-alt-setting": NOT_FOUND,
    "wrong-endpoint-direction": INVALID_PARAM, "wrong-endpoint-type": INVALID_PARAM,
    "usb-not-supported": NOT_SUPPORTED, "use-dedicated-route": NOT_SUPPORTED, "usb-out-of-memory": NO_MEM, "usbfs-budget-exhausted": NO_MEM,
}

SPEEDS = {"low": 1, "full": 2, "high": 3, "super": 4, "super_plus": 5}


def libusb_error(error: ProblemError) -> BaseException:
    """The exception PyUSB's libusb1 backend raises for the libusb error `error` stands for."""
    # A refusal on the URB channel carries libusb's own error; REST's problem codes map to it.
    code = getattr(error, "libusb_error", None) or CODE_TO_LIBUSB.get(
        error.code, OTHER if error.status >= 500 else INVALID_PARAM)
    if code not in STRERROR:
        code = OTHER
    if code == NOT_SUPPORTED:
        return NotImplementedError(STRERROR[code])
    kind = usb.core.USBTimeoutError if code == TIMEOUT else usb.core.USBError
    exception = kind(STRERROR[code], code, ERRNO[code])
    exception.problem = error  # what the daemon said, for whoever wants more than libusb gave
    return exception


class _Dev:
    """A device as enumerate_devices gives it: its summary and, once read, its descriptors."""

    def __init__(self, summary: dict):
        self.summary = summary
        self.id = summary["id"]
        self._parsed = None

    def parsed(self, client: Client):
        if self._parsed is None:
            def fetch() -> bytes:
                with client.device(self.id, self.summary.get("address")) as device:
                    return device.raw_descriptors()
            self._parsed = descriptors.parse(_mapped(fetch))
        return self._parsed


class _Handle:
    """An open device: a `Device` pinned to the instance enumerated, and what the backend
    holds for PyUSB's kernel-driver calls."""

    def __init__(self, device: Device, dev: _Dev):
        self.device = device
        self.dev = dev
        self.claimed: Dict[int, bool] = {}  # interface → claimed by the daemon for us
        self.detached: Dict[int, bool] = {}  # interface → claimed by detach_kernel_driver
        self.in_use: Dict[int, bool] = {}  # interface → claimed by PyUSB (claim_interface)


def _channel(handle: _Handle):
    """The handle's URB channel, or None when the daemon has none (or the client was told not
    to use it): then claims and kernel drivers go through REST, emulated."""
    return handle.device._over_channel()


def _mapped(body):
    try:
        return body()
    except ProblemError as error:
        raise libusb_error(error) from None


class HTTPBackend(usb.backend.IBackend):
    """PyUSB's backend interface (usb.backend.IBackend) over usbhttpd's REST API."""

    def __init__(self, client: Client, **filters: Any):
        self.client = client
        self.filters = filters

    def enumerate_devices(self):
        for summary in _mapped(lambda: self.client.devices(**self.filters)):
            yield _Dev(summary)

    def get_device_descriptor(self, dev: _Dev):
        device, _ = dev.parsed(self.client)
        summary = dev.summary
        desc = _Record(device.__dict__)
        desc.bus = summary.get("bus")
        desc.address = summary.get("address")
        ports = tuple(summary.get("port_path") or ())
        desc.port_numbers = ports or None
        desc.port_number = ports[-1] if ports else 0
        desc.speed = SPEEDS.get(summary.get("speed"), 0)
        return desc

    def get_configuration_descriptor(self, dev: _Dev, config: int):
        _, configurations = dev.parsed(self.client)
        if config >= len(configurations):
            raise usb.core.USBError(STRERROR[NOT_FOUND], NOT_FOUND, ERRNO[NOT_FOUND])
        return _Record(configurations[config].__dict__)

    def get_interface_descriptor(self, dev: _Dev, intf: int, alt: int, config: int):
        _, configurations = dev.parsed(self.client)
        try:
            interface = configurations[config].interfaces[intf][alt]
        except IndexError:
            raise IndexError("Invalid alternate setting index " + str(alt)) from None
        return _Record(interface.__dict__)

    def get_endpoint_descriptor(self, dev: _Dev, ep: int, intf: int, alt: int, config: int):
        _, configurations = dev.parsed(self.client)
        endpoint = configurations[config].interfaces[intf][alt].endpoints[ep]
        return _Record(endpoint.__dict__)

    def open_device(self, dev: _Dev) -> _Handle:
        return _Handle(self.client.device(dev.id, dev.summary.get("address")), dev)

    def close_device(self, handle: _Handle) -> None:
        channel = _channel(handle)
        for interface in list(handle.claimed):
            try:
                if channel is not None:
                    channel.release(interface)
                else:
                    handle.device.release(interface)
            except (ProblemError, UsbHttpdError):
                pass
        handle.claimed.clear()
        handle.detached.clear()
        handle.in_use.clear()
        handle.device.close()   # the channel's end gives back anything left, drivers included

    def set_configuration(self, handle: _Handle, config_value: int) -> None:
        _mapped(lambda: handle.device.set_configuration(config_value))

    def get_configuration(self, handle: _Handle) -> int:
        return _mapped(lambda: handle.device.state()).get("configuration") or 0

    def set_interface_altsetting(self, handle: _Handle, intf: int, altsetting: int) -> None:
        _mapped(lambda: handle.device.set_alt_setting(intf, altsetting))

    def claim_interface(self, handle: _Handle, intf: int) -> None:
        channel = _channel(handle)
        if channel is not None:
            # Owned by the channel, as libusb's claim by its handle: given back when the handle
            # closes or the program ends (its socket does), never left behind in the daemon.
            _mapped(lambda: channel.claim(intf, detach=False))
            handle.claimed[intf] = True
        elif not handle.detached.get(intf):  # else claimed already, by detach_kernel_driver
            _mapped(lambda: handle.device.claim(intf, detach=False))
            handle.claimed[intf] = True
        handle.in_use[intf] = True

    def release_interface(self, handle: _Handle, intf: int) -> None:
        handle.in_use.pop(intf, None)
        channel = _channel(handle)
        if channel is not None:
            _mapped(lambda: channel.release(intf))
            handle.claimed.pop(intf, None)
            return
        if handle.detached.get(intf):
            return  # stays claimed (and the driver detached) until attach_kernel_driver
        _mapped(lambda: handle.device.release(intf))
        handle.claimed.pop(intf, None)

    def is_kernel_driver_active(self, handle: _Handle, intf: int) -> bool:
        channel = _channel(handle)
        if channel is not None:
            return _mapped(lambda: channel.kernel_driver_active(intf))
        if handle.detached.get(intf) or handle.claimed.get(intf):
            return False
        return _driver(handle, intf) not in (None, "usbfs")

    def detach_kernel_driver(self, handle: _Handle, intf: int) -> None:
        channel = _channel(handle)
        if channel is not None:
            return _mapped(lambda: channel.detach_kernel_driver(intf))
        # REST has no detach of its own: a claim that detaches stands for it.
        if handle.detached.get(intf) or _driver(handle, intf) in (None, "usbfs"):
            raise usb.core.USBError(STRERROR[NOT_FOUND], NOT_FOUND, ERRNO[NOT_FOUND])
        _mapped(lambda: handle.device.claim(intf, detach=True))
        handle.claimed[intf] = True
        handle.detached[intf] = True

    def attach_kernel_driver(self, handle: _Handle, intf: int) -> None:
        channel = _channel(handle)
        if channel is not None:
            return _mapped(lambda: channel.attach_kernel_driver(intf))
        if handle.in_use.get(intf):
            raise usb.core.USBError(STRERROR[BUSY], BUSY, ERRNO[BUSY])
        if not handle.detached.get(intf):
            raise usb.core.USBError(STRERROR[NOT_FOUND], NOT_FOUND, ERRNO[NOT_FOUND])
        _mapped(lambda: handle.device.release(intf))
        handle.detached.pop(intf, None)
        handle.claimed.pop(intf, None)

    def bulk_write(self, handle: _Handle, ep: int, intf: int, data, timeout: int) -> int:
        return _mapped(lambda: handle.device.write(ep, bytes(data), timeout_ms=timeout))

    def bulk_read(self, handle: _Handle, ep: int, intf: int, buff, timeout: int) -> int:
        return _fill(buff, _mapped(lambda: handle.device.read(ep, len(buff), timeout_ms=timeout)))

    intr_write = bulk_write
    intr_read = bulk_read

    def iso_write(self, handle: _Handle, ep: int, intf: int, data, timeout: int) -> int:
        answer = _mapped(lambda: handle.device.iso_write(ep, bytes(data), timeout_ms=timeout))
        return int(answer.get("actual_length", 0))

    def iso_read(self, handle: _Handle, ep: int, intf: int, buff, timeout: int) -> int:
        # One packet of the endpoint's bytes per interval per packet, as many as fit in buff.
        answer = _mapped(lambda: handle.device.iso_read(ep, packet_lengths=_iso_lengths(handle, ep, len(buff)),
                                                        timeout_ms=timeout))
        return _fill(buff, answer["data"])

    def ctrl_transfer(self, handle: _Handle, bmRequestType: int, bRequest: int, wValue: int, wIndex: int,
                      data, timeout: int) -> int:
        if bmRequestType & 0x80:
            answer = _mapped(lambda: handle.device.control(bmRequestType, bRequest, wValue, wIndex,
                                                           length=len(data), timeout_ms=timeout))
            return _fill(data, answer)
        return _mapped(lambda: handle.device.control(bmRequestType, bRequest, wValue, wIndex,
                                                     data=bytes(data), timeout_ms=timeout))

    def clear_halt(self, handle: _Handle, ep: int) -> None:
        _mapped(lambda: handle.device.clear_halt(ep))

    def reset_device(self, handle: _Handle) -> None:
        reenumerated = _mapped(lambda: handle.device.reset())
        if reenumerated:  # libusb: LIBUSB_ERROR_NOT_FOUND, the handle is no longer valid
            raise usb.core.USBError(STRERROR[NOT_FOUND], NOT_FOUND, ERRNO[NOT_FOUND])


class _Record:
    """An object with the descriptor's fields as attributes (what PyUSB reads)."""

    def __init__(self, fields: Dict[str, Any]):
        self.__dict__.update(fields)


def _fill(buffer, data: bytes) -> int:
    """Copies `data` to the start of PyUSB's buffer (an array.array, or a bytearray)."""
    buffer[:len(data)] = type(buffer)(buffer.typecode, data) if hasattr(buffer, "typecode") else data
    return len(data)


def _driver(handle: _Handle, intf: int) -> Optional[str]:
    details = _mapped(lambda: handle.device.describe())
    active = details.get("active_configuration")
    for configuration in details.get("configurations", []):
        if configuration.get("value") == active:
            for interface in configuration.get("interfaces", []):
                if interface.get("number") == intf:
                    return interface.get("driver")
    return None


def _iso_lengths(handle: _Handle, ep: int, size: int):
    _, configurations = handle.dev.parsed(handle.device.client)
    per_packet = 0
    for configuration in configurations:
        for interface in configuration.interfaces:
            for alt in interface:
                for endpoint in alt.endpoints:
                    if endpoint.bEndpointAddress == ep:
                        mps = endpoint.wMaxPacketSize
                        per_packet = max(per_packet, (mps & 0x7FF) * (1 + ((mps >> 11) & 3)))
    per_packet = per_packet or size
    count = max(1, min(128, size // per_packet))
    return [per_packet] * count


def get_backend(url: str = "http://127.0.0.1:8080", token: Optional[str] = None, verify: Any = True,
                client: Optional[Client] = None, **filters: Any) -> HTTPBackend:
    """The backend for the daemon at `url` (or an existing `client`). `filters`
    (vendor_id, product_id, class, serial, id) narrow what usb.core.find sees."""
    return HTTPBackend(client or Client(url, token=token, verify=verify), **filters)
