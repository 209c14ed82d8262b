import HTTPRouting
import HTTPServer
import USB

/// `/v1/events` (arrivals and removals as Server-Sent Events; with `activity=true`, leases,
/// claims and streams changing too) and `/v1/wait` (until a
/// matching device is present, or absent).
struct EventRoutes: Sendable {
    let context: RouteContext
    static let keepAliveRange = 100...300_000

    func register(in router: inout Router) {
        router.get("/v1/events", requires: Access.readHeldOpen) { try await events($0) }
        router.get("/v1/wait", requires: Access.readHeldOpen) { try await wait($0, claiming: false) }
        // The same wait that also claims on the device that comes back (`claim`): a change, so a
        // POST with the transfer scope, which the origin and HEAD guards treat as one (a GET
        // that claimed would be open to any web page, and to HEAD).
        router.post("/v1/wait", requires: Access.transfer) { try await wait($0, claiming: true) }
    }

    func events(_ request: RoutedRequest) async throws -> HTTPResponse {
        let filter = try DeviceFilter(query: request.query, others: ["keepalive_ms", "present", "last_event_id", "activity"])
        let keepAlive = try request.query.integer("keepalive_ms", in: Self.keepAliveRange) ?? 15_000
        let present = try request.query.boolean("present") ?? false
        let activity = try request.query.boolean("activity") ?? false
        let log = context.catalog.changes
        // A scan now, so that the stream starts from what is plugged in at this moment.
        _ = try await context.devices()

        let (latest, devices) = log.snapshot()
        var feed = EventFeed(instance: log.instance, filter: filter, cursor: latest, node: context.node)
        if let text = request.request.headers["Last-Event-ID"] ?? request.query.string("last_event_id") {
            let resumeFrom = EventID(text).flatMap { $0.instance == log.instance ? $0.sequence : nil }
            if let resumeFrom, let missed = log.changes(after: resumeFrom) {
                feed = EventFeed(instance: log.instance, filter: filter, cursor: resumeFrom, node: context.node)
                feed.take(missed)
            } else {
                let reason =
                    resumeFrom == nil
                    ? "'\(text)' is not an event id of this daemon run" : "events after '\(text)' are no longer kept"
                feed.resync(reason: reason, latest: latest, devices: devices)
            }
        } else if present {
            feed.present(latest: latest, devices: devices)
        }
        let stream = DeviceEventStream(
            log: log, feed: feed, keepAlive: .milliseconds(keepAlive), activity: activity ? context.activity : nil)
        return .streaming(
            stream, headers: ["Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"])
    }

    func wait(_ request: RoutedRequest, claiming: Bool) async throws -> HTTPResponse {
        let filter = try DeviceFilter(
            query: request.query, others: ["for", "timeout_ms", "not_address"] + (claiming ? ["claim"] : []))
        guard !filter.isEmpty else {
            throw RoutingProblem.missingParameter(
                name: DeviceFilter.parameterNames.joined(separator: " or "),
                expected: "at least one filter, to say which device to wait for")
        }
        let wantPresent = (try request.query.choice("for", among: ["present", "absent"]) ?? "present") == "present"
        let timeout = try request.query.integer("timeout_ms", in: 0...context.limits.maxTimeoutMs) ?? 30_000
        // The way back after a reset, a detach or a firmware update: the device must be at
        // another address than the instance the client saw (it enumerated again), which it
        // may still be when the client starts waiting.
        let notAddress = try request.query.integer("not_address", in: 1...127)
        // The interfaces to claim again on the device that comes back (the port's, so `id` is
        // needed), as the claim route would: leases, the interface policy.
        let claims = try request.query.string("claim").map(Self.interfaceNumbers)
        if claims != nil {
            guard filter.id != nil, wantPresent else {
                throw RoutingProblem.missingParameter(name: "id", expected: "the port whose device comes back, to claim on it (for=present)")
            }
        }
        let matches = { (device: USBDeviceInfo) in filter.matches(device) && device.address != notAddress.map(UInt8.init) }
        let deadline = ContinuousClock.now + .milliseconds(timeout)
        let log = context.catalog.changes
        _ = try await context.devices()
        while true {
            let (latest, devices) = log.snapshot()
            let matching = devices.filter(matches)
            if matching.isEmpty != wantPresent {
                var list = DeviceList(matching, node: context.node)
                if let claims, let device = matching.first { list.claims = try await claim(claims, on: device, for: request) }
                return try .json(list)
            }
            guard ContinuousClock.now < deadline else {
                throw WaitProblem(wantedPresent: wantPresent, timeoutMilliseconds: timeout, matching: matching.map(\.id))
            }
            await log.waitForChange(after: latest, until: deadline)
            try Task.checkCancellation()
        }
    }

    /// Claims `numbers` on `device` (the one that came back): each that its active
    /// configuration has; the others are named as not claimed, with why. All or nothing: when
    /// one claim is refused (a lease, the policy, a busy interface), those this call made are
    /// released again (their drivers back) before the refusal is answered.
    func claim(_ numbers: [UInt8], on device: USBDeviceInfo, for request: RoutedRequest) async throws -> WaitClaims {
        let id = device.id
        guard let session = try await context.usb("Opening device \(id)", device: id, { try await context.catalog.session(id: id) })
        else { throw await context.absent(id) }
        var result = WaitClaims()
        var made: [UInt8] = []
        for number in numbers {
            guard (try? await session.state.interface(number)) != nil else {
                result.notClaimed.append(.init(interface: Int(number), reason: "the device that came back has no interface \(number)"))
                continue
            }
            let before = await session.state.claims[number] != nil
            do {
                _ = try await context.claim(number, of: session, detach: true, for: request)
            } catch {
                for claimed in made.reversed() { try? await session.release(claimed) }
                request.request.logger.info(
                    "claiming after the way back refused: none kept",
                    metadata: ["usb.device": "\(id)", "usb.interface": "\(number)", "usb.released": "\(made)"])
                throw error
            }
            if !before { made.append(number) }
            result.claimed.append(Int(number))
        }
        request.request.logger.info(
            "claimed again after the way back",
            metadata: ["usb.device": "\(id)", "usb.interfaces": "\(result.claimed)", "usb.address": "\(device.address)"])
        return result
    }

    /// "0,1": interface numbers, at most 32 of them.
    static func interfaceNumbers(_ text: String) throws(RoutingProblem) -> [UInt8] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        var numbers: [UInt8] = []
        for part in parts {
            guard let value = QueryParameters.parseInteger(String(part)), (0...255).contains(value), parts.count <= 32 else {
                throw .invalidParameter(name: "claim", value: text, expected: "interface numbers (0-255) separated by commas, at most 32")
            }
            if !numbers.contains(UInt8(value)) { numbers.append(UInt8(value)) }
        }
        return numbers
    }
}

/// What a wait with `claim` claimed on the device that came back.
struct WaitClaims: Encodable, Sendable {
    struct NotClaimed: Encodable, Sendable {
        var interface: Int
        var reason: String
    }
    var claimed: [Int] = []
    var notClaimed: [NotClaimed] = []
}
