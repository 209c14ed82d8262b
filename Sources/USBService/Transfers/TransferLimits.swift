import HTTPRouting

/// Bounds on transfers that the daemon's operator sets: timeouts, single-read lengths, and
/// streams open at once.
public struct TransferLimits: Sendable, Equatable {
    /// The timeout of a transfer whose request gives no `timeout_ms`.
    public var defaultTimeoutMs = 5_000
    /// The largest `timeout_ms` accepted, and what `timeout_ms=0` gets unless
    /// ``allowUnboundedTimeouts``.
    public var maxTimeoutMs = 600_000
    /// Whether `timeout_ms=0` waits without end (libusb's 0). Off by default: one client's
    /// transfer would hold its usbfs memory and its endpoint for ever.
    public var allowUnboundedTimeouts = false
    /// The largest `length` of one bulk or interrupt read.
    public var maxReadLength = 1 << 20
    /// The most streams (IN or OUT) open at once on one device.
    public var maxStreamsPerDevice = 8
    /// The most streams open at once in all.
    public var maxStreams = 64
    /// The most streams one client (a token, or an address without tokens) may have open on
    /// one device: fewer than ``maxStreamsPerDevice``, so that one client cannot take them all.
    public var maxClientStreamsPerDevice = 4
    /// The most streams one client may have open in all.
    public var maxStreamsPerClient = 32

    public init() {}

    /// `timeout_ms` from `parameters`, or the default. 0 is no timeout (libusb's 0; PyUSB's
    /// `timeout=0` means the same): the transfer waits for the device as long as the client
    /// does (a hang-up cancels it, as every transfer), but at most ``maxTimeoutMs`` unless the
    /// operator allows unbounded timeouts.
    func timeout(_ parameters: QueryParameters) throws(RoutingProblem) -> UInt32 {
        effective(UInt32(try parameters.integer("timeout_ms", in: 0...maxTimeoutMs) ?? defaultTimeoutMs))
    }

    /// What a requested timeout becomes: 0 is ``maxTimeoutMs`` unless ``allowUnboundedTimeouts``.
    public func effective(_ timeout: UInt32) -> UInt32 {
        timeout == 0 && !allowUnboundedTimeouts ? UInt32(maxTimeoutMs) : timeout
    }
}
