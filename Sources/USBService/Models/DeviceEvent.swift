import USB

/// The `data` of one event of `GET /v1/events`, and an entry of a resync.
struct DeviceEvent: Encodable, Sendable {
    /// "added", "removed", or "present" (present when the stream started).
    var type: String
    var sequence: Int
    /// When the daemon saw the change (RFC 3339, UTC); null for "present".
    var time: Nullable<String>
    var device: DeviceSummary

    init(_ change: DeviceChange, node: String? = nil) {
        type = change.kind.rawValue
        sequence = Int(change.sequence)
        time = Nullable(Timestamp.iso8601(change.time))
        device = DeviceSummary(change.device, node: node)
    }

    init(present device: USBDeviceInfo, sequence: UInt64, node: String? = nil) {
        type = "present"
        self.sequence = Int(sequence)
        time = Nullable(nil)
        self.device = DeviceSummary(device, node: node)
    }
}

/// The `data` of a `resync` event: the stream could not resume where the client asked (or
/// the client fell too far behind), so what follows starts from the devices present now.
struct ResyncEvent: Encodable, Sendable {
    var reason: String
    var sequence: Int
}
