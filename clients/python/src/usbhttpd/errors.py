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
    return problem_from_parts(response.status_code, response.reason_phrase, response.content, response.headers)


def problem_from_parts(status: int, reason: str, content: bytes, headers: Any = None) -> ProblemError:
    """The exception for an error answer given as its parts (a refused WebSocket handshake has
    no response object): its problem document, or what can be said without one."""
    try:
        body: Any = json.loads(content or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    headers = headers or {}
    code = str(body.get("code") or f"http-{status}")
    title = str(body.get("title") or reason or code)
    detail = str(body.get("detail") or content[:200].decode("utf-8", "replace"))
    transfer_status = headers.get("X-USB-Transfer-Status")
    length = headers.get("X-USB-Actual-Length")
    actual_length = int(length) if length and length.isdigit() else None
    if code == "usb-timeout":
        kind = TransferTimeout
    elif status == 410:
        kind = DeviceGone
    else:
        kind = ProblemError
    return kind(status, code, title, detail, body, transfer_status, actual_length)
