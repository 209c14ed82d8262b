import HTTPServer
import USB

/// The bytes of a Server-Sent Events stream of device changes (`text/event-stream`), made
/// from the changes given to it, filtered: a value with no I/O, tested alone. Its user
/// hands it changes (``take(_:)``) and drains the bytes (``drain(into:)``).
struct EventFeed: Sendable {
    let instance: String
    let filter: DeviceFilter
    /// The daemon's node name, in each event's device.
    let node: String?
    /// The last change taken: the stream resumes after it.
    private(set) var cursor: UInt64
    /// Bytes made and not yet sent.
    private(set) var pending: [UInt8] = []

    /// `retry` is the reconnection delay the client is told (EventSource's `retry:` field).
    init(instance: String, filter: DeviceFilter, cursor: UInt64, retry: Int? = 1000, node: String? = nil) {
        self.instance = instance
        self.filter = filter
        self.node = node
        self.cursor = cursor
        if let retry { pending += Array("retry: \(retry)\n\n".utf8) }
    }

    /// Adds the changes after the cursor that match the filter.
    mutating func take(_ changes: [DeviceChange]) {
        for change in changes where change.sequence > cursor {
            cursor = change.sequence
            if filter.matches(change.device) {
                event(change.kind.rawValue, id: change.sequence, data: DeviceEvent(change, node: node))
            }
        }
    }

    /// Starts again from a snapshot: a `resync` event saying why, then one `present` event
    /// per matching device.
    mutating func resync(reason: String, latest: UInt64, devices: [USBDeviceInfo]) {
        cursor = latest
        event("resync", id: latest, data: ResyncEvent(reason: reason, sequence: Int(latest)))
        present(latest: latest, devices: devices)
    }

    /// One `present` event per matching device of a snapshot taken at change `latest`.
    mutating func present(latest: UInt64, devices: [USBDeviceInfo]) {
        cursor = max(cursor, latest)
        for device in devices where filter.matches(device) {
            event("present", id: latest, data: DeviceEvent(present: device, sequence: latest, node: node))
        }
    }

    /// One `activity` event per entry (``ActivityLog``). No `id`: a stream resumes by its
    /// device changes; a follower that resumes asks again for what it shows.
    mutating func take(activity entries: [ActivityLog.Entry]) {
        for entry in entries where entry.kind == .all || filter.id == nil || filter.id == entry.device {
            event("activity", id: nil, data: entry)
        }
    }

    /// A comment line that keeps idle connections (and proxies) from timing out.
    mutating func keepAlive() {
        pending += Array(": keep-alive\n\n".utf8)
    }

    /// Moves as many pending bytes as fit into `buffer`; returns how many.
    mutating func drain(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let count = min(buffer.count, pending.count)
        guard count > 0 else { return 0 }
        pending.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
        pending.removeFirst(count)
        return count
    }

    /// One event: its `id` line (none for an event a stream does not resume by), name and data.
    private mutating func event(_ name: String, id: UInt64?, data: some Encodable) {
        let json = (try? JSON.line(data)) ?? Array("{}".utf8)
        if let id { pending += Array("id: \(EventID(instance: instance, sequence: id).text)\n".utf8) }
        pending += Array("event: \(name)\ndata: ".utf8)
        pending += json
        pending += Array("\n\n".utf8)
    }
}
