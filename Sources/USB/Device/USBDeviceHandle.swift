import CLibUSB
import Glibc

/// An open device (`libusb_device_handle` wrapping a usbfs file descriptor), closed when
/// released: libusb_close, then close(2) of the descriptor libusb does not own. Its calls
/// block: run them on a thread of their own, never on Swift's cooperative pool.
public final class USBDeviceHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    private let fd: Int32

    init(pointer: OpaquePointer, fd: Int32) {
        self.pointer = pointer
        self.fd = fd
    }

    deinit {
        libusb_close(pointer)
        close(fd)
    }

    /// The active configuration's bConfigurationValue, nil when unconfigured (libusb_get_configuration).
    public func activeConfiguration() throws(USBError) -> UInt8? {
        var value: Int32 = 0
        try USBError.check(libusb_get_configuration(pointer, &value))
        return value == 0 ? nil : UInt8(truncatingIfNeeded: value)
    }

    /// libusb_set_auto_detach_kernel_driver: a kernel driver bound to an interface is detached
    /// when the interface is claimed and attached again when it is released.
    public func setAutoDetachKernelDriver(_ enabled: Bool) throws(USBError) {
        try USBError.check(libusb_set_auto_detach_kernel_driver(pointer, enabled ? 1 : 0))
    }

    /// Whether a kernel driver is bound to `interface` (libusb_kernel_driver_active).
    public func kernelDriverActive(interface: UInt8) throws(USBError) -> Bool {
        try USBError.check(libusb_kernel_driver_active(pointer, Int32(interface))) == 1
    }

    /// libusb_claim_interface
    public func claimInterface(_ interface: UInt8) throws(USBError) {
        try USBError.check(libusb_claim_interface(pointer, Int32(interface)))
    }

    /// libusb_release_interface (which resets the interface to alternate setting 0).
    public func releaseInterface(_ interface: UInt8) throws(USBError) {
        try USBError.check(libusb_release_interface(pointer, Int32(interface)))
    }

    /// libusb_set_configuration; nil puts the device in the unconfigured state (-1).
    public func setConfiguration(_ value: UInt8?) throws(USBError) {
        try USBError.check(libusb_set_configuration(pointer, value.map(Int32.init) ?? -1))
    }

    /// libusb_set_interface_alt_setting (a SET_INTERFACE request; the interface must be claimed).
    public func setAltSetting(interface: UInt8, altSetting: UInt8) throws(USBError) {
        try USBError.check(libusb_set_interface_alt_setting(pointer, Int32(interface), Int32(altSetting)))
    }

    /// libusb_clear_halt
    public func clearHalt(endpoint: UInt8) throws(USBError) {
        try USBError.check(libusb_clear_halt(pointer, endpoint))
    }

    /// libusb_reset_device. LIBUSB_ERROR_NOT_FOUND means the device came back as a new
    /// device and this handle is of no more use.
    public func reset() throws(USBError) {
        try USBError.check(libusb_reset_device(pointer))
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
