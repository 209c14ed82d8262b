"""An ordinary PyUSB lab script, run twice by the lab test: with PyUSB's own libusb1 backend
on the devices directly, and with usbhttpd.pyusb's backend through the daemon. Its
transcripts must be the same.

    python pyusb_script.py native
    python pyusb_script.py http http://127.0.0.1:8080
"""
import hashlib
import sys

import usb.core
import usb.util

LAB_VENDOR = 0x1209
SOURCESINK, LOOPBACK, FFS = 0x0001, 0x0002, 0x0003
KEYBOARD = (0x0627, 0x0001)
# lab/gadget/ffs-gadget.c's vendor requests
GET_INFO, ECHO_SET, ECHO_GET, INT_QUEUE, HALT = 0x01, 0x02, 0x03, 0x20, 0x21


def backend():
    if sys.argv[1] == "native":
        import usb.backend.libusb1
        return usb.backend.libusb1.get_backend()
    import usbhttpd.pyusb
    return usbhttpd.pyusb.get_backend(sys.argv[2])


BACKEND = backend()


def step(name, body):
    """Runs one step and prints what it gave, or the error as PyUSB raised it."""
    try:
        value = body()
    except usb.core.USBError as error:
        value = f"raised {type(error).__name__}(errno={error.errno}, code={error.backend_error_code}, {error.strerror!r})"
    except NotImplementedError as error:
        value = f"raised NotImplementedError({error})"
    print(f"{name}: {value}", flush=True)


def find(vendor, product):
    device = usb.core.find(idVendor=vendor, idProduct=product, backend=BACKEND)
    assert device is not None, f"no device {vendor:04x}:{product:04x}"
    return device


def endpoint(device, kind, direction):
    interface = device.get_active_configuration()[(0, 0)]
    return usb.util.find_descriptor(
        interface, custom_match=lambda e: usb.util.endpoint_type(e.bmAttributes) == kind
        and usb.util.endpoint_direction(e.bEndpointAddress) == direction)


def describe(device):
    """The descriptors and strings PyUSB shows, without the bus position (the same either way)."""
    step("device", lambda: (hex(device.idVendor), hex(device.idProduct), hex(device.bcdDevice),
                            device.bDeviceClass, device.bMaxPacketSize0, device.bNumConfigurations))
    step("strings", lambda: (usb.util.get_string(device, device.iManufacturer),
                             usb.util.get_string(device, device.iProduct),
                             usb.util.get_string(device, device.iSerialNumber)))
    for configuration in device:
        step("configuration", lambda: (configuration.bConfigurationValue, configuration.bNumInterfaces,
                                       configuration.bmAttributes, configuration.bMaxPower,
                                       bytes(configuration.extra_descriptors).hex()))
        for interface in configuration:
            step("  interface", lambda: (interface.bInterfaceNumber, interface.bAlternateSetting,
                                         interface.bInterfaceClass, interface.bInterfaceSubClass,
                                         interface.bInterfaceProtocol, bytes(interface.extra_descriptors).hex()))
            for ep in interface:
                step("    endpoint", lambda: (hex(ep.bEndpointAddress), ep.bmAttributes, ep.wMaxPacketSize,
                                              ep.bInterval, bytes(ep.extra_descriptors).hex()))


def gadget():
    device = find(LAB_VENDOR, FFS)
    describe(device)
    step("set_configuration", lambda: device.set_configuration())
    step("get_active_configuration", lambda: device.get_active_configuration().bConfigurationValue)
    step("GET_INFO", lambda: bytes(device.ctrl_transfer(0xC0, GET_INFO, 0, 0, 64)))
    step("ECHO_SET", lambda: device.ctrl_transfer(0x40, ECHO_SET, 0, 0, b"remote control"))
    step("ECHO_GET", lambda: bytes(device.ctrl_transfer(0xC0, ECHO_GET, 0, 0, 64)))
    step("refused request", lambda: device.ctrl_transfer(0xC0, 0x10, 0, 0, 8))
    interrupt = endpoint(device, usb.util.ENDPOINT_TYPE_INTR, usb.util.ENDPOINT_IN)
    bulk_in = endpoint(device, usb.util.ENDPOINT_TYPE_BULK, usb.util.ENDPOINT_IN)
    step("interrupt read, nothing queued", lambda: interrupt.read(64, timeout=200))
    step("INT_QUEUE", lambda: device.ctrl_transfer(0x40, INT_QUEUE, 5, 0, b""))
    step("interrupt read", lambda: bytes(interrupt.read(64, timeout=2000)).hex())
    step("bulk read", lambda: hashlib.sha256(bytes(bulk_in.read(4096, timeout=2000))).hexdigest())
    step("HALT ep2", lambda: device.ctrl_transfer(0x40, HALT, 2, 0, b""))
    step("bulk read, halted", lambda: bulk_in.read(512, timeout=2000))
    step("clear_halt", lambda: device.clear_halt(bulk_in.bEndpointAddress))
    step("bulk read after clear_halt", lambda: len(bulk_in.read(512, timeout=2000)))
    step("reset", lambda: device.reset())
    usb.util.dispose_resources(device)
    device = find(LAB_VENDOR, FFS)
    step("GET_INFO after reset", lambda: bytes(device.ctrl_transfer(0xC0, GET_INFO, 0, 0, 64)))
    usb.util.dispose_resources(device)


def loopback():
    device = find(LAB_VENDOR, LOOPBACK)
    step("loopback strings", lambda: usb.util.get_string(device, device.iSerialNumber))
    step("set_configuration", lambda: device.set_configuration())
    out = endpoint(device, usb.util.ENDPOINT_TYPE_BULK, usb.util.ENDPOINT_OUT)
    into = endpoint(device, usb.util.ENDPOINT_TYPE_BULK, usb.util.ENDPOINT_IN)
    payload = bytes((i * 7 + 3) % 256 for i in range(4096))
    for round in range(3):
        step(f"loopback write {round}", lambda: out.write(payload, timeout=2000))
        got = bytearray()
        while len(got) < len(payload):
            got += bytes(into.read(len(payload), timeout=2000))
        step(f"loopback byte-exact {round}", lambda: got == payload)
    usb.util.dispose_resources(device)


def sourcesink():
    device = find(LAB_VENDOR, SOURCESINK)
    step("set_configuration", lambda: device.set_configuration())
    source = endpoint(device, usb.util.ENDPOINT_TYPE_BULK, usb.util.ENDPOINT_IN)
    sink = endpoint(device, usb.util.ENDPOINT_TYPE_BULK, usb.util.ENDPOINT_OUT)
    step("sourcesink read", lambda: bytes(source.read(512, timeout=2000)).hex())
    # The sink checks its pattern (byte i of each 512-byte packet is i % 63) and halts the
    # endpoint at a wrong byte: a script must not leave it halted for whoever comes next.
    pattern = bytes((i % 512) % 63 for i in range(4096))
    step("sourcesink write", lambda: sink.write(pattern, timeout=2000))
    step("sourcesink write again", lambda: sink.write(pattern, timeout=2000))
    usb.util.dispose_resources(device)


def keyboard():
    device = find(*KEYBOARD)
    describe(device)
    step("kernel driver active", lambda: device.is_kernel_driver_active(0))
    step("claim with the driver bound", lambda: usb.util.claim_interface(device, 0))
    step("detach_kernel_driver", lambda: device.detach_kernel_driver(0))
    step("kernel driver active after detach", lambda: device.is_kernel_driver_active(0))
    step("detach again", lambda: device.detach_kernel_driver(0))
    step("claim", lambda: usb.util.claim_interface(device, 0))
    step("keyboard read, no key pressed", lambda: device.read(0x81, 8, timeout=200))
    step("attach while claimed", lambda: device.attach_kernel_driver(0))
    step("release", lambda: usb.util.release_interface(device, 0))
    step("kernel driver active after release", lambda: device.is_kernel_driver_active(0))
    step("attach_kernel_driver", lambda: device.attach_kernel_driver(0))
    step("kernel driver active after attach", lambda: device.is_kernel_driver_active(0))
    usb.util.dispose_resources(device)


for part in (gadget, loopback, sourcesink, keyboard):
    print(f"== {part.__name__}", flush=True)
    try:
        part()
    except Exception as error:  # a script that stops is a difference too
        print(f"{part.__name__} stopped: {type(error).__name__}: {error}", flush=True)
