"""usbhttpd: a client for the daemon that puts a machine's USB devices behind HTTP, and a
PyUSB backend (`usbhttpd.pyusb`, needs the `pyusb` extra) that runs PyUSB code on them."""
from .client import Client, Device, InStream, Lease
from .errors import DeviceGone, ProblemError, StreamEnded, TransferTimeout, UsbHttpdError, WaitDeadline
from .events import Event

__all__ = [
    "Client", "Device", "InStream", "Lease", "Event",
    "UsbHttpdError", "ProblemError", "TransferTimeout", "DeviceGone", "StreamEnded", "WaitDeadline",
]
__version__ = "0.1.0"
