import CLibUSB

/// An open device (`libusb_device_handle`), closed when released. Its calls block:
/// run them on a thread of their own, never on Swift's cooperative pool.
public final class USBDeviceHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    public let device: USBDevice

    init(pointer: OpaquePointer, device: USBDevice) {
        self.pointer = pointer
        self.device = device
    }

    deinit { libusb_close(pointer) }

    /// The active configuration's bConfigurationValue, nil when unconfigured (libusb_get_configuration).
    public func activeConfiguration() throws(USBError) -> UInt8? {
        var value: Int32 = 0
        try USBError.check(libusb_get_configuration(pointer, &value))
        return value == 0 ? nil : UInt8(truncatingIfNeeded: value)
    }

    /// A descriptor as the device sends it to GET_DESCRIPTOR (libusb_get_descriptor).
    public func descriptor(type: UInt8, index: UInt8, length: Int) throws(USBError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: length)
        let count = try USBError.check(libusb_get_descriptor(pointer, type, index, &buffer, Int32(length)))
        return Array(buffer.prefix(Int(count)))
    }

    /// The language ids of string descriptor 0.
    public func stringLanguages(timeout: UInt32 = 1000) throws(USBError) -> [UInt16] {
        let raw = try rawString(index: 0, language: 0, timeout: timeout)
        return stride(from: 0, to: raw.count - 1, by: 2).map { UInt16(raw[$0]) | UInt16(raw[$0 + 1]) << 8 }
    }

    /// String descriptor `index` in `language`, decoded from UTF-16LE (libusb_get_string_descriptor).
    public func string(index: UInt8, language: UInt16, timeout: UInt32 = 1000) throws(USBError) -> String {
        let raw = try rawString(index: index, language: language, timeout: timeout)
        let units = stride(from: 0, to: raw.count - 1, by: 2).map { UInt16(raw[$0]) | UInt16(raw[$0 + 1]) << 8 }
        return String(decoding: units, as: UTF16.self)
    }

    /// The payload of a string descriptor (after bLength and bDescriptorType).
    private func rawString(index: UInt8, language: UInt16, timeout: UInt32) throws(USBError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 255)
        let count = try USBError.check(
            libusb_control_transfer(
                pointer, UInt8(LIBUSB_ENDPOINT_IN.rawValue), UInt8(LIBUSB_REQUEST_GET_DESCRIPTOR.rawValue),
                UInt16(LIBUSB_DT_STRING.rawValue) << 8 | UInt16(index), language, &buffer, 255, timeout))
        guard count >= 2, buffer[1] == UInt8(LIBUSB_DT_STRING.rawValue) else { throw .io }
        let length = min(Int(count), Int(buffer[0]))
        return length > 2 ? Array(buffer[2..<length]) : []
    }
}
