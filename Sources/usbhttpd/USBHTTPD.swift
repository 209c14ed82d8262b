import ArgumentParser
import Consoles
import EventLoop
import Foundation
import HTTPServer
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import USB
import USBService

@main
struct USBHTTPD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usbhttpd",
        abstract: "Puts this machine's USB devices on the network behind an HTTP/REST API.")

    @Option(help: "The address to listen on (an IPv4 or IPv6 literal, or a host name).")
    var host = "127.0.0.1"

    @Option(help: "The TCP port to listen on; 0 picks a free one.")
    var port: UInt16 = 8080

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "The largest request body accepted, in bytes.")
    var maxBodySize = 1 << 20

    @Option(help: "The timeout of a transfer whose request gives no timeout_ms, in milliseconds.")
    var defaultTimeoutMs = 5_000

    @Option(help: "The largest timeout_ms a request may give; also what timeout_ms=0 (no timeout) gets, unless --allow-unbounded-timeouts.")
    var maxTimeoutMs = 600_000

    @Flag(help: "Let timeout_ms=0 (and a URB channel's timeout 0) wait for the device without end, as libusb's 0 does; by default it waits --max-timeout-ms at most, so that no client holds a transfer (its usbfs memory, an endpoint) for ever.")
    var allowUnboundedTimeouts = false

    @Option(help: "The largest length of one bulk or interrupt read, in bytes.")
    var maxReadLength = 1 << 20

    @Flag(help: "Let libusb log at debug level too.")
    var debugLibusb = false

    @Option(help: "Bearer tokens, one per line: <name> <scopes> <token> (see README, Securing a deployment).")
    var tokenFile: String?

    @Option(help: "Requests a second each client may make (a token, or an address without a token file; a burst of as many); 0 for no limit.")
    var rateLimit = 0

    @Option(
        name: .customLong("allowed-host"),
        help: "A name this server answers to as Host, beyond loopback names, IP literals and this machine's name ('*.example.org' for any under it); repeatable. Others get 421.")
    var allowedHosts: [String] = []

    @Option(
        name: .customLong("allowed-origin"),
        help: "An origin (scheme://host[:port]) whose web pages may use the API through CORS; repeatable. Pages from other origins may only read.")
    var allowedOrigins: [String] = []

    @Option(help: "The most streams one client (a token, or an address) may have open on one device.")
    var maxClientStreamsPerDevice = 4

    @Option(help: "The most streams one client (a token, or an address) may have open in all.")
    var maxStreamsPerClient = 32

    @Option(help: "The daemon's share of the kernel's usbfs memory for transfers and streams, in MiB (default: three quarters of usbfs_memory_mb).")
    var usbfsBudgetMb: Int?

    @Option(help: "The most of that share one client (a token, or an address without tokens) may hold at once, in MiB (default: half of it).")
    var usbfsClientShareMb: Int?

    @Option(help: "Milliseconds a control request may keep a device's endpoint 0 while another client's control request waits; then it is cut, answered as timed out (USB 2.0 gives a device 5 s).")
    var maxControlHoldMs = 5000

    @Option(help: "KiB of each serial console's output the daemon keeps, for clients that come late (the boot log) or fall behind.")
    var consoleBufferKb = 1024

    @Option(help: "Where the serial consoles' tty nodes are: /dev, or the host's /dev mounted elsewhere in a container.")
    var ttyDirectory = "/dev"

    @Option(help: "Serve HTTPS with this certificate chain (PEM); needs --tls-key.")
    var tlsCert: String?

    @Option(help: "The private key (PEM) of --tls-cert.")
    var tlsKey: String?

    @Flag(help: "Listen on a non-loopback address without a token file and TLS (logged as a warning).")
    var insecure = false

    @Option(
        name: .customLong("rule"),
        help: "A device policy rule, 'allow|deny key=value,…' (vendor_id, product_id, class, serial, interface_class); repeatable, first match wins.")
    var rules: [String] = []

    @Flag(help: "Do not deny HID boot keyboards and mice, mass storage, network and wireless adapters by default (devices, and interfaces inside composite devices).")
    var exposeRiskyDevices = false

    @Option(help: "The most streams (IN or OUT) open at once on one device.")
    var maxStreamsPerDevice = 8

    @Option(help: "The most streams open at once in all.")
    var maxStreams = 64

    @Option(help: "The most connections open at once.")
    var maxConnections = 512

    @Option(help: "The most connections one client may hold: an address, on loopback an address and a local user (0: no limit).")
    var maxConnectionsPerClient = 64

    @Option(help: "Seconds a connection may stay silent (idle, or stopped halfway through a request).")
    var idleTimeout = 30

    @Option(help: "How to notice devices coming and going: netlink (kernel uevents), inotify (/dev/bus/usb), or polling.")
    var hotplug: HotplugChoice = .netlink

    enum HotplugChoice: String, ExpressibleByArgument {
        case netlink, inotify, polling
    }

    @Option(help: "The name of the node this daemon runs on, shown as `node` in device lists, details and events (on Kubernetes, the downward API's spec.nodeName).")
    var nodeName: String?

    @Option(help: ArgumentHelp(
        "Keep Node Feature Discovery's local feature file here, with labels for the devices served (written on start and on every arrival and removal, removed on stop).",
        valueName: "path"))
    var featureFile: String?

    @Flag(inversion: .prefixedNo, help: "Label devices by serial number in the feature file too (usbhttpd.serial-…).")
    var featureSerials = true

    func validate() throws {
        if let featureFile, featureFile.isEmpty || featureFile.hasSuffix("/") || featureFile.utf8.count > 4000 {
            throw ValidationError("--feature-file must name a file (NFD's features.d folder and a name).")
        }
        if let nodeName {
            // A DNS name (what Kubernetes allows for a node): it goes into every answer as is.
            let allowed = nodeName.utf8.allSatisfy { $0 == 0x2d || $0 == 0x2e || (0x30...0x39).contains($0) || (0x61...0x7a).contains($0) }
            guard (1...253).contains(nodeName.utf8.count), allowed else {
                throw ValidationError("--node-name must be 1-253 characters of a-z, 0-9, '-' and '.' (a node's DNS name).")
            }
        }
        // Every bound checked here, so that nothing past a C type's range reaches a request.
        guard defaultTimeoutMs >= 1, maxTimeoutMs >= defaultTimeoutMs, maxTimeoutMs <= 86_400_000 else {
            throw ValidationError("--default-timeout-ms must be at least 1, and at most --max-timeout-ms, at most 86400000 (a day).")
        }
        guard (1...(64 << 20)).contains(maxReadLength), (0...(1 << 30)).contains(maxBodySize) else {
            throw ValidationError("--max-read-length must be 1 to 67108864 and --max-body-size 0 to 1073741824.")
        }
        guard (0...1_000_000).contains(rateLimit) else {
            throw ValidationError("--rate-limit must be 0 (no limit) to 1000000.")
        }
        guard (1...4096).contains(maxStreamsPerClient), (1...4096).contains(maxClientStreamsPerDevice) else {
            throw ValidationError("--max-streams-per-client and --max-client-streams-per-device must be 1 to 4096.")
        }
        if let usbfsBudgetMb, !(1...65_536).contains(usbfsBudgetMb) {
            throw ValidationError("--usbfs-budget-mb must be 1 to 65536.")
        }
        if let usbfsClientShareMb, !(1...65_536).contains(usbfsClientShareMb) {
            throw ValidationError("--usbfs-client-share-mb must be 1 to 65536.")
        }
        guard (4...1_048_576).contains(consoleBufferKb) else {
            throw ValidationError("--console-buffer-kb must be 4 to 1048576.")
        }
        guard (100...3_600_000).contains(maxControlHoldMs) else {
            throw ValidationError("--max-control-hold-ms must be 100 to 3600000.")
        }
        guard (0...86_400).contains(idleTimeout), (1...100_000).contains(maxConnections),
            (0...100_000).contains(maxConnectionsPerClient)
        else {
            throw ValidationError("--idle-timeout must be 0 to 86400, --max-connections 1 to 100000, the per-client limit 0 to 100000.")
        }
        for origin in allowedOrigins where !(origin.hasPrefix("http://") || origin.hasPrefix("https://")) || origin.hasSuffix("/") {
            throw ValidationError("--allowed-origin '\(origin)' must be scheme://host[:port], as a browser sends it.")
        }
        for name in allowedHosts where name.isEmpty || name.contains(where: { $0 == "/" || $0 == " " }) {
            throw ValidationError("--allowed-host '\(name)' must be a host name, or *.suffix.")
        }
        for rule in rules {
            do {
                _ = try DevicePolicy.Rule(parsing: rule)
            } catch {
                throw ValidationError(error.description)
            }
        }
        guard (tlsCert == nil) == (tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together.")
        }
        guard maxStreamsPerDevice >= 1, maxStreams >= maxStreamsPerDevice, maxStreams <= 4096 else {
            throw ValidationError("--max-streams-per-device must be at least 1 and at most --max-streams, at most 4096.")
        }
        if !ListenAddress.isLoopback(host) && (tokenFile == nil || tlsCert == nil) && !insecure {
            throw ValidationError(
                "\(host) is not a loopback address: give --token-file and --tls-cert/--tls-key, or say --insecure.")
        }
    }

    func run() async throws {
        let level = logLevel
        // Lines logged inside a request's task carry its id and annotations, read only when a
        // line is logged (RequestLogContext).
        LoggingSystem.bootstrap(
            { label, provider in
                var handler = EscapingLogHandler(
                    wrapped: StreamLogHandler.standardError(label: label, metadataProvider: provider))
                handler.logLevel = level
                return handler
            }, metadataProvider: RequestLogContext.metadataProvider)
        let logger = Logger(label: "usbhttpd")
        let metrics = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics))

        let tokens = try tokenFile.map { path in try TokenFile(text: try Self.secretFile(path, logger: logger)) }
        if let tokens { logger.info("bearer tokens required", metadata: ["auth.tokens": "\(tokens.entries.count)"]) }
        if !ListenAddress.isLoopback(self.host) && (tokenFile == nil || tlsCert == nil) {
            logger.warning(
                "listening beyond this machine without authentication and TLS (--insecure): anyone who reaches this port can use every device",
                metadata: ["http.host": "\(self.host)", "auth.tokens": "\(tokens != nil)", "http.tls": "\(tlsCert != nil)"])
        }

        let context = try USBContext(debug: debugLibusb)
        let policy = DevicePolicy(
            rules: try rules.map { rule in try DevicePolicy.Rule(parsing: rule) }, denyRiskyClasses: !exposeRiskyDevices)
        logger.info(
            "device policy",
            metadata: ["usb.policy.rules": "\(policy.rules.map(\.description))", "usb.policy.deny_risky": "\(policy.denyRiskyClasses)"])
        // One thread serves HTTP, libusb's events and the device actors (blocking libusb calls
        // run on each device's worker thread instead).
        // The loop serves every connection and every transfer: if it fails, nothing would answer
        // (not even /readyz), so the process ends and its supervisor starts it again.
        let loop = try EventLoop(name: "usbhttpd-loop", logger: Logger(label: "usbhttpd.loop")) { _ in Foundation.exit(70) }
        let budget = UsbfsBudget(
            limit: usbfsBudgetMb.map { $0 << 20 } ?? UsbfsBudget.defaultLimit(), clientLimit: usbfsClientShareMb.map { $0 << 20 })
        logger.info(
            "usbfs share",
            metadata: ["usb.usbfs_budget_bytes": "\(budget.limit)", "usb.usbfs_client_share_bytes": "\(budget.clientLimit)"])
        let host = try USBHost(
            context: context, loop: loop, logger: Logger(label: "usbhttpd.usb"), policy: policy, usbfsBudget: budget,
            controlHoldLimit: maxControlHoldMs)
        // Serial consoles follow the devices shown: each opened as sysfs shows its tty.
        let consoles = ConsoleBook(
            loop: loop, ringCapacity: consoleBufferKb << 10, directory: ttyDirectory, logger: Logger(label: "usbhttpd.console"))
        host.afterEachScan { devices in consoles.update(ConsoleFinder.consoles(devices: Set(devices.map(\.id)))) }
        try await host.startMonitoring(allowNetlink: hotplug == .netlink, allowInotify: hotplug != .polling)

        var configuration = HTTPServerConfiguration()
        configuration.host = self.host
        configuration.port = port
        configuration.maxBodySize = maxBodySize
        configuration.connectionLimit = maxConnections
        configuration.perClientConnectionLimit = maxConnectionsPerClient
        configuration.idleTimeout = idleTimeout
        if let tlsCert, let tlsKey {
            configuration.tls = .init(
                certificatePEM: try String(contentsOfFile: tlsCert, encoding: .utf8),
                privateKeyPEM: try Self.secretFile(tlsKey, logger: logger))
        }
        var limits = TransferLimits()
        limits.defaultTimeoutMs = defaultTimeoutMs
        limits.maxTimeoutMs = maxTimeoutMs
        limits.allowUnboundedTimeouts = allowUnboundedTimeouts
        limits.maxReadLength = maxReadLength
        limits.maxStreamsPerDevice = maxStreamsPerDevice
        limits.maxStreams = maxStreams
        limits.maxStreamsPerClient = maxStreamsPerClient
        limits.maxClientStreamsPerDevice = maxClientStreamsPerDevice
        let server = HTTPServer(
            configuration: configuration, responder: API.router(
                catalog: host, limits: limits, metrics: metrics, tokens: tokens, rateLimit: rateLimit,
                origins: RequestOrigins(hosts: allowedHosts, origins: allowedOrigins), policy: policy, node: nodeName,
                consoles: consoles),
            logger: Logger(label: "usbhttpd.http"), loop: loop)

        let group = ServiceGroup(
            configuration: .init(
                services: [
                    DaemonService(
                        server: server, host: host,
                        features: featureFile.map { path in
                            NodeFeatureFile(
                                path: path, node: nodeName, serials: featureSerials, logger: Logger(label: "usbhttpd.nfd"))
                        })
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

extension USBHTTPD {
    /// A file holding secrets (tokens, a private key); a warning if others may read it.
    static func secretFile(_ path: String, logger: Logger) throws -> String {
        var status = stat()
        if stat(path, &status) == 0 && status.st_mode & 0o004 != 0 {
            logger.warning("a secret file is readable by every user: chmod o-r it", metadata: ["file": "\(path)"])
        }
        return try String(contentsOfFile: path, encoding: .utf8)
    }
}

/// Whether a listen address stays on this machine.
enum ListenAddress {
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }
}

/// The daemon as a service of the group: serves until a graceful shutdown begins, then stops
/// the HTTP server (requests finish or are cancelled) and closes every device (transfers
/// cancelled, claims released, kernel drivers attached again).
struct DaemonService: Service {
    let server: HTTPServer
    let host: USBHost
    /// The feature file kept for NFD, if asked for: removed before the devices are closed.
    let features: NodeFeatureFile?

    func run() async throws {
        try server.start()
        let labelling = features.map { file in Task { await file.run(changes: host.changes) } }
        try? await gracefulShutdown()
        labelling?.cancel()
        await labelling?.value
        await host.beginShutdown()
        await server.shutdown()
        await host.shutdown()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
