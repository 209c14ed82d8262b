import ArgumentParser
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

    @Option(help: "The largest timeout_ms a request may give.")
    var maxTimeoutMs = 600_000

    @Option(help: "The largest length of one bulk or interrupt read, in bytes.")
    var maxReadLength = 1 << 20

    @Flag(help: "Let libusb log at debug level too.")
    var debugLibusb = false

    @Option(help: "Bearer tokens, one per line: <name> <scopes> <token> (see README, Securing a deployment).")
    var tokenFile: String?

    @Option(help: "Requests a second each token may make (a burst of as many); 0 for no limit. Needs --token-file.")
    var rateLimit = 0

    @Option(help: "Serve HTTPS with this certificate chain (PEM); needs --tls-key.")
    var tlsCert: String?

    @Option(help: "The private key (PEM) of --tls-cert.")
    var tlsKey: String?

    @Flag(help: "Listen on a non-loopback address without a token file and TLS (logged as a warning).")
    var insecure = false

    @Option(
        name: .customLong("rule"),
        help: "A device policy rule, 'allow|deny key=value,…' (vendor_id, product_id, class, serial); repeatable, first match wins.")
    var rules: [String] = []

    @Flag(help: "Do not deny HID boot keyboards and mice and mass storage by default.")
    var exposeRiskyDevices = false

    @Option(help: "The most streams (IN or OUT) open at once on one device.")
    var maxStreamsPerDevice = 8

    @Option(help: "The most streams open at once in all.")
    var maxStreams = 64

    @Option(help: "The most connections open at once.")
    var maxConnections = 512

    @Option(help: "The most connections one client address may hold (0: no limit).")
    var maxConnectionsPerClient = 64

    @Option(help: "Seconds a connection may stay silent (idle, or stopped halfway through a request).")
    var idleTimeout = 30

    @Option(help: "How to notice devices coming and going: netlink (kernel uevents), inotify (/dev/bus/usb), or polling.")
    var hotplug: HotplugChoice = .netlink

    enum HotplugChoice: String, ExpressibleByArgument {
        case netlink, inotify, polling
    }

    func validate() throws {
        guard defaultTimeoutMs >= 1, maxTimeoutMs >= defaultTimeoutMs else {
            throw ValidationError("--default-timeout-ms must be at least 1 and at most --max-timeout-ms.")
        }
        guard maxReadLength >= 1, maxBodySize >= 0 else {
            throw ValidationError("--max-read-length must be at least 1 and --max-body-size not negative.")
        }
        for rule in rules {
            do {
                _ = try DevicePolicy.Rule(parsing: rule)
            } catch {
                throw ValidationError(error.description)
            }
        }
        guard rateLimit >= 0, rateLimit == 0 || tokenFile != nil else {
            throw ValidationError("--rate-limit counts requests per token: give --token-file too (and a limit of at least 0).")
        }
        guard (tlsCert == nil) == (tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together.")
        }
        guard maxStreamsPerDevice >= 1, maxStreams >= maxStreamsPerDevice else {
            throw ValidationError("--max-streams-per-device must be at least 1 and at most --max-streams.")
        }
        guard maxConnections >= 1, maxConnectionsPerClient >= 0, idleTimeout >= 0 else {
            throw ValidationError("--max-connections must be at least 1; the per-client limit and timeout not negative.")
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
                var handler = StreamLogHandler.standardError(label: label, metadataProvider: provider)
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
        let loop = try EventLoop(name: "usbhttpd-loop", logger: Logger(label: "usbhttpd.loop"))
        let host = try USBHost(context: context, loop: loop, logger: Logger(label: "usbhttpd.usb"), policy: policy)
        await host.startMonitoring(allowNetlink: hotplug == .netlink, allowInotify: hotplug != .polling)


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
        limits.maxReadLength = maxReadLength
        limits.maxStreamsPerDevice = maxStreamsPerDevice
        limits.maxStreams = maxStreams
        let server = HTTPServer(
            configuration: configuration, responder: API.router(catalog: host, limits: limits, metrics: metrics, tokens: tokens, rateLimit: rateLimit),
            logger: Logger(label: "usbhttpd.http"), loop: loop)

        let group = ServiceGroup(
            configuration: .init(
                services: [DaemonService(server: server, host: host)],
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

    func run() async throws {
        try server.start()
        try? await gracefulShutdown()
        await host.beginShutdown()
        await server.shutdown()
        await host.shutdown()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
