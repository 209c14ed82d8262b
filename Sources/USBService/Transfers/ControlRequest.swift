import FoundationEssentials
import HTTPRouting
import HTTPServer
import USB

/// A control transfer as a request asks for it: in plain form (query parameters, the raw
/// body as OUT data) or in JSON form (a JSON body with the same names, data as hex or base64).
struct ControlRequest: Sendable, Equatable {
    var setup: ControlSetup
    /// The data stage of an OUT request.
    var data: [UInt8]
    var timeout: UInt32
    /// Answer with JSON (the request was JSON, or it accepts application/json).
    var answerInJSON: Bool

    static let parameterNames = [
        "direction", "type", "recipient", "request_type", "request", "value", "index", "length", "timeout_ms",
    ]
    static let jsonNames = parameterNames + ["data_hex", "data_base64"]

    /// Reads the request; every mistake is a 4xx problem that names it.
    init(_ request: RoutedRequest, limits: TransferLimits) throws {
        let parameters: QueryParameters
        let data: [UInt8]
        let isJSON = request.request.headers["Content-Type"]?.lowercased().hasPrefix("application/json") ?? false
        if isJSON {
            try request.query.allow(only: [])
            parameters = try JSONParameters.decode(request.request.body)
            try parameters.allow(only: Self.jsonNames)
            data = try Self.data(parameters)
        } else {
            parameters = request.query
            try parameters.allow(only: Self.parameterNames)
            data = request.request.body
        }
        try self.init(parameters: parameters, data: data, limits: limits)
        answerInJSON = isJSON || (request.request.headers["Accept"]?.contains("application/json") ?? false)
    }

    init(parameters: QueryParameters, data: [UInt8], limits: TransferLimits) throws {
        let (direction, kind, recipient) = try Self.requestType(parameters)
        let request = UInt8(try parameters.requiredInteger("request", in: 0...0xff))
        let value = UInt16(try parameters.integer("value", in: 0...0xffff) ?? 0)
        let index = UInt16(try parameters.integer("index", in: 0...0xffff) ?? 0)
        let length: Int
        if direction == .in {
            guard data.isEmpty else { throw TransferProblem.dataForIn }
            length = try parameters.requiredInteger("length", in: 0...TransferProblem.maxControlData)
        } else {
            guard data.count <= TransferProblem.maxControlData else {
                throw TransferProblem.controlDataTooLarge(count: data.count)
            }
            if let given = try parameters.integer("length", in: 0...TransferProblem.maxControlData), given != data.count {
                throw TransferProblem.lengthMismatch(length: given, dataCount: data.count)
            }
            length = data.count
        }
        setup = ControlSetup(
            direction: direction, kind: kind, recipient: recipient, request: request, value: value, index: index,
            length: UInt16(length))
        self.data = data
        timeout = try limits.timeout(parameters)
        answerInJSON = false
        try Self.refuseStateChanges(setup)
    }

    /// direction, type and recipient, or request_type (bmRequestType) instead of the three.
    private static func requestType(_ parameters: QueryParameters) throws -> (Direction, ControlSetup.Kind, ControlSetup.Recipient) {
        if let raw = try parameters.integer("request_type", in: 0...0xff) {
            let given = ["direction", "type", "recipient"].filter { parameters.string($0) != nil }
            guard given.isEmpty else { throw RoutingProblem.conflictingParameters(["request_type"] + given) }
            guard let parts = ControlSetup.parts(of: UInt8(raw)) else {
                throw RoutingProblem.invalidParameter(
                    name: "request_type", value: parameters.string("request_type") ?? "",
                    expected: "a bmRequestType whose recipient (bits 0-4) is 0-3")
            }
            return parts
        }
        guard let direction = try parameters.choice("direction", among: ["in", "out"]) else {
            throw RoutingProblem.missingParameter(name: "direction", expected: "in or out (or give request_type)")
        }
        let kinds = [ControlSetup.Kind.standard, .class, .vendor]
        guard let kindName = try parameters.choice("type", among: kinds.map(\.name)) else {
            throw RoutingProblem.missingParameter(name: "type", expected: "standard, class or vendor (or give request_type)")
        }
        let recipientName = try parameters.choice("recipient", among: ControlSetup.Recipient.allCases.map(\.name)) ?? "device"
        return (
            direction == "in" ? .in : .out, kinds.first { $0.name == kindName }!,
            ControlSetup.Recipient.allCases.first { $0.name == recipientName }!
        )
    }

    /// OUT data of the JSON form: data_hex or data_base64, not both.
    private static func data(_ parameters: QueryParameters) throws -> [UInt8] {
        switch (parameters.string("data_hex"), parameters.string("data_base64")) {
        case (nil, nil): return []
        case (.some, .some): throw RoutingProblem.conflictingParameters(["data_hex", "data_base64"])
        case (let text?, nil):
            guard let bytes = bytes(fromHex: text) else {
                throw RoutingProblem.invalidParameter(
                    name: "data_hex", value: String(text.prefix(32)), expected: "an even number of hex digits")
            }
            return bytes
        case (nil, let text?):
            guard let data = Data(base64Encoded: text) else {
                throw RoutingProblem.invalidParameter(
                    name: "data_base64", value: String(text.prefix(32)), expected: "base64 (RFC 4648, with padding)")
            }
            return Array(data)
        }
    }

    /// Requests that change the device behind the daemon's back, or break it until it is
    /// replugged, in every form (any direction, any recipient, any index): SET_CONFIGURATION and
    /// SET_INTERFACE (the daemon tracks both: use their routes), SET_ADDRESS (the device would
    /// answer at another address than the host knows), SET_DESCRIPTOR (it would rewrite the
    /// descriptors the host and the policy read), SET_FEATURE(TEST_MODE) (the device leaves normal
    /// operation), and any request of the reserved type (USB defines none: nothing to allow).
    static func refuseStateChanges(_ setup: ControlSetup) throws(TransferProblem) {
        if setup.kind == .reserved {
            throw .requestRefused(
                request: "a request of the reserved type (bmRequestType bits 5-6 = 3)",
                why: "USB defines no such request; what a device does with one is nobody's to say")
        }
        guard setup.kind == .standard else { return }
        switch setup.request {
        case 0x09:
            throw .useDedicatedRoute(request: "SET_CONFIGURATION", route: "PUT /v1/devices/{id}/configuration")
        case 0x0b:
            throw .useDedicatedRoute(
                request: "SET_INTERFACE", route: "PUT /v1/devices/{id}/interfaces/{interface}/alt-setting")
        case 0x05:
            throw .requestRefused(request: "SET_ADDRESS", why: "the host assigns addresses; the device would stop answering at its own")
        case 0x07:
            throw .requestRefused(
                request: "SET_DESCRIPTOR", why: "it would rewrite the descriptors the host, its drivers and the policy go by")
        case 0x03 where setup.value == 2:
            throw .requestRefused(request: "SET_FEATURE(TEST_MODE)", why: "the device would leave normal operation until it is replugged")
        default:
            return
        }
    }
}
