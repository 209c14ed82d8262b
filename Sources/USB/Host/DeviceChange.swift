import Glibc

/// A device that arrived or went away, numbered in the order the daemon saw it.
public struct DeviceChange: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case added, removed
    }

    /// 1, 2, 3, … within one ``ChangeLog``.
    public var sequence: UInt64
    public var kind: Kind
    /// The device as it was when it arrived, or when last seen before it went away.
    public var device: USBDeviceInfo
    /// Seconds since the Unix epoch (CLOCK_REALTIME) when the change was seen.
    public var time: Double

    public init(sequence: UInt64, kind: Kind, device: USBDeviceInfo, time: Double) {
        self.sequence = sequence
        self.kind = kind
        self.device = device
        self.time = time
    }

    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
