"""Schemathesis checks for script/fuzz (loaded with SCHEMATHESIS_HOOKS=fuzz_checks).

The fuzzer drives real devices in the lab with made-up parameters, so some requests end in
what the device did, which the API answers with a documented 5xx: a read that nothing
answers within its timeout (504 usb-timeout), a transfer the device ends in error (502
usb-transfer-error, usb-overflow). Those are outcomes of the USB transfer, each with its
X-USB-Transfer-Status header. Any other 5xx fails, as schemathesis's own not_a_server_error
would: a 500, a libusb call error (502 usb-error), a 503 of any kind.
"""
import json
import os
import urllib.request
import zlib

import schemathesis

DEVICE_OUTCOMES = {
    (504, "usb-timeout"),
    (502, "usb-transfer-error"),
    (502, "usb-overflow"),
}
# A console whose board side reads nothing takes no more input: its documented outcome.
CONSOLE_OUTCOMES = {(504, "console-input-timeout")}


@schemathesis.check
def no_server_error_but_device_outcomes(ctx, response, case):
    if response.status_code < 500:
        return None
    try:
        code = response.json().get("code")
    except Exception:
        code = None
    headers = {name.lower() for name in response.headers}
    if (response.status_code, code) in DEVICE_OUTCOMES and "x-usb-transfer-status" in headers:
        return None
    if (response.status_code, code) in CONSOLE_OUTCOMES:
        return None
    raise AssertionError(f"Server error {response.status_code} {code}")


# The stateful phase starts its scenarios from operations it guesses will succeed with made-up
# input, and follows openapi.yaml's links from their answers. It takes the device list's
# filters vendor_id and product_id for ids of a "Vendor" and a "Product" that no operation
# makes, and so never starts from GET /v1/devices, the one source of real device ids: every
# scenario began at POST …/leases with a made-up id and no link was ever followed (2 of 54).
# Counted as an entry point, the list leads to the devices, their claims, transfers and leases.
# The guess is schemathesis's internal function; should it be renamed, the phase runs as before.
try:
    from schemathesis.specs.openapi import stateful as _stateful

    _guess = _stateful.is_likely_root_transition

    def _device_list_is_a_root(operation, node, produced_anywhere):
        if operation.method == "get" and operation.path == "/v1/devices":
            return True
        return _guess(operation, node, produced_anywhere)

    _stateful.is_likely_root_transition = _device_list_is_a_root
except (ImportError, AttributeError):
    pass


# The waits (GET and POST /v1/wait, the latter claiming on the device that comes back) are
# fuzzed with a short timeout: a whole-number timeout_ms above 300, in any form (or none: 30 s)
# becomes 300,
# so a wait that matches nothing answers within the run's pace; other values (negative, text)
# go as generated, for the daemon to refuse. An `id` is swapped for one of the lab's real
# devices (chosen by the generated value's CRC), so that waits find devices and the claiming
# wait claims real interfaces (issue 24: the fuzzer reaches the claiming wait).
_device_ids = None


def _lab_device_ids():
    global _device_ids
    if _device_ids is None:
        try:
            with urllib.request.urlopen(os.environ["FUZZ_URL"] + "/v1/devices", timeout=5) as answer:
                _device_ids = [device["id"] for device in json.load(answer)["devices"]]
        except Exception:
            _device_ids = []
    return _device_ids


@schemathesis.hook
def map_query(ctx, query):
    operation = getattr(ctx, "operation", None)
    if operation is None or operation.path != "/v1/wait" or not isinstance(query, dict):
        return query
    return _short_wait(query)


# The coverage phase builds its cases without the map_* hooks: the same change just before
# each call, for every phase.
@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.operation.path == "/v1/wait":
        case.query = _short_wait(dict(case.query or {}))
    elif case.operation.path.startswith("/v1/devices/{id}/consoles/"):
        case.query = _short_console_call(dict(case.query or {}), case.operation.path)


# A console's output is read without following (a followed one never ends), breaks and
# input waits are kept short: the run's pace, not the daemon's limits.
def _short_console_call(query, path):
    if path.endswith("/output"):
        query["follow"] = "false"
    for name, most in (("duration_ms", 50), ("timeout_ms", 300)):
        value = query.get(name)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and value > most:
            query[name] = most
    return query


def _short_wait(query):
    timeout = query.get("timeout_ms")
    if isinstance(timeout, str) and timeout.strip().isdigit():
        timeout = int(timeout.strip())  # the coverage phase sends numbers as text too
    if timeout is None or (isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 300):
        query["timeout_ms"] = 300
    ids = _lab_device_ids()
    if ids and isinstance(query.get("id"), str):
        query["id"] = ids[zlib.crc32(query["id"].encode()) % len(ids)]
    return query
