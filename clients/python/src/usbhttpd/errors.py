"""Problems (RFC 9457 problem+json answers of the daemon) as exceptions.

Every error answer of usbhttpd is `application/problem+json` with a stable `code`; the
exception keeps it, with the status, the detail and, for transfers, how the transfer ended
(`X-USB-Transfer-Status`) and the bytes it moved (`X-USB-Actual-Length`).
"""
from __future__ import annotations

import json
from typing import Any, Optional

import httpx


class UsbHttpdError(Exception):
    """Anything that went wrong talking to the daemon."""


class ProblemError(UsbHttpdError):
    """The daemon answered with a problem: `code` is its stable code (`usb-timeout`, …)."""

    def __init__(self, status: int, code: str, title: str, detail: str, problem: dict,
                 transfer_status: Optional[str] = None, actual_length: Optional[int] = None):
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.problem = problem
        self.transfer_status = transfer_status
        self.actual_length = actual_length


class TransferTimeout(ProblemError):
    """`usb-timeout`: nothing (or not all) came within the transfer's timeout."""


class DeviceGone(ProblemError):
    """410: the device went away, or enumerated again (`device-reenumerated`)."""


class WaitDeadline(UsbHttpdError, TimeoutError):
    """A wait (or the DFU helper) ran past its overall deadline: the daemon, or the device, kept
    the caller longer than it allowed."""


class StreamEnded(UsbHttpdError):
    """A stream's body ended before its end (the device failed, was unplugged, or a lease cut it)."""


def problem_from(response: httpx.Response) -> ProblemError:
    """The exception for an error answer (call once its body has been read)."""
    try:
        body: Any = json.loads(response.content or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("code") or f"http-{response.status_code}")
    title = str(body.get("title") or response.reason_phrase)
    detail = str(body.get("detail") or response.text[:200])
    transfer_status = response.headers.get("X-USB-Transfer-Status")
    length = response.headers.get("X-USB-Actual-Length")
    actual_length = int(length) if length and length.isdigit() else None
    if code == "usb-timeout":
        kind = TransferTimeout
    elif response.status_code == 410:
        kind = DeviceGone
    else:
        kind = ProblemError
    return kind(response.status_code, code, title, detail, body, transfer_status, actual_length)
