import FoundationEssentials
import HTTPRouting
import HTTPServer
import USB

/// Isochronous transfers: one URB of up to 128 packets, IN (GET) or OUT (POST), answered with
/// every packet's outcome. Longer isochronous data goes through …/stream.
struct IsoRoutes: Sendable {
    let context: RouteContext

    func register(in router: inout Router) {
        let limits = context.limits
        router.device(
            "GET", "/v1/devices/{id}/endpoints/{endpoint}/iso", requires: Access.transfer,
            DeviceRoute(
                query: ["packet_lengths", "packet_size", "packets", "timeout_ms"], lease: .endpoint,
                parse: { (timeout: try limits.timeout($0.query), lengths: [Int]()) },
                prepare: { call, input in
                    let lengths = try IsoPacketQuery.inLengths(
                        call.request.query, defaultPacketSize: await call.session.state.defaultIsoPacketSize(call.pathNumber))
                    guard lengths.reduce(0, +) <= limits.maxReadLength else {
                        throw RoutingProblem.invalidParameter(
                            name: "packets", value: String(lengths.count),
                            expected: "packets of at most \(limits.maxReadLength) bytes in all (--max-read-length)")
                    }
                    return (input.timeout, lengths)
                }),
            context: context, read)
        router.device(
            "POST", "/v1/devices/{id}/endpoints/{endpoint}/iso", requires: Access.transfer,
            DeviceRoute(
                query: ["packet_lengths", "packet_size", "timeout_ms"], lease: .endpoint,
                parse: { (timeout: try limits.timeout($0.query), lengths: [Int]()) },
                prepare: { call, input in
                    let lengths = try IsoPacketQuery.outLengths(
                        call.request.query, count: call.request.request.body.count,
                        defaultPacketSize: await call.session.state.defaultIsoPacketSize(call.pathNumber))
                    return (input.timeout, lengths)
                }),
            context: context, write)
    }

    /// The answer: the transfer's status and each packet's; for IN the packets' bytes, packed.
    struct Answer: Encodable, Sendable {
        struct Packet: Encodable, Sendable {
            var length: Int
            var actualLength: Int
            var status: String
        }
        var endpoint: String
        var status: String
        var actualLength: Int
        var requestedLength: Int
        var failedPackets: Int
        var packets: [Packet]
        var dataBase64: String?
    }

    func read(_ call: DeviceCall, _ input: (timeout: UInt32, lengths: [Int])) async throws -> HTTPResponse {
        let (request, session, endpoint, timeout, lengths) = (call.request, call.session, call.pathNumber, input.timeout, input.lengths)
        let what = "Isochronous read of \(lengths.count) packets from endpoint \(hex(endpoint)) of \(session.id)"
        let result = try await context.usb(what, device: session.id) {
            try await session.isoTransfer(
                endpoint, packetLengths: lengths, data: nil, timeout: timeout, share: context.usbfsShare(request, session),
                logger: request.request.logger)
        }
        return try answer(result, endpoint: endpoint, requested: lengths.reduce(0, +), context: what, withData: true)
    }

    func write(_ call: DeviceCall, _ input: (timeout: UInt32, lengths: [Int])) async throws -> HTTPResponse {
        let (request, session, endpoint, timeout, lengths) = (call.request, call.session, call.pathNumber, input.timeout, input.lengths)
        let data = request.request.body
        let what = "Isochronous write of \(lengths.count) packets to endpoint \(hex(endpoint)) of \(session.id)"
        let result = try await context.usb(what, device: session.id) {
            try await session.isoTransfer(
                endpoint, packetLengths: lengths, data: data, timeout: timeout, share: context.usbfsShare(request, session),
                logger: request.request.logger)
        }
        return try answer(result, endpoint: endpoint, requested: data.count, context: what, withData: false)
    }

    private func answer(
        _ result: IsoTransferResult, endpoint: UInt8, requested: Int, context: String, withData: Bool
    ) throws -> HTTPResponse {
        guard result.status == .completed else {
            throw TransferProblem.outcome(result.status, context: context, actualLength: result.actualLength)
        }
        var headers = TransferAnswer.headers(status: result.status, actualLength: result.actualLength)
        headers.add("X-USB-Iso-Failed-Packets", String(result.failedPackets))
        return try .json(
            Answer(
                endpoint: hex(endpoint), status: result.status.rawValue, actualLength: result.actualLength,
                requestedLength: requested, failedPackets: result.failedPackets,
                packets: result.packets.map {
                    Answer.Packet(length: $0.length, actualLength: $0.actualLength, status: $0.status.rawValue)
                },
                dataBase64: withData ? Data(result.data).base64EncodedString() : nil),
            headers: headers)
    }
}
