import Logging

/// Streams: many transfers in flight on one endpoint, all submitted from the device actor.
extension DeviceSession {
    /// Starts streaming from bulk, interrupt or (with `options.isoPacketSize`) isochronous IN
    /// endpoint `endpoint`: the stream's transfers
    /// are submitted now, and submitted again (from this actor's thread) as they are read.
    /// Its buffers count against `share` (the client's) for the stream's life.
    public func stream(_ endpoint: UInt8, options: BulkInStream.Options, share: UsbfsShare? = nil) async throws -> BulkInStream {
        try await ready()
        let type: TransferType
        if let packetSize = options.isoPacketSize {
            let descriptor = try state.endpoint(endpoint, for: .isoRead)
            let packets = packetSize > 0 && options.transferSize % packetSize == 0 ? options.transferSize / packetSize : 0
            try DeviceState.checkIsoPackets(Array(repeating: packetSize, count: packets), for: descriptor)
            type = .isochronous
        } else {
            let descriptor = try state.endpoint(endpoint, for: .read)
            _ = try DeviceState.checkTransferSize(options.transferSize, for: descriptor)
            type = descriptor.transferType
        }
        leftovers[endpoint] = nil
        let stream = try BulkInStream(io: io, endpoint: endpoint, type: type, options: options, loop: loop, budget: share ?? .unattributed(budget))
        keep(stream)
        stream.start()
        return stream
    }

    /// A stream of a request body to bulk or interrupt OUT endpoint `endpoint`, as the body
    /// arrives (``OutStream``): `transfers` transfers of `transferSize` bytes in flight, and a
    /// zero-length packet after data that fills its last packet if `zeroLengthPacket`.
    public func uploadStream(
        _ endpoint: UInt8, transfers: Int, transferSize: Int, zeroLengthPacket: Bool, timeout: UInt32,
        share: UsbfsShare? = nil, logger: Logger
    ) async throws -> OutStream {
        try await ready()
        let descriptor = try state.endpoint(endpoint, for: .write)
        let packet = try DeviceState.checkTransferSize(transferSize, for: descriptor)
        let stream = try OutStream(
            io: io, endpoint: endpoint, type: descriptor.transferType, transfers: transfers, transferSize: transferSize,
            packetSize: packet, zeroLengthPacket: zeroLengthPacket, timeout: timeout, loop: loop,
            budget: share ?? .unattributed(budget), logger: logger)
        keep(stream)
        return stream
    }

    /// A stream of a request body to isochronous OUT endpoint `endpoint` (``OutStream`` with
    /// packets): cut into packets of `packetSize` bytes (the last one may be shorter),
    /// `packetsPerTransfer` to a URB, with up to `transfers` URBs in flight so that the device
    /// gets a packet every interval. A packet that fails does not stop the stream
    /// (isochronous data is never retried; the outcome's summary counts them); a transfer that
    /// fails as a whole (the device gone, say) does.
    public func isoUploadStream(
        _ endpoint: UInt8, packetSize: Int, packetsPerTransfer: Int, transfers: Int, timeout: UInt32,
        share: UsbfsShare? = nil, logger: Logger
    ) async throws -> OutStream {
        try await ready()
        let descriptor = try state.endpoint(endpoint, for: .isoWrite)
        try DeviceState.checkIsoPackets(Array(repeating: packetSize, count: packetsPerTransfer), for: descriptor)
        let stream = try OutStream(
            io: io, endpoint: endpoint, type: .isochronous, transfers: transfers,
            transferSize: packetSize * packetsPerTransfer, packetSize: packetSize, zeroLengthPacket: false,
            isoPacketSize: packetSize, timeout: timeout, loop: loop, budget: share ?? .unattributed(budget),
            logger: logger)
        keep(stream)
        return stream
    }

    /// Keeps `stream` among the session's, to end it when the session closes.
    private func keep(_ stream: any SessionStream) {
        streams = streams.filter { $0.value.stream != nil }
        streams[ObjectIdentifier(stream)] = WeakStream(stream: stream)
    }
}
