import CLibUSB
import EventLoop
import Glibc

/// An open device (`libusb_device_handle` wrapping a usbfs file descriptor), closed when
/// released: libusb_close, then close(2) of the descriptor libusb does not own. Its calls
/// block: run them on a thread of their own, never on Swift's cooperative pool.
public final class USBDeviceHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    private let fd: Int32
    /// The loop that handles libusb's events, where the handle is closed.
    private let loop: EventLoop?

    init(pointer: OpaquePointer, fd: Int32, loop: EventLoop?) {
        self.pointer = pointer
        self.fd = fd
        self.loop = loop
    }

    /// libusb_close and close(2), as work of its own on the loop: the last reference may go
    /// inside a transfer's completion callback, where libusb holds its list of open devices
    /// locked (libusb_close takes that lock) and still walks it after the callback returns.
    deinit {
        let closing = Closing(pointer: pointer, fd: fd)
        if loop?.execute({ closing.close() }) != true { closing.close() }
    }

    private struct Closing: @unchecked Sendable {
        let pointer: OpaquePointer
        let fd: Int32

        func close() {
            libusb_close(pointer)
            Glibc.close(fd)
        }
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
}
