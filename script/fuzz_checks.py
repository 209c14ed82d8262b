"""Schemathesis checks for script/fuzz (loaded with SCHEMATHESIS_HOOKS=fuzz_checks).

The fuzzer drives real devices in the lab with made-up parameters, so some requests end in
what the device did, which the API answers with a documented 5xx: a read that nothing
answers within its timeout (504 usb-timeout), a transfer the device ends in error (502
usb-transfer-error, usb-overflow). Those are outcomes of the USB transfer, each with its
X-USB-Transfer-Status header. Any other 5xx fails, as schemathesis's own not_a_server_error
would: a 500, a libusb call error (502 usb-error), a 503 of any kind.
"""
import schemathesis

DEVICE_OUTCOMES = {
    (504, "usb-timeout"),
    (502, "usb-transfer-error"),
    (502, "usb-overflow"),
}


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
    raise AssertionError(f"Server error {response.status_code} {code}")
