import CMicroHTTPD
import Glibc
import Logging
import Synchronization

/// An HTTP/1.1 server on libmicrohttpd: one epoll thread inside libmicrohttpd, connections
/// suspended while a ``HTTPResponder`` works on them and resumed when it has answered.
public final class HTTPServer: Sendable {
    private let core: ServerCore
    /// C strings handed to libmicrohttpd (the TLS certificate and key), freed with the server.
    private let tlsMemory = Mutex<[UInt]>([])
    private let daemon = Mutex<DaemonRef?>(nil)

    public init(configuration: HTTPServerConfiguration, responder: any HTTPResponder, logger: Logger) {
        self.core = ServerCore(responder: responder, configuration: configuration, logger: logger)
    }

    /// The port the server listens on (the chosen one when configured with port 0).
    public var port: UInt16 {
        daemon.withLock { $0.map { usbhttpd_mhd_bound_port($0.pointer) } ?? 0 }
    }

    deinit {
        for address in tlsMemory.withLock({ $0 }) { free(UnsafeMutableRawPointer(bitPattern: address)) }
    }

    /// Binds and starts serving (MHD_start_daemon).
    public func start() throws(HTTPServerError) {
        let configuration = core.configuration
        let address = try SocketAddress.resolve(host: configuration.host, port: configuration.port)
        var flags = MHD_USE_EPOLL_INTERNAL_THREAD.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue
            | MHD_USE_ERROR_LOG.rawValue
        if address.isIPv6 { flags |= MHD_USE_IPv6.rawValue }
        if configuration.tls != nil { flags |= MHD_USE_TLS.rawValue }
        let cls = Unmanaged.passUnretained(core).toOpaque()
        // libmicrohttpd keeps the pointers to the PEM strings: they live as long as the server.
        let certificate = strdup(configuration.tls?.certificatePEM ?? "")
        let key = strdup(configuration.tls?.privateKeyPEM ?? "")
        tlsMemory.withLock { $0 += [certificate, key].map { UInt(bitPattern: $0) } }
        let started = address.withSockaddr { sockaddr -> OpaquePointer? in
            var options: [MHD_OptionItem] = [
                usbhttpd_mhd_option_logger(mhdLog, cls),
                usbhttpd_mhd_option_notify_completed(requestCompleted, cls),
                MHD_OptionItem(option: MHD_OPTION.SOCK_ADDR, value: 0, ptr_value: UnsafeMutableRawPointer(mutating: sockaddr)),
                MHD_OptionItem(
                    option: MHD_OPTION.CONNECTION_MEMORY_LIMIT, value: configuration.connectionMemoryLimit, ptr_value: nil),
                MHD_OptionItem(option: MHD_OPTION.CONNECTION_TIMEOUT, value: configuration.idleTimeout, ptr_value: nil),
                MHD_OptionItem(option: MHD_OPTION.CONNECTION_LIMIT, value: configuration.connectionLimit, ptr_value: nil),
                MHD_OptionItem(
                    option: MHD_OPTION.PER_IP_CONNECTION_LIMIT, value: configuration.perClientConnectionLimit,
                    ptr_value: nil),
                MHD_OptionItem(option: MHD_OPTION.LISTENING_ADDRESS_REUSE, value: 1, ptr_value: nil),
            ]
            if configuration.tls != nil {
                options.append(MHD_OptionItem(option: MHD_OPTION.HTTPS_MEM_CERT, value: 0, ptr_value: certificate))
                options.append(MHD_OptionItem(option: MHD_OPTION.HTTPS_MEM_KEY, value: 0, ptr_value: key))
            }
            options.append(MHD_OptionItem(option: MHD_OPTION.END, value: 0, ptr_value: nil))
            return options.withUnsafeMutableBufferPointer {
                usbhttpd_mhd_start_daemon(flags, configuration.port, accessHandler, cls, $0.baseAddress)
            }
        }
        guard let started else {
            throw .cannotListen(host: configuration.host, port: configuration.port, errno: errno)
        }
        daemon.withLock { $0 = DaemonRef(pointer: started) }
        core.logger.info(
            "listening", metadata: ["http.host": .string(configuration.host), "http.port": .stringConvertible(port)])
    }

    /// Stops in order: no new connections (MHD_quiesce_daemon), requests in progress get
    /// ``HTTPServerConfiguration/shutdownGrace`` to finish, the rest are cancelled and, if they
    /// do not answer within a second, answer 503; all are resumed, then MHD_stop_daemon (which
    /// must never see a suspended connection).
    public func shutdown() async {
        guard let daemonRef = daemon.withLock({ $0 }) else { return }
        core.shuttingDown.store(true, ordering: .relaxed)
        let listenFD = MHD_quiesce_daemon(daemonRef.pointer)
        await waitUntilIdle(for: .milliseconds(Int(core.configuration.shutdownGrace * 1000)))
        for exchange in core.inProgress.withLock({ Array($0.values) }) { exchange.cancelTask() }
        await waitUntilIdle(for: .seconds(1))
        let stuck = core.inProgress.withLock { Array($0.values) }
        for exchange in stuck { exchange.answer(HTTPProblem.shuttingDown.response(for: exchange.request)) }
        // Give the resumed connections a moment to be written out.
        await waitUntilIdle(for: .seconds(1))
        // End every stream and wait for its response to be freed: none may stay suspended.
        for stream in core.streams.withLock({ Array($0.values) }) { stream.stopForShutdown() }
        let deadline = ContinuousClock.now + .seconds(2)
        while !core.streams.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        daemon.withLock { $0 = nil }
        MHD_stop_daemon(daemonRef.pointer)
        core.hangups?.stop()
        if listenFD >= 0 { close(listenFD) }
        core.logger.info("stopped")
    }

    /// Returns once no request is in progress, or after `limit`.
    private func waitUntilIdle(for limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while !core.inProgress.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
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

    public var description: String {
        switch self {
        case .badAddress(let host): "cannot resolve the listen address '\(host)'"
        case .cannotListen(let host, let port, let code):
            "cannot listen on \(host):\(port): \(String(cString: strerror(code)))"
        }
    }
}
