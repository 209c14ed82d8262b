import Foundation
import HTTPRouting
import HTTPServer
import BenchPage
import Testing
import USB
@testable import USBService

/// openapi.yaml names exactly the routes the daemon serves.
@Suite struct OpenAPIContractTests {
    static let document: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("openapi.yaml"), encoding: .utf8)) ?? ""
    }()

    /// (METHOD, path) pairs under `paths:`: two-space keys starting with '/', four-space method keys.
    static func operations(in yaml: String) -> Set<String> {
        var result: Set<String> = []
        var inPaths = false
        var path: String?
        let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options"]
        for line in yaml.split(separator: "\n").map(String.init) {
            if !line.hasPrefix(" ") { inPaths = line == "paths:" }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let path {
                let key = line.trimmingCharacters(in: .whitespaces).split(separator: ":").first.map(String.init) ?? ""
                if methods.contains(key) { result.insert("\(key.uppercased()) \(path)") }
            }
        }
        return result
    }

    @Test func everyRouteIsDocumentedAndNothingElse() {
        let served = Set(
            API.router(catalog: FakeCatalog(list: [])).table.map { "\($0.method) \($0.template)" })
        let documented = Self.operations(in: Self.document)
        #expect(!documented.isEmpty, "openapi.yaml was read")
        #expect(served == documented)
    }

    /// One problem of every kind the daemon answers with.
    static let problems: [any HTTPResponseError] = {
        var problems: [any HTTPResponseError] = [
            HTTPProblem.internalError, HTTPProblem.bodyTooLarge(limit: 1), HTTPProblem.shuttingDown,
            HTTPProblem.cancelled,
            RoutingProblem.notFound(path: "/"), RoutingProblem.methodNotAllowed(method: "PUT", allowed: ["GET"]),
            RoutingProblem.unknownParameter(name: "a", allowed: []),
            RoutingProblem.invalidParameter(name: "a", value: "b", expected: "c"),
            RoutingProblem.repeatedParameter(name: "a"), RoutingProblem.missingParameter(name: "a", expected: "b"),
            RoutingProblem.conflictingParameters(["a", "b"]), RoutingProblem.invalidJSON("x"),
            USBProblem.invalidDeviceID("x"), USBProblem.deviceNotFound("1-1"),
            USBProblem.deviceRemoved("1-1", time: 0), USBProblem.serialNotFound("x"),
            USBProblem.ambiguousSerial("x", ids: ["1-1", "1-2"]), USBProblem.rootHub("usb1", action: "reset"),
            WaitProblem(wantedPresent: true, timeoutMilliseconds: 1, matching: []),
            WaitProblem(wantedPresent: false, timeoutMilliseconds: 1, matching: ["1-1"]),
            NotReadyProblem(reason: "x"), AuthProblem.missing, AuthProblem.invalid, AuthProblem.invalidTicket,
            PageProblem.notFound("x"),
            AuthProblem.insufficientScope(needed: .admin, name: "x"),
            AuthProblem.rateLimited(name: "x", perSecond: 1, wait: .seconds(1)),
            TooManyStreams(device: "1-1", limit: 8, bound: .device), LeaseProblem.notFound("x"),
            LeaseProblem.held(Self.lease), LeaseProblem.wrongToken(Self.lease),
            TransferProblem.dataForIn, TransferProblem.lengthMismatch(length: 1, dataCount: 2),
            TransferProblem.controlDataTooLarge(count: 5000),
            TransferProblem.useDedicatedRoute(request: "SET_CONFIGURATION", route: "PUT /"),
            TransferProblem.requestRefused(request: "SET_ADDRESS", why: "x"),
            OriginProblem.misdirected(host: "x"), OriginProblem.foreign(origin: "x", holdsOpen: false), OriginProblem.foreign(origin: "x", holdsOpen: true),
            AccessProblem.protected(device: "1-1", what: "x", why: "y"), AccessProblem.adminOnly(device: "1-1", what: "x"),
            AccessProblem.portOfHiddenDevice(hub: "1-1", port: 1), AuthProblem.tooManyFailures(wait: .seconds(1)),
            TooManyStreams(device: "1-1", limit: 4, bound: .client),
            USBProblem.usbfsBudget(UsbfsBudget.Exhausted(wanted: 2, free: 1, limit: 3)),
            USBProblem.reenumerated("1-1", expected: 3, now: 4), USBProblem.invalidAddress("x"),
            USBProblem.kernelDriverBound("1-1", interface: 0, driver: "usbhid"),
            ConsoleProblem.notFound(device: "1-1", interface: 0),
            ConsoleProblem.unavailable(device: "1-1", tty: "ttyACM0", reason: "x"),
            ConsoleProblem.writerBusy(device: "1-1", tty: "ttyACM0"), ConsoleProblem.gone(device: "1-1", tty: "ttyACM0"),
            ConsoleProblem.inputTimedOut(device: "1-1", tty: "ttyACM0", written: 0, of: 1),
            ConsoleProblem.lineRefused(device: "1-1", tty: "ttyACM0", reason: "x"),
            WebSocketHandshakeProblem.upgradeRequired, WebSocketHandshakeProblem.key,
            WebSocketHandshakeProblem.subprotocol(wanted: "usbhttpd.urb.1"),
        ]
        let errors: [USBError] = [
            .io, .invalidParameter, .access, .noDevice, .notFound, .busy, .timeout, .overflow, .pipe, .interrupted,
            .noMemory, .notSupported, .other,
        ]
        problems += errors.map { USBProblem.usb($0, context: "x") }
        problems += TransferStatus.allCases.map { TransferProblem.outcome($0, context: "x", actualLength: 0) }
        let states: [DeviceStateError] = [
            .unconfigured, .configurationNotFound(1, available: []), .interfaceNotFound(1, configuration: 1),
            .altSettingNotFound(interface: 0, altSetting: 1), .interfaceClaimed(0), .interfaceNotClaimed(0),
            .claimsHeld([0]), .controlEndpoint(0), .endpointNotFound(1, configuration: 1),
            .wrongDirection(1, expected: .in), .wrongType(1, .isochronous),
            .transferSizeNotPacketMultiple(size: 1, maxPacketSize: 512),
            .endpointNotInAltSetting(1, interface: 1, current: 0, candidates: [1]), .isoPacketCount(0, max: 128),
            .isoPacketTooLarge(1, length: 4000, max: 192),
        ]
        problems += states.map { DeviceStateProblem($0, device: "1-1") }
        return problems
    }()

    static let lease = Lease(
        id: "a", token: "b", device: "1-1", interface: nil, holder: "ci", fencing: 1, renewed: .init(instant: .now, unix: 0))

    /// The `code` enum of the Problem schema lists every code the daemon can answer with.
    @Test func everyProblemCodeIsDocumented() {
        guard let start = Self.document.range(of: "    Problem:\n") else {
            Issue.record("no Problem schema")
            return
        }
        let schema = Self.document[start.upperBound...].prefix { _ in true }
        let listed = Set(
            schema.split(separator: "\n").prefix(120).compactMap { line -> String? in
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                return trimmed.hasPrefix("- ") ? String(trimmed.dropFirst(2)) : nil
            })
        let used = Set(Self.problems.map(\.code))
        #expect(used.subtracting(listed).isEmpty, "undocumented: \(used.subtracting(listed).sorted())")
        #expect(listed.subtracting(used).isEmpty, "documented but never used: \(listed.subtracting(used).sorted())")
    }
}
