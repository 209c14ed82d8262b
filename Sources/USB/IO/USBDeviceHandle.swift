import CLibUSB
import EventLoop
import Glibc

/// An open device (`libusb_device_handle` wrapping a usbfs file descriptor), closed when
/// released: libusb_close, then close(2) of the descriptor libusb does not own. The libusb
/// ``DeviceIO``: its blocking calls run on a thread of their own, never on the event loop
/// or Swift's cooperative pool; its URBs (``LibUSBURB``) live on the event loop.
public final class USBDeviceHandle: DeviceIO, @unchecked Sendable {
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

    /// libusb_detach_kernel_driver
    public func detachKernelDriver(interface: UInt8) throws(USBError) {
        try USBError.check(libusb_detach_kernel_driver(pointer, Int32(interface)))
    }

    /// libusb_attach_kernel_driver
    public func attachKernelDriver(interface: UInt8) throws(USBError) {
        try USBError.check(libusb_attach_kernel_driver(pointer, Int32(interface)))
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

    // MARK: URBs and their memory

    public func makeURB(
        _ spec: URBSpec, buffer: UnsafeMutableRawBufferPointer, completion: @escaping @Sendable () -> Void
    ) throws(USBError) -> any URB {
        try LibUSBURB(handle: self, spec: spec, buffer: buffer, completion: completion)
    }

    /// libusb_dev_mem_alloc: memory mapped from the usbfs descriptor (a URB's buffer must lie in
    /// one mapping); NULL on many failures (an old kernel, the global usbfs_memory_mb budget).
    public func allocateDMA(_ size: Int) -> UnsafeMutableRawPointer? {
        libusb_dev_mem_alloc(pointer, size).map(UnsafeMutableRawPointer.init)
    }

    /// libusb_dev_mem_free, before the handle closes.
    public func freeDMA(_ memory: UnsafeMutableRawPointer, size: Int) {
        _ = libusb_dev_mem_free(pointer, memory.assumingMemoryBound(to: UInt8.self), size)
    }
}

/// A `struct libusb_transfer` for its whole life: libusb_alloc_transfer (with room for its
/// isochronous packets) when made, libusb_free_transfer when released. Its owner (a
/// ``Transfer``) keeps it alive while it is in flight; libusb calls back on the event loop,
/// which handles the context's events.
final class LibUSBURB: URB {
    let pointer: UnsafeMutablePointer<libusb_transfer>
    /// Keeps the device open while the URB exists.
    private let handle: USBDeviceHandle
    private let completion: @Sendable () -> Void

    init(
        handle: USBDeviceHandle, spec: URBSpec, buffer: UnsafeMutableRawBufferPointer,
        completion: @escaping @Sendable () -> Void
    ) throws(USBError) {
        guard let pointer = libusb_alloc_transfer(Int32(spec.isoPackets)) else { throw .noMemory }
        precondition(spec.length <= buffer.count)
        self.pointer = pointer
        self.handle = handle
        self.completion = completion
        pointer.pointee.dev_handle = handle.pointer
        pointer.pointee.endpoint = spec.endpoint
        pointer.pointee.type = spec.type.rawValue
        pointer.pointee.timeout = spec.timeout
        pointer.pointee.length = Int32(spec.length)
        pointer.pointee.buffer = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var flags: UInt8 = 0
        if spec.flags.contains(.shortNotOK) { flags |= UInt8(LIBUSB_TRANSFER_SHORT_NOT_OK.rawValue) }
        if spec.flags.contains(.zeroPacket) { flags |= UInt8(LIBUSB_TRANSFER_ADD_ZERO_PACKET.rawValue) }
        pointer.pointee.flags = flags
        pointer.pointee.num_iso_packets = Int32(spec.isoPackets)
        pointer.pointee.callback = urbEnded
        pointer.pointee.user_data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit { libusb_free_transfer(pointer) }

    var length: Int {
        get { Int(pointer.pointee.length) }
        set { pointer.pointee.length = Int32(newValue) }
    }

    var status: TransferStatus { TransferStatus(pointer.pointee.status) }

    var actualLength: Int { Int(pointer.pointee.actual_length) }

    func setIsoPacketLengths(_ lengths: [Int]) {
        pointer.pointee.num_iso_packets = Int32(lengths.count)
        for (index, length) in lengths.enumerated() {
            usbhttpd_libusb_iso_packet(pointer, Int32(index)).pointee.length = UInt32(length)
        }
    }

    func isoPacketResults(count: Int) -> [IsoPacketResult] {
        (0..<count).map { index in
            let packet = usbhttpd_libusb_iso_packet(pointer, Int32(index)).pointee
            return IsoPacketResult(
                length: Int(packet.length), actualLength: Int(packet.actual_length), status: TransferStatus(packet.status))
        }
    }

    func submit() -> USBError? {
        let result = libusb_submit_transfer(pointer)
        return result == 0 ? nil : USBError(result)
    }

    /// A URB that ended meanwhile answers LIBUSB_ERROR_NOT_FOUND, which is fine.
    func cancel() { _ = libusb_cancel_transfer(pointer) }

    fileprivate func ended() { completion() }
}

/// libusb_transfer_cb_fn of every ``LibUSBURB``: `user_data` points at it (its owner keeps it
/// alive while it is in flight).
private let urbEnded: libusb_transfer_cb_fn = { transfer in
    guard let userData = transfer?.pointee.user_data else { return }
    Unmanaged<LibUSBURB>.fromOpaque(userData).takeUnretainedValue().ended()
}
