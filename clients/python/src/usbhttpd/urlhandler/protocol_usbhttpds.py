"""pyserial's `usbhttpds://` URLs: a usbhttpd console over TLS (see the package's doc)."""
from .protocol_usbhttpd import Serial  # noqa: F401  the scheme decides TLS

SCHEME = "usbhttpds"
