import HTTPRouting
import HTTPServer
import USB

/// Bulk and interrupt IN streamed into a chunked response, and request bodies of any size
/// streamed OUT.
struct StreamRoutes: Sendable {
    let context: RouteContext

    /// The most bytes one stream may keep in flight (transfers × transfer_size).
    static let maxBytesInFlight = 8 << 20

    func register(in router: inout Router) {
        router.device(
            "GET", "/v1/devices/{id}/endpoints/{endpoint}/stream", requires: Access.transfer,
            DeviceRoute(
                query: ["transfers", "transfer_size", "max_bytes", "duration_ms", "timeout_ms", "packets", "packet_size"],
                lease: .endpoint, slot: .stream, parse: { [limits = context.limits] in try Self.streamOptions($0, limits) },
                prepare: { call, input in
                    var (options, duration) = input
                    let query = call.request.query
                    if let iso = try await Self.isoPackets(
                        query, session: call.session, endpoint: call.pathNumber, excluding: ["transfer_size"])
                    {
                        options.transfers = try Self.isoTransfers(query, packets: iso, default: options.transfers)
                        options.isoPacketSize = iso.size
                        options.transferSize = iso.size * iso.perTransfer
                    } else {
                        try Self.refuse(query, ["packets", "packet_size"], for: "a bulk or interrupt endpoint")
                        (options.transfers, options.transferSize) = try Self.transfers(
                            query, defaults: (options.transfers, options.transferSize))
                    }
                    return (options, duration)
                }),
            context: context, stream)
        router.device(
            "POST", "/v1/devices/{id}/endpoints/{endpoint}/stream", requires: Access.transfer, streamsBody: true,
            DeviceRoute(
                query: ["transfers", "transfer_size", "zlp", "timeout_ms", "packets", "packet_size"], lease: .endpoint,
                slot: .stream,
                parse: { [limits = context.limits] request in
                    let timeout = try limits.timeout(request.query)
                    guard request.request.bodyStream != nil else { throw HTTPProblem.internalError }
                    return Upload(timeout: timeout)
                },
                prepare: { call, input in try await Self.uploadShape(call, input) }),
            context: context, upload)
    }

    /// An upload's parameters: read from the request, then shaped by its endpoint's kind.
    struct Upload: Sendable {
        var timeout: UInt32
        var iso: IsoStreamPackets?
        var bulk = (transfers: 0, transferSize: 0, zeroLengthPacket: false)
        var isoTransfers = 0
    }

    private static func uploadShape(_ call: DeviceCall, _ input: Upload) async throws -> Upload {
        var upload = input
        let query = call.request.query
        upload.iso = try await Self.isoPackets(
            query, session: call.session, endpoint: call.pathNumber, excluding: ["transfer_size", "zlp"])
        if let iso = upload.iso {
            upload.isoTransfers = try Self.isoTransfers(query, packets: iso, default: 4)
        } else {
            try Self.refuse(query, ["packets", "packet_size"], for: "a bulk or interrupt endpoint")
            (upload.bulk.transfers, upload.bulk.transferSize) = try Self.transfers(query, defaults: (4, 64 * 1024))
            upload.bulk.zeroLengthPacket = try query.boolean("zlp") ?? false
        }
        return upload
    }

    /// A stream's options from its query (before its endpoint is known) and how long it may run.
    private static func streamOptions(_ request: RoutedRequest, _ limits: TransferLimits) throws -> (
        BulkInStream.Options, Duration?
    ) {
        let query = request.query
        var options = BulkInStream.Options()
        options.maxBytes = try query.integer("max_bytes", in: 1...Int(Int64.max))
        options.timeout = UInt32(try query.integer("timeout_ms", in: 1...limits.maxTimeoutMs) ?? 0)
        let duration = try query.integer("duration_ms", in: 1...86_400_000).map { Duration.milliseconds($0) }
        return (options, duration)
    }

    /// A body of any size to a bulk, interrupt or isochronous OUT endpoint, as it arrives: its
    /// pieces go straight into the stream's transfers as the server reads them (``OutStream``).
    func upload(_ call: DeviceCall, _ upload: Upload) async throws -> HTTPResponse {
        let (request, session, endpoint, interface, slot) = (call.request, call.session, call.pathNumber, call.interface, call.slot!)
        let (timeout, iso, bulk, isoTransfers) = (upload.timeout, upload.iso, upload.bulk, upload.isoTransfers)
        guard let body = request.request.bodyStream else { throw HTTPProblem.internalError }
        defer { slot.release() }
        let what = {
            iso == nil
                ? "Streaming to endpoint \(hex(endpoint)) of \(session.id)"
                : "Streaming isochronous packets to endpoint \(hex(endpoint)) of \(session.id)"
        }
        let logger = request.request.logger
        let stream = try await context.usb(what(), device: session.id) {
            if let iso {
                return try await session.isoUploadStream(
                    endpoint, packetSize: iso.size, packetsPerTransfer: iso.perTransfer, transfers: isoTransfers,
                    timeout: timeout, share: context.usbfsShare(request, session), logger: logger)
            }
            return try await session.uploadStream(
                endpoint, transfers: bulk.transfers, transferSize: bulk.transferSize,
                zeroLengthPacket: bulk.zeroLengthPacket, timeout: timeout, share: context.usbfsShare(request, session),
                logger: logger)
        }
        slot.onCut { stream.cancel() }
        slot.meter(on: session.loop) { body.received }
        body.attach(UploadSink(stream: stream, body: body))
        let outcome = await withTaskCancellationHandler { await stream.outcome() } onCancel: { stream.cancel() }
        if outcome.cancelled {
            logger.notice(
                iso == nil ? "stream to the device ended early" : "isochronous stream to the device ended early",
                metadata: [
                    "usb.device": "\(session.id)", "usb.endpoint": "\(hex(endpoint))",
                    "usb.stream.bytes": "\(outcome.result.actualLength)",
                    "error": .string(slot.isCut ? "cut by a lease" : "the client went away"),
                ])
            if slot.isCut {
                logger.notice("upload cut: a lease now covers its interface")
                try context.checkLease(request, device: session.id, interface: interface)
            }
            throw CancellationError()
        }
        let requested = max(outcome.offered, body.received)
        guard let summary = outcome.iso else {
            return try TransferAnswer.sent(outcome.result, requested: requested, context: what())
        }
        guard summary.status == .completed else {
            throw TransferProblem.outcome(summary.status, context: what(), actualLength: summary.actualLength)
        }
        var headers = TransferAnswer.headers(status: summary.status, actualLength: summary.actualLength)
        headers.add("X-USB-Iso-Failed-Packets", String(summary.failedPackets))
        return try .json(
            IsoUploadAnswer(
                status: summary.status.rawValue, actualLength: summary.actualLength, requestedLength: requested,
                packets: summary.packets, failedPackets: summary.failedPackets,
                failures: summary.failures.map { IsoUploadAnswer.Failure(index: $0.index, status: $0.status.rawValue) }),
            headers: headers)
    }

    /// The answer to an isochronous upload: how the stream went, packet by packet.
    struct IsoUploadAnswer: Encodable, Sendable {
        struct Failure: Encodable, Sendable {
            var index: Int
            var status: String
        }
        var status: String
        var actualLength: Int
        var requestedLength: Int
        var packets: Int
        var failedPackets: Int
        var failures: [Failure]
    }

    /// How a stream cuts isochronous data into packets.
    struct IsoStreamPackets {
        var size: Int
        var perTransfer: Int
    }

    /// For an endpoint that is isochronous in its current alternate setting: `packet_size`
    /// (default: what it carries per interval) and `packets` per transfer (1-128, default 32);
    /// nil for the other endpoints. `excluding` are parameters that do not apply to it.
    private static func isoPackets(
        _ query: QueryParameters, session: DeviceSession, endpoint: UInt8, excluding: [String]
    ) async throws -> IsoStreamPackets? {
        let state = await session.state
        guard state.currentEndpoint(endpoint)?.transferType == .isochronous else { return nil }
        try refuse(query, excluding, for: "an isochronous endpoint (it takes packets and packet_size)")
        let size = try query.integer("packet_size", in: 1...65535) ?? state.defaultIsoPacketSize(endpoint)
        let perTransfer = try query.integer("packets", in: 1...128) ?? 32
        return IsoStreamPackets(size: size, perTransfer: perTransfer)
    }

    /// `transfers` (1-32) of an isochronous stream, with at most ``maxBytesInFlight`` bytes in flight.
    private static func isoTransfers(_ query: QueryParameters, packets: IsoStreamPackets, default: Int) throws(RoutingProblem) -> Int {
        let transfers = try query.integer("transfers", in: 1...32) ?? `default`
        guard transfers * packets.size * packets.perTransfer <= maxBytesInFlight else {
            throw .invalidParameter(
                name: "packets", value: String(packets.perTransfer),
                expected: "transfers × packets × packet_size of at most \(maxBytesInFlight) bytes")
        }
        return transfers
    }

    /// 400 invalid-parameter for a parameter that does not apply to this kind of endpoint.
    private static func refuse(_ query: QueryParameters, _ names: [String], for what: String) throws(RoutingProblem) {
        if let name = names.first(where: { query.string($0) != nil }) {
            throw .invalidParameter(name: name, value: query.string(name) ?? "", expected: "nothing: it does not apply to \(what)")
        }
    }

    func stream(_ call: DeviceCall, _ input: (options: BulkInStream.Options, duration: Duration?)) async throws
        -> HTTPResponse
    {
        let (request, session, endpoint, slot) = (call.request, call.session, call.pathNumber, call.slot!)
        let (options, duration) = input
        let stream = try await context.usb("Streaming from endpoint \(hex(endpoint)) of \(session.id)", device: session.id) {
            try await session.stream(endpoint, options: options, share: context.usbfsShare(request, session))
        }
        // The stream logs after its request's task (a lease cut comes in another request's): its
        // lines carry the request's metadata themselves.
        let logger = request.request.boundLogger.with("usb.device", .string(session.id))
        slot.meter(on: session.loop) { stream.statistics.bytes }
        // A lease granted over this stream cuts it: the client sees an incomplete body.
        slot.onCut { [logger] in
            logger.notice("stream cut: a lease now covers its interface")
            stream.cancel()
        }
        let trailers = request.request.headers["TE"]?.lowercased().contains("trailers") ?? false
        var headers: HTTPHeaders = [
            "Content-Type": "application/octet-stream",
            "X-USB-Buffer-Source": stream.zeroCopy ? "zero-copy" : "fallback",
            "X-USB-Transfers": String(options.transfers),
            "X-USB-Transfer-Size": String(options.transferSize),
        ]
        if trailers { headers.set("Trailer", "X-USB-Stream-End, X-USB-Stream-Bytes") }
        return .streaming(
            EndpointStream(stream, duration: duration, trailers: trailers, logger: logger, slot: slot), headers: headers)
    }

    /// `transfers` (1-32) and `transfer_size` (1 B to 1 MiB), with at most
    /// ``maxBytesInFlight`` bytes in flight.
    private static func transfers(_ query: QueryParameters, defaults: (Int, Int)) throws(RoutingProblem) -> (Int, Int) {
        let transfers = try query.integer("transfers", in: 1...32) ?? defaults.0
        let transferSize = try query.integer("transfer_size", in: 1...(1 << 20)) ?? defaults.1
        guard transfers * transferSize <= maxBytesInFlight else {
            throw .invalidParameter(
                name: "transfer_size", value: String(transferSize),
                expected: "transfers × transfer_size of at most \(maxBytesInFlight) bytes")
        }
        return (transfers, transferSize)
    }
}

/// A request body taken straight into an ``OutStream``'s transfers, on the event loop.
private final class UploadSink: HTTPBodySink, @unchecked Sendable {
    let stream: OutStream

    init(stream: OutStream, body: HTTPRequestBody) {
        self.stream = stream
        stream.onRoom { [weak body] in body?.sinkHasRoom() }
    }

    func take(_ bytes: UnsafeRawBufferPointer) -> Int { stream.take(bytes) }
    func bodyEnded() { stream.endOfBody() }
    func bodyFailed() { stream.cancel() }
}
