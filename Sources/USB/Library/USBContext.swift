import CLibUSB

/// A libusb context (`libusb_context`): libusb_init on creation, libusb_exit when released.
public final class USBContext: @unchecked Sendable {
    // libusb contexts are thread-safe; the pointer never changes.
    let pointer: OpaquePointer

    /// libusb_init. `debug` sets LIBUSB_OPTION_LOG_LEVEL to LIBUSB_LOG_LEVEL_DEBUG.
    public init(debug: Bool = false) throws(USBError) {
        var context: OpaquePointer?
        try USBError.check(libusb_init(&context))
        guard let context else { throw .other }
        pointer = context
        if debug {
            usbhttpd_libusb_set_option_int(pointer, LIBUSB_OPTION_LOG_LEVEL, Int32(LIBUSB_LOG_LEVEL_DEBUG.rawValue))
        }
    }

    deinit { libusb_exit(pointer) }

    /// The devices on the system now (libusb_get_device_list).
    public func devices() throws(USBError) -> [USBDevice] {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = try USBError.check(libusb_get_device_list(pointer, &list))
        defer { libusb_free_device_list(list, 1) }
        guard let list else { return [] }
        return (0..<count).compactMap { list[$0].map { USBDevice(retaining: $0, context: self) } }
    }
}
