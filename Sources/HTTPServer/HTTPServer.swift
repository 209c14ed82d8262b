import CMicroHTTPD
import Glibc
import Logging
import EventLoop
import Synchronization

/// An HTTP/1.1 server on libmicrohttpd in external epoll mode, served by an ``EventLoop``:
/// libmicrohttpd's own epoll descriptor is one of the loop's, and `MHD_run` runs on the loop
/// whenever it is readable or libmicrohttpd's next timeout comes. Each request's handler runs
/// as a task on the loop too; a connection is suspended while its handler waits for
/// something and resumed once it has answered.
public final class HTTPServer: Sendable {
    private struct Running: Sendable {
        let core: ServerCore
        let daemon: DaemonRef
        let watch: EventLoop.Watch
        let deadlineSource: UInt64
        let afterWork: UInt64
    }

    private let configuration: HTTPServerConfiguration
    private let responder: any HTTPResponder
    private let logger: Logger
    /// The loop given, or (nil) one of the server's own, made at start and stopped at shutdown.
    private let givenLoop: EventLoop?
    /// C strings handed to libmicrohttpd (the TLS certificate and key), freed with the server.
    private let tlsMemory = Mutex<[UInt]>([])
    private let running = Mutex<Running?>(nil)

    /// A server answering with `responder`, on `loop` (nil: a loop of its own).
    public init(
        configuration: HTTPServerConfiguration, responder: any HTTPResponder, logger: Logger, loop: EventLoop? = nil
    ) {
        self.configuration = configuration
        self.responder = responder
        self.logger = logger
        self.givenLoop = loop
    }

    /// The port the server listens on (the chosen one when configured with port 0).
    public var port: UInt16 {
        running.withLock { $0.map { usbhttpd_mhd_bound_port($0.daemon.pointer) } ?? 0 }
    }

    deinit {
        for address in tlsMemory.withLock({ $0 }) { free(UnsafeMutableRawPointer(bitPattern: address)) }
    }

    /// Binds and starts serving (MHD_start_daemon), on the loop.
    public func start() throws(HTTPServerError) {
        let address = try SocketAddress.resolve(host: configuration.host, port: configuration.port)
        let loop: EventLoop
        if let givenLoop {
            loop = givenLoop
        } else {
            do {
                loop = try EventLoop(name: "http-loop", logger: logger)
            } catch {
                throw .eventLoop(errno: error.rawValue)
            }
        }
        let core = ServerCore(responder: responder, configuration: configuration, logger: logger, loop: loop)
        var flags =
            MHD_USE_EPOLL.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ERROR_LOG.rawValue
            | MHD_ALLOW_UPGRADE.rawValue
        if address.isIPv6 { flags |= MHD_USE_IPv6.rawValue }
        if configuration.tls != nil { flags |= MHD_USE_TLS.rawValue }
        let cls = Unmanaged.passUnretained(core).toOpaque()
        // libmicrohttpd keeps the pointers to the PEM strings: they live as long as the server.
        let certificate = strdup(configuration.tls?.certificatePEM ?? "")
        let key = strdup(configuration.tls?.privateKeyPEM ?? "")
        tlsMemory.withLock { $0 += [certificate, key].map { UInt(bitPattern: $0) } }
        let configuration = configuration
        let started = address.withSockaddr { sockaddr -> OpaquePointer? in
            var options: [MHD_OptionItem] = [
                usbhttpd_mhd_option_logger(mhdLog, cls),
                usbhttpd_mhd_option_notify_completed(requestCompleted, cls),
                usbhttpd_mhd_option_notify_connection(connectionNotify, cls),
                usbhttpd_mhd_option_unescape(),
                MHD_OptionItem(option: MHD_OPTION.SOCK_ADDR, value: 0, ptr_value: UnsafeMutableRawPointer(mutating: sockaddr)),
                MHD_OptionItem(
                    option: MHD_OPTION.CONNECTION_MEMORY_LIMIT, value: configuration.connectionMemoryLimit, ptr_value: nil),
                MHD_OptionItem(option: MHD_OPTION.CONNECTION_TIMEOUT, value: configuration.idleTimeout, ptr_value: nil),
                MHD_OptionItem(option: MHD_OPTION.CONNECTION_LIMIT, value: configuration.connectionLimit, ptr_value: nil),
                MHD_OptionItem(option: MHD_OPTION.LISTENING_ADDRESS_REUSE, value: 1, ptr_value: nil),
            ]
            if configuration.tls != nil {
                options.append(MHD_OptionItem(option: MHD_OPTION.HTTPS_MEM_CERT, value: 0, ptr_value: certificate))
                options.append(MHD_OptionItem(option: MHD_OPTION.HTTPS_MEM_KEY, value: 0, ptr_value: key))
            }
            options.append(MHD_OptionItem(option: MHD_OPTION.END, value: 0, ptr_value: nil))
            return options.withUnsafeMutableBufferPointer {
                // The per-client cap is the accept policy's (ClientConnections), not libmicrohttpd's
                // per-address count, which cannot tell two users of one machine apart.
                usbhttpd_mhd_start_daemon(flags, configuration.port, acceptPolicy, cls, accessHandler, cls, $0.baseAddress)
            }
        }
        guard let started else {
            let code = errno
            if givenLoop == nil { loop.stop() }
            throw .cannotListen(host: configuration.host, port: configuration.port, errno: code)
        }
        let daemon = DaemonRef(pointer: started)
        let epollFD = usbhttpd_mhd_epoll_fd(started)
        let watch: EventLoop.Watch
        do {
            watch = try loop.watch(.init(rawValue: epollFD), for: .input) { [resumer = core.resumer] _ in
                _ = resumer.takeRunRequest()
                _ = MHD_run(daemon.pointer)
            }
        } catch {
            MHD_stop_daemon(started)
            if givenLoop == nil { loop.stop() }
            throw .eventLoop(errno: error.rawValue)
        }
        // libmicrohttpd must run again by its next timeout (an idle connection to close), and at
        // once when data it read already waits to be processed or a connection was resumed.
        let resumer = core.resumer
        let deadlineSource = loop.addDeadlineSource(
            next: {
                if resumer.runRequested { return 0 }
                let milliseconds = usbhttpd_mhd_timeout_ms(daemon.pointer)
                return milliseconds < 0 ? nil : Int(milliseconds)
            },
            expired: {
                _ = resumer.takeRunRequest()
                _ = MHD_run(daemon.pointer)
            })
        // A round of work that resumed connections has libmicrohttpd take them up at once.
        let afterWork = loop.addAfterWork {
            if resumer.takeRunRequest() { _ = MHD_run(daemon.pointer) }
        }
        running.withLock {
            $0 = Running(core: core, daemon: daemon, watch: watch, deadlineSource: deadlineSource, afterWork: afterWork)
        }
        logger.info(
            "listening", metadata: ["http.host": .string(configuration.host), "http.port": .stringConvertible(port)])
    }

    /// Stops in order: no new connections (MHD_quiesce_daemon), requests in progress get
    /// ``HTTPServerConfiguration/shutdownGrace`` to finish, the rest are cancelled and, if they
    /// do not answer within a second, answer 503; all are resumed, streams are ended, then
    /// MHD_stop_daemon (which must never see a suspended connection), on the loop.
    public func shutdown() async {
        guard let running = running.withLock({ $0 }) else { return }
        let core = running.core
        let loop = core.loop
        core.shuttingDown.store(true, ordering: .relaxed)
        let listenFD = await Self.onLoop(loop) { MHD_quiesce_daemon(running.daemon.pointer) }
        await waitUntilIdle(core, for: .milliseconds(Int(configuration.shutdownGrace * 1000)))
        for exchange in core.inProgress.withLock({ Array($0.values) }) { exchange.cancelTask() }
        await waitUntilIdle(core, for: .seconds(1))
        let stuck = core.inProgress.withLock { Array($0.values) }
        for exchange in stuck { exchange.answer(HTTPProblem.shuttingDown.response(for: exchange.request)) }
        // Give the resumed connections a moment to be written out.
        await waitUntilIdle(core, for: .seconds(1))
        // WebSockets end with 1001 (their close handshake waits two seconds at most): an
        // upgraded or taken-over connection is suspended, which MHD_stop_daemon must never see.
        for webSocket in core.webSockets.withLock({ Array($0.values) }) {
            webSocket.closeFromElsewhere(.goingAway, reason: "the server is stopping")
        }
        let webSocketsDeadline = ContinuousClock.now + .seconds(3)
        while !core.webSockets.withLock({ $0.isEmpty }) && ContinuousClock.now < webSocketsDeadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        // End every stream and wait for its response to be freed: none may stay suspended.
        for stream in core.streams.withLock({ Array($0.values) }) { stream.stopForShutdown() }
        let deadline = ContinuousClock.now + .seconds(2)
        while !core.streams.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        await Self.onLoop(loop) {
            loop.unwatch(running.watch)
            loop.removeDeadlineSource(running.deadlineSource)
            loop.removeAfterWork(running.afterWork)
            self.running.withLock { $0 = nil }
            MHD_stop_daemon(running.daemon.pointer)
        }
        if listenFD >= 0 { close(listenFD) }
        if givenLoop == nil { loop.stop() }
        logger.info("stopped")
    }

    /// Returns once no request is in progress, or after `limit`.
    private func waitUntilIdle(_ core: ServerCore, for limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while !core.inProgress.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Runs `body` on the loop's thread and returns its result.
    private static func onLoop<T: Sendable>(_ loop: EventLoop, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            loop.execute { continuation.resume(returning: body()) }
        }
    }
}

/// A started MHD_Daemon.
struct DaemonRef: @unchecked Sendable {
    let pointer: OpaquePointer
}

public enum HTTPServerError: Error, CustomStringConvertible {
    case badAddress(String)
    case cannotListen(host: String, port: UInt16, errno: Int32)
    /// The event loop could not be made, or could not watch libmicrohttpd's descriptor.
    case eventLoop(errno: Int32)

    public var description: String {
        switch self {
        case .eventLoop(let code): "cannot serve on the event loop: \(String(cString: strerror(code)))"
        case .badAddress(let host): "cannot resolve the listen address '\(host)'"
        case .cannotListen(let host, let port, let code):
            "cannot listen on \(host):\(port): \(String(cString: strerror(code)))"
        }
    }
}
