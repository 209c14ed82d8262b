import CLibUSB
import EventLoop
import Glibc

/// A libusb context (`libusb_context`): libusb_init on creation, libusb_exit when released.
///
/// libusb's own device discovery is off (LIBUSB_OPTION_NO_DEVICE_DISCOVERY): Debian's libusb
/// learns of new devices from udevd, which containers and the lab do not have, so its device
/// list would go stale. The daemon finds devices in sysfs itself (``USBHost``) and opens
/// them by their usbfs node (``open(node:)``, libusb_wrap_sys_device).
public final class USBContext: @unchecked Sendable {
    // libusb contexts are thread-safe; the pointer never changes.
    let pointer: OpaquePointer

    /// libusb_init, with device discovery off. `debug` sets LIBUSB_OPTION_LOG_LEVEL to
    /// LIBUSB_LOG_LEVEL_DEBUG.
    public init(debug: Bool = false) throws(USBError) {
        // Set for every context made from now on; must precede libusb_init.
        try USBError.check(usbhttpd_libusb_set_option(nil, LIBUSB_OPTION_NO_DEVICE_DISCOVERY))
        var context: OpaquePointer?
        try USBError.check(libusb_init(&context))
        guard let context else { throw .other }
        pointer = context
        if debug {
            usbhttpd_libusb_set_option_int(pointer, LIBUSB_OPTION_LOG_LEVEL, Int32(LIBUSB_LOG_LEVEL_DEBUG.rawValue))
        }
    }

    deinit { libusb_exit(pointer) }

    /// Opens the device at usbfs node `node` (`/dev/bus/usb/BBB/DDD`): open(2), then
    /// libusb_wrap_sys_device. The handle owns the file descriptor; it is closed on `loop`, the
    /// loop that handles this context's events.
    public func open(node: String, loop: EventLoop?) throws(USBError) -> USBDeviceHandle {
        let fd = Glibc.open(node, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw USBError(errno: errno) }
        var handle: OpaquePointer?
        let result = libusb_wrap_sys_device(pointer, intptr_t(fd), &handle)
        guard result == 0, let handle else {
            close(fd)
            throw USBError(result < 0 ? result : LIBUSB_ERROR_OTHER.rawValue)
        }
        return USBDeviceHandle(pointer: handle, fd: fd, loop: loop)
    }
}
