import Logging

/// Isochronous transfers: one URB of up to 128 packets. (A stream from an IN endpoint is a
/// ``BulkInStream`` with packets, ``stream(_:options:)``; one to an OUT endpoint an
/// ``OutStream`` with packets, ``isoUploadStream(_:packetSize:packetsPerTransfer:transfers:timeout:logger:)``.)
extension DeviceSession {
    /// One isochronous transfer on `endpoint`: IN when `data` is nil (a packet of room for each
    /// of `packetLengths`), OUT otherwise (`data` cut into packets of `packetLengths`, whose sum
    /// is its count). Packets succeed or fail one by one; the result has each one's outcome.
    public func isoTransfer(
        _ endpoint: UInt8, packetLengths: [Int], data: [UInt8]?, timeout: UInt32, share: UsbfsShare? = nil, logger: Logger
    ) async throws -> IsoTransferResult {
        try await ready()
        let descriptor = try state.endpoint(endpoint, for: data == nil ? .isoRead : .isoWrite)
        try DeviceState.checkIsoPackets(packetLengths, for: descriptor)
        let pending = try PendingTransfer(
            io: io, endpoint: endpoint, isoPackets: packetLengths, timeout: timeout, loop: loop)
        if let data {
            precondition(data.count == packetLengths.reduce(0, +), "the packets must hold the data")
            pending.buffer.copyBytes(from: data)
        }
        let result = try await perform(pending, endpoint: endpoint, share: share, logger: logger)
        let packets = pending.isoResults()
        guard data == nil else { return IsoTransferResult(status: result.status, packets: packets) }
        let count = IsoLayout.pack(packets, in: pending.buffer.baseAddress!)
        return IsoTransferResult(status: result.status, packets: packets, data: pending.bytes(from: 0, count: count))
    }
}
