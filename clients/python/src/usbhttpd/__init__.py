"""usbhttpd: a client for the daemon that puts a machine's USB devices behind HTTP, a PyUSB
backend (`usbhttpd.pyusb`, needs the `pyusb` extra) that runs PyUSB code on them, and serial
consoles (`usbhttpd.console`; with pyserial, `serial.serial_for_url("usbhttpd://…")`)."""
from .client import Client, Device, InStream, Lease
from .console import Console
from .errors import DeviceGone, ProblemError, StreamEnded, TransferTimeout, UsbHttpdError, WaitDeadline
from .events import Event

__all__ = [
    "Client", "Device", "InStream", "Lease", "Event", "Console",
    "UsbHttpdError", "ProblemError", "TransferTimeout", "DeviceGone", "StreamEnded", "WaitDeadline",
]
__version__ = "0.1.0"


def _register_serial_urls() -> None:
    """Makes pyserial's serial_for_url know usbhttpd:// and usbhttpds:// (when pyserial is there)."""
    try:
        import serial
    except ImportError:
        return
    if "usbhttpd.urlhandler" not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append("usbhttpd.urlhandler")


_register_serial_urls()
