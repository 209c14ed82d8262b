import HTTPRouting
import HTTPServer
import USB

/// `/v1/events` (arrivals and removals as Server-Sent Events) and `/v1/wait` (until a
/// matching device is present, or absent).
struct EventRoutes: Sendable {
    let context: RouteContext
    static let keepAliveRange = 100...300_000

    func register(in router: inout Router) {
        router.get("/v1/events", requires: Access.read) { try await events($0) }
        router.get("/v1/wait", requires: Access.read) { try await wait($0) }
    }

    func events(_ request: RoutedRequest) async throws -> HTTPResponse {
        let filter = try DeviceFilter(query: request.query, others: ["keepalive_ms", "present", "last_event_id"])
        let keepAlive = try request.query.integer("keepalive_ms", in: Self.keepAliveRange) ?? 15_000
        let present = try request.query.boolean("present") ?? false
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
        let stream = DeviceEventStream(log: log, feed: feed, keepAlive: .milliseconds(keepAlive))
        return .streaming(
            stream, headers: ["Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"])
    }

    func wait(_ request: RoutedRequest) async throws -> HTTPResponse {
        let filter = try DeviceFilter(query: request.query, others: ["for", "timeout_ms", "not_address"])
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
        let matches = { (device: USBDeviceInfo) in filter.matches(device) && device.address != notAddress.map(UInt8.init) }
        let deadline = ContinuousClock.now + .milliseconds(timeout)
        let log = context.catalog.changes
        _ = try await context.devices()
        while true {
            let (latest, devices) = log.snapshot()
            let matching = devices.filter(matches)
            if matching.isEmpty != wantPresent {
                return try .json(DeviceList(matching, node: context.node))
            }
            guard ContinuousClock.now < deadline else {
                throw WaitProblem(wantedPresent: wantPresent, timeoutMilliseconds: timeout, matching: matching.map(\.id))
            }
            await log.waitForChange(after: latest, until: deadline)
            try Task.checkCancellation()
        }
    }
}
