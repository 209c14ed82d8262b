import CLibUSB
import Logging

/// Streams: many transfers in flight on one endpoint, all submitted from the device actor.
extension DeviceSession {
    /// Starts streaming from bulk, interrupt or (with `options.isoPacketSize`) isochronous IN
    /// endpoint `endpoint`: the stream's transfers
    /// are submitted now, and submitted again (from this actor's thread) as they are read.
    public func stream(_ endpoint: UInt8, options: BulkInStream.Options) async throws -> BulkInStream {
        try await ready()
        let type: libusb_transfer_type
        if let packetSize = options.isoPacketSize {
            let descriptor = try state.endpoint(endpoint, for: .isoRead)
            let packets = packetSize > 0 && options.transferSize % packetSize == 0 ? options.transferSize / packetSize : 0
            try DeviceState.checkIsoPackets(Array(repeating: packetSize, count: packets), for: descriptor)
            type = LIBUSB_TRANSFER_TYPE_ISOCHRONOUS
        } else {
            let descriptor = try state.endpoint(endpoint, for: .read)
            _ = try DeviceState.checkTransferSize(options.transferSize, for: descriptor)
            type = libusbType(descriptor)
        }
        leftovers[endpoint] = nil
        let stream = try BulkInStream(
            handle: handle, endpoint: endpoint, type: type, options: options, loop: loop, budget: budget)
        streams = streams.filter { $0.value.stream != nil }
        streams[ObjectIdentifier(stream)] = WeakStream(stream: stream)
        stream.start()
        return stream
    }

    /// A stream of a request body to bulk or interrupt OUT endpoint `endpoint`, as the body
    /// arrives (``OutStream``): `transfers` transfers of `transferSize` bytes in flight, and a
    /// zero-length packet after data that fills its last packet if `zeroLengthPacket`.
    public func uploadStream(
        _ endpoint: UInt8, transfers: Int, transferSize: Int, zeroLengthPacket: Bool, timeout: UInt32, logger: Logger
    ) async throws -> OutStream {
        try await ready()
        let descriptor = try state.endpoint(endpoint, for: .write)
        let packet = try DeviceState.checkTransferSize(transferSize, for: descriptor)
        let stream = try OutStream(
            handle: handle, endpoint: endpoint, type: libusbType(descriptor), transfers: transfers,
            transferSize: transferSize, packetSize: packet, zeroLengthPacket: zeroLengthPacket, timeout: timeout,
            loop: loop, budget: budget, logger: logger)
        streams = streams.filter { $0.value.stream != nil }
        streams[ObjectIdentifier(stream)] = WeakStream(stream: stream)
        return stream
    }

    /// Waits for a transfer started with `submit()`: the bytes it moved and how it ended.
    func settle(_ transfer: PendingTransfer) async -> (count: Int, status: TransferStatus) {
        defer { inFlight[ObjectIdentifier(transfer)] = nil }
        let (type, endpoint) = (transfer.type, transfer.endpoint)
        switch await transfer.outcome() {
        case .finished(let status, let count):
            USBMetrics.transfers(type: type, endpoint: endpoint, outcome: status.rawValue, bytes: count)
            return (count, status)
        case .refused: return (0, .error)
        }
    }
}
