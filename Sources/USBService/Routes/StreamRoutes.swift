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
        router.get("/v1/devices/{id}/endpoints/{endpoint}/stream") { try await stream($0) }
        router.post("/v1/devices/{id}/endpoints/{endpoint}/stream", streamsBody: true) { try await upload($0) }
    }

    func upload(_ request: RoutedRequest) async throws -> HTTPResponse {
        let query = request.query
        try query.allow(only: ["transfers", "transfer_size", "zlp", "timeout_ms"])
        let endpoint = try context.byte(request, "endpoint")
        let (transfers, transferSize) = try Self.transfers(query, defaults: (4, 64 * 1024))
        let zeroLengthPacket = try query.boolean("zlp") ?? false
        let timeout = try context.limits.timeout(query)
        guard let body = request.request.bodyStream else { throw HTTPProblem.internalError }
        let session = try await context.session(request)
        try await context.checkLease(request, session: session, endpoint: endpoint)
        let slot = try context.streamSlots.acquire(device: session.id)
        defer { slot.release() }
        let what = "Streaming to endpoint \(hex(endpoint)) of \(session.id)"
        let result: TransferResult
        let offered: Int
        do {
            (result, offered) = try await context.usb(what, device: session.id) {
                try await session.writeStream(
                    endpoint, transfers: transfers, transferSize: transferSize, zeroLengthPacket: zeroLengthPacket,
                    timeout: timeout, logger: request.request.logger, next: { try await body.read() })
            }
        } catch is HTTPRequestBody.Failure {
            // The client went away mid-body: nobody reads this answer.
            throw CancellationError()
        }
        if result.status == .completed {
            // Read what is left, if anything (there is nothing, unless the transfers stopped early).
            while try await body.read() != nil {}
        }
        return try TransferAnswer.sent(result, requested: max(offered, body.received), context: what)
    }

    func stream(_ request: RoutedRequest) async throws -> HTTPResponse {
        let query = request.query
        try query.allow(only: ["transfers", "transfer_size", "max_bytes", "duration_ms", "timeout_ms"])
        let endpoint = try context.byte(request, "endpoint")
        var options = BulkInStream.Options()
        (options.transfers, options.transferSize) = try Self.transfers(
            query, defaults: (options.transfers, options.transferSize))
        options.maxBytes = try query.integer("max_bytes", in: 1...Int(Int64.max))
        options.timeout = UInt32(try query.integer("timeout_ms", in: 1...context.limits.maxTimeoutMs) ?? 0)
        let duration = try query.integer("duration_ms", in: 1...86_400_000).map { Duration.milliseconds($0) }
        let session = try await context.session(request)
        try await context.checkLease(request, session: session, endpoint: endpoint)
        let slot = try context.streamSlots.acquire(device: session.id)
        let stream = try await context.usb("Streaming from endpoint \(hex(endpoint)) of \(session.id)", device: session.id) {
            try await session.stream(endpoint, options: options)
        }
        var logger = request.request.logger
        logger[metadataKey: "usb.device"] = .string(session.id)
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
