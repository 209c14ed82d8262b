"""libusb hot-plug callbacks for the lab's Loopback board (python-libusb1): says when its
callback is registered, then prints each arrival and departure until it has seen one of each.

    python hotplug_watch.py      (with the backend and USBHTTPD_URL in the environment)
"""
import time

import usb1

seen = []


def callback(context, device, event):
    name = {usb1.HOTPLUG_EVENT_DEVICE_ARRIVED: "arrived", usb1.HOTPLUG_EVENT_DEVICE_LEFT: "left"}[event]
    seen.append(name)
    print(f"{name}: {device.getVendorID():04x}:{device.getProductID():04x}", flush=True)


with usb1.USBContext() as context:
    assert context.hasCapability(usb1.CAP_HAS_HOTPLUG)
    context.hotplugRegisterCallback(callback, flags=0, vendor_id=0x1209, product_id=0x0002)
    print("registered", flush=True)
    deadline = time.monotonic() + 60
    while not ("left" in seen and "arrived" in seen) and time.monotonic() < deadline:
        context.handleEventsTimeout(1)
