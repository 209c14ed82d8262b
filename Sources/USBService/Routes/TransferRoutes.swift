import HTTPRouting
import HTTPServer
import USB

/// Control transfers, bulk and interrupt reads and writes, and clearing a halt.
struct TransferRoutes: Sendable {
    let context: RouteContext

    func register(in router: inout Router) {
        router.device(
            "POST", "/v1/devices/{id}/control", requires: Access.transfer,
            DeviceRoute(
                query: ControlRequest.parameterNames, lease: .byRoute(where: "checkControl: by the request's recipient"),
                parse: { [limits = context.limits] in try ControlRequest($0, limits: limits) }),
            context: context, control)
        router.device(
            "GET", "/v1/devices/{id}/endpoints/{endpoint}/data", requires: Access.transfer,
            DeviceRoute(
                query: ["length", "timeout_ms"], lease: .endpoint,
                parse: { [limits = context.limits] request in
                    (length: try request.query.requiredInteger("length", in: 1...limits.maxReadLength),
                     timeout: try limits.timeout(request.query))
                }),
            context: context, read)
        router.device(
            "POST", "/v1/devices/{id}/endpoints/{endpoint}/data", requires: Access.transfer,
            DeviceRoute(
                query: ["timeout_ms", "zlp"], lease: .endpoint,
                parse: { [limits = context.limits] request in
                    (timeout: try limits.timeout(request.query), zlp: try request.query.boolean("zlp") ?? false)
                }),
            context: context, write)
        router.device(
            "POST", "/v1/devices/{id}/endpoints/{endpoint}/clear-halt", requires: Access.transfer,
            DeviceRoute(query: [], lease: .endpoint), context: context, clearHalt)
    }

    func control(_ call: DeviceCall, _ control: ControlRequest) async throws -> HTTPResponse {
        let (request, session) = (call.request, call.session)
        let setup = control.setup
        let caller = context.caller(request)
        switch try context.checkControl(caller, state: await session.state, device: session.id, setup: setup) {
        case .ready: break
        case .claimFirst(let interface):
            // A kernel driver's interface stays its own: the transfer then fails as usbfs answers it.
            _ = try? await session.claim(interface, detach: false)
        case .hubPort(let port): try await context.checkHubPort(caller, hub: session.id, port: port)
        }
        let what = { "Control request 0x\(String(setup.request, radix: 16)) to \(session.id)" }
        let result: TransferResult
        do {
            result = try await context.usb(what(), device: session.id) {
                try await session.control(
                    setup, data: control.data, timeout: control.timeout, share: context.usbfsShare(request, session),
                    logger: request.request.logger)
            }
        } catch let waited as ControlQueueTimeout {
            throw TransferProblem.outcome(
                .timedOut,
                context: "\(what()) waited \(waited.waitedMs) ms for endpoint 0, which other control requests of the device held, and its timeout ran out before it was sent",
                actualLength: 0)
        }
        if setup.direction == .in {
            return try TransferAnswer.received(
                result, requested: Int(setup.length), json: control.answerInJSON, context: what())
        }
        return try TransferAnswer.sent(result, requested: control.data.count, context: what())
    }

    func read(_ call: DeviceCall, _ input: (length: Int, timeout: UInt32)) async throws -> HTTPResponse {
        let (request, session, endpoint, length, timeout) = (call.request, call.session, call.pathNumber, input.length, input.timeout)
        let what = { "Reading \(length) bytes from endpoint \(hex(endpoint)) of \(session.id)" }
        // Bytes kept from a read are this client's, under this lease (or none): another's read,
        // or this client's under a lease taken or ended since, does not get them.
        let caller = context.caller(request)
        let reader = caller.client + "\u{0}" + (caller.leaseToken ?? "")
        let result = try await context.usb(what(), device: session.id) {
            try await session.read(
                endpoint, length: length, timeout: timeout, reader: reader, share: context.usbfsShare(request, session),
                logger: request.request.logger)
        }
        let json = request.request.headers["Accept"]?.contains("application/json") ?? false
        if result.status.keepsWhatCame && result.actualLength > 0 {
            let kept = "\(what()), of which \(result.actualLength) came and are kept for the next read"
            return try TransferAnswer.received(result, requested: length, json: json, context: kept)
        }
        return try TransferAnswer.received(result, requested: length, json: json, context: what())
    }

    func write(_ call: DeviceCall, _ input: (timeout: UInt32, zlp: Bool)) async throws -> HTTPResponse {
        let (request, session, endpoint, timeout, zeroLengthPacket) = (call.request, call.session, call.pathNumber, input.timeout, input.zlp)
        let data = request.request.body
        let what = { "Writing \(data.count) bytes to endpoint \(hex(endpoint)) of \(session.id)" }
        let result = try await context.usb(what(), device: session.id) {
            try await session.write(
                endpoint, data: data, zeroLengthPacket: zeroLengthPacket, timeout: timeout,
                share: context.usbfsShare(request, session), logger: request.request.logger)
        }
        return try TransferAnswer.sent(result, requested: data.count, context: what())
    }

    func clearHalt(_ call: DeviceCall, _: Void) async throws -> HTTPResponse {
        let (session, endpoint) = (call.session, call.pathNumber)
        try await context.usb("Clearing the halt of endpoint \(hex(endpoint)) of \(session.id)", device: session.id) {
            try await session.clearHalt(endpoint)
        }
        return try .json(ClearHaltAnswer(endpoint: hex(endpoint), halted: false))
    }
}
