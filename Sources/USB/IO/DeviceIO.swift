/// Everything the daemon does to one open device below its ``DeviceSession``: the blocking
/// calls of a device handle, and the URBs of its transfers. This is the seam between the
/// session (which decides) and libusb (which does): ``USBDeviceHandle`` is the libusb
/// implementation, and a scripted fake (Tests/USBFakes) lets the session, the routes and the
/// streams above it run in unit tests in seconds. The lab stays the judge of real USB.
///
/// Threads: the blocking calls run on the device's worker thread (``DeviceSession/blocking(_:)``),
/// never on the event loop; URBs are made, submitted and cancelled on the event loop, and
/// their completions come there.
public protocol DeviceIO: AnyObject, Sendable {
    /// A URB for `spec` that moves bytes from or into `buffer` (kept by the caller until the
    /// URB is released), whose every end calls `completion` on the event loop
    /// (libusb_alloc_transfer, then filled).
    func makeURB(_ spec: URBSpec, buffer: UnsafeMutableRawBufferPointer, completion: @escaping @Sendable () -> Void)
        throws(USBError) -> any URB

    /// `size` bytes of memory the kernel maps for this device's URBs (libusb_dev_mem_alloc),
    /// nil where it cannot: the caller falls back to ordinary memory.
    func allocateDMA(_ size: Int) -> UnsafeMutableRawPointer?
    /// Gives back what ``allocateDMA(_:)`` gave (libusb_dev_mem_free).
    func freeDMA(_ pointer: UnsafeMutableRawPointer, size: Int)

    // Blocking calls, on the device's worker thread.

    /// Whether a kernel driver is bound to `interface` (libusb_kernel_driver_active).
    func kernelDriverActive(interface: UInt8) throws(USBError) -> Bool
    /// libusb_detach_kernel_driver
    func detachKernelDriver(interface: UInt8) throws(USBError)
    /// libusb_attach_kernel_driver
    func attachKernelDriver(interface: UInt8) throws(USBError)
    /// libusb_set_auto_detach_kernel_driver
    func setAutoDetachKernelDriver(_ enabled: Bool) throws(USBError)
    /// libusb_claim_interface
    func claimInterface(_ interface: UInt8) throws(USBError)
    /// libusb_release_interface (the interface goes back to alternate setting 0)
    func releaseInterface(_ interface: UInt8) throws(USBError)
    /// libusb_set_configuration; nil: unconfigured
    func setConfiguration(_ value: UInt8?) throws(USBError)
    /// libusb_set_interface_alt_setting
    func setAltSetting(interface: UInt8, altSetting: UInt8) throws(USBError)
    /// libusb_clear_halt
    func clearHalt(endpoint: UInt8) throws(USBError)
    /// libusb_reset_device: LIBUSB_ERROR_NOT_FOUND when the device came back as another device.
    func reset() throws(USBError)
}

/// What a URB is for, fixed when it is made.
public struct URBSpec: Sendable, Equatable {
    public var endpoint: UInt8
    public var type: TransferType
    /// The bytes to move at first (at most the buffer; ``URB/length`` changes it later).
    public var length: Int
    /// Milliseconds; 0: no timeout.
    public var timeout: UInt32
    public var flags: URBFlags
    /// Packets an isochronous URB has room for (0 for the other types).
    public var isoPackets: Int

    public init(
        endpoint: UInt8, type: TransferType, length: Int, timeout: UInt32, flags: URBFlags = [], isoPackets: Int = 0
    ) {
        self.endpoint = endpoint
        self.type = type
        self.length = length
        self.timeout = timeout
        self.flags = flags
        self.isoPackets = isoPackets
    }
}

/// `libusb_transfer_flags` that the daemon passes on.
public struct URBFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// LIBUSB_TRANSFER_SHORT_NOT_OK: a short IN transfer is an error.
    public static let shortNotOK = URBFlags(rawValue: 1 << 0)
    /// LIBUSB_TRANSFER_ADD_ZERO_PACKET: OUT data that fills its last packet is followed by a
    /// zero-length packet.
    public static let zeroPacket = URBFlags(rawValue: 1 << 3)
}

/// One URB (`struct libusb_transfer`), owned by one ``Transfer``, freed when released. Used on
/// the event loop only.
public protocol URB: AnyObject {
    /// The bytes to move on the next submission (at most the buffer).
    var length: Int { get set }
    /// How the last submission ended, read in the completion.
    var status: TransferStatus { get }
    /// The bytes that moved (for control transfers, without the setup packet).
    var actualLength: Int { get }
    /// The packet lengths of an isochronous URB (at most its room), before submitting.
    func setIsoPacketLengths(_ lengths: [Int])
    /// Each of the first `count` packets' outcome, once an isochronous URB has ended.
    func isoPacketResults(count: Int) -> [IsoPacketResult]
    /// libusb_submit_transfer: nil once queued, else why not (nothing was queued then).
    func submit() -> USBError?
    /// libusb_cancel_transfer: asynchronous; the completion still comes (cancelled, or
    /// completed if it raced). A URB not in flight is left alone.
    func cancel()
}
