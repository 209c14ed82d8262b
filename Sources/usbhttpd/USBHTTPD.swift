import ArgumentParser
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
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "usbhttpd")
        let metrics = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics))

        let context = try USBContext(debug: debugLibusb)
        let host = USBHost(context: context, logger: Logger(label: "usbhttpd.usb"))
        await host.startMonitoring(allowNetlink: hotplug == .netlink, allowInotify: hotplug != .polling)

        var configuration = HTTPServerConfiguration()
        configuration.host = self.host
        configuration.port = port
        configuration.maxBodySize = maxBodySize
        var limits = TransferLimits()
        limits.defaultTimeoutMs = defaultTimeoutMs
        limits.maxTimeoutMs = maxTimeoutMs
        limits.maxReadLength = maxReadLength
        let server = HTTPServer(
            configuration: configuration, responder: API.router(catalog: host, limits: limits, metrics: metrics),
            logger: Logger(label: "usbhttpd.http"))

        let group = ServiceGroup(
            configuration: .init(
                services: [DaemonService(server: server, host: host)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
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
