"""A read in flight when the daemon goes away (killed by the test once this says so): it must
end (NO_DEVICE), and the next call fail at once, never hang.

    python daemon_gone.py      (with the backend and USBHTTPD_URL in the environment)
"""
import time

import usb1

NAMES = {usb1.TRANSFER_NO_DEVICE: "NO_DEVICE", usb1.TRANSFER_ERROR: "ERROR", usb1.TRANSFER_CANCELLED: "CANCELLED",
         usb1.TRANSFER_COMPLETED: "COMPLETED", usb1.TRANSFER_TIMED_OUT: "TIMED_OUT"}

with usb1.USBContext() as context:
    handle = context.openByVendorIDAndProductID(0x1209, 0x0002)
    handle.claimInterface(0)
    ended = {}
    transfer = handle.getTransfer()
    transfer.setBulk(0x81, 4096, callback=lambda t: ended.setdefault("status", t.getStatus()), timeout=0)
    transfer.submit()
    print("read in flight", flush=True)
    deadline = time.monotonic() + 30
    while "status" not in ended and time.monotonic() < deadline:
        context.handleEventsTimeout(1)
    print(f"read ended: {NAMES.get(ended.get('status'), ended.get('status'))}", flush=True)
    try:
        handle.controlRead(0x80, 6, 0x100, 0, 18, timeout=5000)
        print("then a control transfer: it worked", flush=True)
    except usb1.USBError as error:
        print(f"then a control transfer: {error}", flush=True)
