import ArgumentParser
import HTTPServer
import Logging
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

    @Flag(help: "Let libusb log at debug level too.")
    var debugLibusb = false

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "usbhttpd")

        let context = try USBContext(debug: debugLibusb)
        let host = USBHost(context: context, logger: Logger(label: "usbhttpd.usb"))

        var configuration = HTTPServerConfiguration()
        configuration.host = self.host
        configuration.port = port
        configuration.maxBodySize = maxBodySize
        let server = HTTPServer(
            configuration: configuration, responder: API.router(catalog: host),
            logger: Logger(label: "usbhttpd.http"))

        let group = ServiceGroup(
            configuration: .init(
                services: [HTTPService(server: server)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

/// The HTTP server as a service of the group: serves until a graceful shutdown begins.
struct HTTPService: Service {
    let server: HTTPServer

    func run() async throws {
        try server.start()
        try? await gracefulShutdown()
        await server.shutdown()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
