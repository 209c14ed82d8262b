import CMicroHTTPD
import EventLoop
import LinuxSystem
import Logging
import SystemPackage
import Synchronization

/// What libmicrohttpd's callbacks reach through their `cls` pointer, on the event loop: turns
/// callbacks into ``HTTPRequest``s, runs each request's handler as a task on the loop (the work
/// it can do at once runs before the callback returns, so that a request that waits for
/// nothing is answered without suspending its connection), and queues the answers.
final class ServerCore: Sendable {
    let responder: any HTTPResponder
    let configuration: HTTPServerConfiguration
    let logger: Logger
    let loop: EventLoop
    let resumer: ConnectionResumer
    /// Exchanges whose handler runs.
    let inProgress = Mutex<[ObjectIdentifier: Exchange]>([:])
    let shuttingDown = Atomic<Bool>(false)
    /// Streamed responses not yet freed, ended first when the server stops.
    let streams = Mutex<[ObjectIdentifier: StreamResponse]>([:])
    /// WebSockets open now, closed first when the server stops.
    let webSockets = Mutex<[ObjectIdentifier: WebSocketConnection]>([:])
    /// Connections per client, for the per-client cap.
    let clients: ClientConnections

    init(responder: any HTTPResponder, configuration: HTTPServerConfiguration, logger: Logger, loop: EventLoop) {
        self.responder = responder
        self.configuration = configuration
        self.logger = logger
        self.loop = loop
        self.resumer = ConnectionResumer(loop: loop)
        self.clients = ClientConnections(limit: configuration.perClientConnectionLimit) {
            SocketOwner.user(ofSocketAt: $0, remotePort: 0)
        }
    }

    func handle(
        connection: OpaquePointer, url: String, method: String, version: String,
        uploadData: UnsafePointer<CChar>?, uploadDataSize: UnsafeMutablePointer<Int>,
        conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    ) -> MHD_Result {
        loop.preconditionInEventLoop()
        guard let pointer = conCls.pointee else {
            // First call: the headers. The route is resolved once, here, and whether the
            // request is let in at all: before any byte of its body is read.
            let request = makeRequest(connection: connection, url: url, method: method, version: version)
            let handler = responder.handler(for: request)
            let exchange = Exchange(
                connection: ConnectionRef(pointer: connection), request: request, handler: handler,
                bodyLimit: configuration.maxBodySize, resumer: resumer,
                probesHangups: configuration.tls == nil && request.version == "HTTP/1.1")
            conCls.pointee = Unmanaged.passRetained(exchange).toOpaque()
            let action = exchange.machine.headersArrived(
                hasBody: request.hasBody, declaredLength: request.headers["Content-Length"].flatMap(Int.init),
                shuttingDown: shuttingDown.load(ordering: .relaxed))
            switch action {
            case .start: return start(exchange, body: [])
            case .refuse(let why): return refuse(exchange, why)
            default: return MHD_Result.YES
            }
        }
        let exchange = Unmanaged<Exchange>.fromOpaque(pointer).takeUnretainedValue()
        // A connection taken over for a WebSocket (over TLS) comes back only once it is over:
        // libmicrohttpd closes it.
        if exchange.isTakenOver { return MHD_Result.NO }
        if let body = exchange.bodyStream {
            return continueStreamedBody(exchange, body: body, uploadData: uploadData, uploadDataSize: uploadDataSize)
        }
        if uploadDataSize.pointee > 0 {
            let bytes = UnsafeRawBufferPointer(start: uploadData, count: uploadDataSize.pointee)
            exchange.machine.wholeBodyPiece(bytes)
            uploadDataSize.pointee = 0
            return MHD_Result.YES
        }
        switch exchange.machine.bodyComplete(shuttingDown: shuttingDown.load(ordering: .relaxed)) {
        case .start(let body): return start(exchange, body: body)
        case .queue(let response): return queue(response, exchange: exchange)
        case .refuse(let why): return refuse(exchange, why)
        default: return MHD_Result.YES
        }
    }

    /// Starts the exchange's handler as a task on the loop, runs the work it can do at once, and
    /// queues its answer now if it has one, else suspends the connection until it does.
    private func start(_ exchange: Exchange, body: [UInt8]) -> MHD_Result {
        var request = exchange.request
        request.body = body
        request.bodyStream = exchange.bodyStream
        let handler = exchange.handler
        let context = RequestLogContext(id: request.id, annotations: request.annotations)
        // A handler that can answer now does, with no task: queued before the callback returns.
        if handler.respondNow != nil,
            let response = RequestLogContext.$current.withValue(context, operation: { handler.responseNow(to: request) })
        {
            exchange.answer(response)
            if case .queue(let response) = exchange.machine.startedInline() { return queue(response, exchange: exchange) }
            return MHD_Result.YES
        }
        inProgress.withLock { $0[ObjectIdentifier(exchange)] = exchange }
        let task = Task(executorPreference: handler.executor ?? loop) { [shuttingDown = self.isShuttingDown] in
            let response = await RequestLogContext.$current.withValue(context) { await handler.response(to: request) }
            // A request cancelled by the shutdown says so, whatever its handler made of the cancellation.
            exchange.answer(
                Task.isCancelled && shuttingDown() ? HTTPProblem.shuttingDown.response(for: request) : response)
        }
        exchange.started(task)
        loop.runPendingWork()
        switch exchange.machine.startedInline() {
        case .queue(let response): return queue(response, exchange: exchange)
        case .suspend: exchange.suspend()
        default: break
        }
        return MHD_Result.YES
    }

    @Sendable func isShuttingDown() -> Bool { shuttingDown.load(ordering: .relaxed) }

    /// Later calls for a streamed body: offer each piece (the client held back while the handler
    /// is behind), end the body on the last call, and send the answer once there is one.
    private func continueStreamedBody(
        _ exchange: Exchange, body: HTTPRequestBody, uploadData: UnsafePointer<CChar>?,
        uploadDataSize: UnsafeMutablePointer<Int>
    ) -> MHD_Result {
        let count = uploadDataSize.pointee
        if count > 0 {
            // An answer before the whole body (an error, most likely): libmicrohttpd takes a
            // response only before the body or after all of it, so the rest is read and dropped.
            var taken = count
            if exchange.machine.wantsBody {
                // Weakly: a client held back when the exchange ends must not keep it alive.
                taken = body.offer(UnsafeRawBufferPointer(start: uploadData, count: count)) {
                    [weak exchange] in exchange?.bodyDrained()
                }
                if taken > 0 { loop.runPendingWork() }
            }
            // What was not taken stays with libmicrohttpd, offered again after a resume (or at once).
            uploadDataSize.pointee = count - taken
            switch exchange.machine.streamedBodyPiece(accepted: taken == count) {
            case .consume: uploadDataSize.pointee = 0
            case .suspend: exchange.suspend(holdingBackBody: true)
            default: break
            }
            return MHD_Result.YES
        }
        if exchange.machine.streamedBodyEnded() {
            body.finish()
            loop.runPendingWork()
        }
        switch exchange.machine.streamedBodyComplete() {
        case .queue(let response): return queue(response, exchange: exchange)
        case .suspend: exchange.suspend()
        default: break
        }
        return MHD_Result.YES
    }

    func completed(_ exchange: Exchange, termination: MHD_RequestTerminationCode) {
        loop.preconditionInEventLoop()
        inProgress.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(exchange)) }
        if let body = exchange.bodyStream, termination != MHD_RequestTerminationCode.REQUEST_TERMINATED_COMPLETED_OK {
            body.fail()
            exchange.cancelTask()
        }
        // A WebSocket taken over (TLS) ends by refusing the resumed connection: that is its end.
        let ok = termination == MHD_RequestTerminationCode.REQUEST_TERMINATED_COMPLETED_OK || exchange.isTakenOver
        // The metadata is made only for a line that is logged.
        guard logger.logLevel <= (ok ? .info : .notice) else { return }
        let status = exchange.machine.sentStatus
        let elapsed = ContinuousClock.now - exchange.started
        var metadata = exchange.request.logMetadata
        metadata["http.path"] = .string(exchange.request.path)
        metadata["http.duration_ms"] = .stringConvertible(Self.milliseconds(elapsed))
        if let status { metadata["http.status"] = .stringConvertible(status) }
        if !ok {
            metadata["http.termination"] = .stringConvertible(termination.rawValue)
            exchange.request.logger.notice("request ended early", metadata: metadata)
        } else {
            exchange.request.logger.info("request", metadata: metadata)
        }
    }

    /// Milliseconds, to the microsecond.
    private static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return (Double(seconds) * 1e6 + Double(attoseconds) / 1e12).rounded() / 1000
    }

    /// An MHD_Response of unknown size (chunked) whose content reader reads `stream`.
    private func streamResponse(_ stream: any HTTPBodyStream, exchange: Exchange) -> OpaquePointer? {
        let logger = exchange.request.boundLogger
        // Over TLS the socket carries GnuTLS records, and HTTP/1.0 has no chunks: then the body
        // is read into libmicrohttpd's buffer.
        let direct = configuration.tls == nil && exchange.request.version == "HTTP/1.1"
        let box = StreamResponse(
            stream: stream, connection: exchange.connection, logger: logger, resumer: resumer, directAllowed: direct,
            onFree: { [weak self] box in _ = self?.streams.withLock { $0.removeValue(forKey: ObjectIdentifier(box)) } })
        let retained = Unmanaged.passRetained(box)
        guard
            let response = MHD_create_response_from_callback(
                usbhttpd_mhd_size_unknown, 32 * 1024, streamReader, retained.toOpaque(), streamFreed)
        else {
            retained.release()
            stream.close()
            return nil
        }
        box.response = response
        streams.withLock { $0[ObjectIdentifier(box)] = box }
        stream.start(wake: { [weak box] in box?.wake() })
        return response
    }

    private func decorated(_ response: HTTPResponse, _ handler: HTTPHandler) -> HTTPResponse {
        var response = response
        handler.decorate?(&response)
        return response
    }

    /// Queues the answer to a request refused without running its handler.
    private func refuse(_ exchange: Exchange, _ why: ExchangeMachine.Refusal) -> MHD_Result {
        let request = exchange.request
        let response =
            switch why {
            case .shuttingDown: HTTPProblem.shuttingDown.response(for: request)
            case .bodyTooLarge: HTTPProblem.bodyTooLarge(limit: configuration.maxBodySize).response(for: request)
            // The machine refuses for the route only when the handler has a refusal.
            case .route: decorated(exchange.handler.refusal!, exchange.handler)
            }
        exchange.machine.refused(status: response.status)
        return queue(response, exchange: exchange)
    }

    private func makeRequest(connection: OpaquePointer, url: String, method: String, version: String) -> HTTPRequest {
        var headers: [(name: String, value: String)] = []
        var query: [(name: String, value: String)] = []
        withUnsafeMutablePointer(to: &headers) {
            _ = MHD_get_connection_values(connection, MHD_ValueKind.HEADER_KIND, collectPairs, $0)
        }
        withUnsafeMutablePointer(to: &query) {
            _ = MHD_get_connection_values(connection, MHD_ValueKind.GET_ARGUMENT_KIND, collectPairs, $0)
        }
        let httpHeaders = HTTPHeaders(headers)
        var request = HTTPRequest(
            method: method, path: url, query: query, headers: httpHeaders, body: [],
            id: RequestID.accept(httpHeaders["X-Request-Id"]), logger: logger, metadata: ["http.method": .string(method)])
        request.version = version
        var address = [CChar](repeating: 0, count: 64)
        if usbhttpd_mhd_client_address(connection, &address, 64) == 0 {
            request.remoteAddress = String(decoding: address.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return request
    }

    private func queue(_ response: HTTPResponse, exchange: Exchange) -> MHD_Result {
        inProgress.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(exchange)) }
        if let upgrade = response.upgrade {
            return configuration.tls == nil
                ? queueUpgrade(upgrade, response, exchange: exchange) : takeOverTLS(upgrade, response, exchange: exchange)
        }
        let made: OpaquePointer?
        if let stream = response.stream {
            made = streamResponse(stream, exchange: exchange)
        } else {
            made = response.body.withUnsafeBytes { bytes in
                MHD_create_response_from_buffer(
                    bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress),
                    MHD_ResponseMemoryMode.RESPMEM_MUST_COPY)
            }
        }
        guard let mhdResponse = made else { return MHD_Result.NO }
        defer { MHD_destroy_response(mhdResponse) }
        for field in response.headers { _ = MHD_add_response_header(mhdResponse, field.name, field.value) }
        _ = MHD_add_response_header(mhdResponse, "X-Request-Id", exchange.request.id)
        return MHD_queue_response(exchange.connection.pointer, UInt32(response.status), mhdResponse)
    }

    // MARK: WebSockets

    /// Plain HTTP: libmicrohttpd's own upgrade. It sends the 101 and then hands over the socket
    /// with the bytes it read past the head (``upgraded(_:extraIn:socket:handle:)``).
    private func queueUpgrade(_ upgrade: WebSocketUpgrade, _ response: HTTPResponse, exchange: Exchange) -> MHD_Result {
        exchange.keep(upgrade)
        guard let made = MHD_create_response_for_upgrade(upgradeHandler, Unmanaged.passUnretained(self).toOpaque())
        else { return MHD_Result.NO }
        defer { MHD_destroy_response(made) }
        // libmicrohttpd adds `Connection: Upgrade` itself (a second one upsets some browsers).
        for field in Self.upgradeHeaders(upgrade, response) { _ = MHD_add_response_header(made, field.name, field.value) }
        _ = MHD_add_response_header(made, "X-Request-Id", exchange.request.id)
        exchange.machine.refused(status: 101)
        return MHD_queue_response(exchange.connection.pointer, 101, made)
    }

    /// The upgrade handler's call: the 101 is out, the socket is the WebSocket's.
    func upgraded(_ exchange: Exchange, extraIn: [UInt8], socket: FileDescriptor, handle: UpgradeHandle) {
        let resumer = self.resumer
        let close: () -> Void = {
            _ = usbhttpd_mhd_upgrade_close(handle.pointer)
            // libmicrohttpd resumed it: it must run to close it.
            resumer.requestRun()
        }
        guard let upgrade = exchange.takeUpgrade(), let watch = exchange.connectionWatch else { return close() }
        // libmicrohttpd's upgrade turned Nagle's algorithm back on: small messages must not wait.
        try? StreamSocket.setNoDelay(socket, true)
        startWebSocket(
            upgrade, exchange: exchange, transport: PlainTransport(socket: socket), watch: watch, leftover: extraIn,
            rawHead: nil, onEnd: close)
    }

    /// TLS: libmicrohttpd 0.9.75 relays an upgraded TLS connection through a socket pair a few
    /// bytes at a time (its relay buffer is what the connection's memory pool has left, which
    /// the 101's head used up: an 8-byte emergency buffer; fixed only in 1.0). So the
    /// connection is suspended instead, as a stream takes the plain socket, and its own GnuTLS
    /// session carries the 101 and then the WebSocket's records. When the WebSocket is over the
    /// connection is resumed and refused, and libmicrohttpd closes it.
    private func takeOverTLS(_ upgrade: WebSocketUpgrade, _ response: HTTPResponse, exchange: Exchange) -> MHD_Result {
        let connection = exchange.connection
        guard let session = usbhttpd_mhd_gnutls_session(connection.pointer), let watch = exchange.connectionWatch else {
            return MHD_Result.NO
        }
        MHD_suspend_connection(connection.pointer)
        exchange.takeOver()
        exchange.machine.refused(status: 101)
        var head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        for field in Self.upgradeHeaders(upgrade, response) { head += "\(field.name): \(field.value)\r\n" }
        head += "X-Request-Id: \(exchange.request.id)\r\n\r\n"
        let resumer = self.resumer
        startWebSocket(
            upgrade, exchange: exchange, transport: TLSTransport(session: OpaquePointer(session)), watch: watch,
            leftover: [], rawHead: Array(head.utf8), onEnd: { resumer.resume(connection) })
        return MHD_Result.YES
    }

    /// The 101's header fields beside `Upgrade` and `Connection`.
    private static func upgradeHeaders(_ upgrade: WebSocketUpgrade, _ response: HTTPResponse) -> HTTPHeaders {
        var headers: HTTPHeaders = ["Upgrade": "websocket", "Sec-WebSocket-Accept": upgrade.accept,
                                    "Sec-WebSocket-Protocol": upgrade.subprotocol]
        for field in response.headers where !HTTPHeaders.sameName(field.name, "Content-Type") {
            headers.add(field.name, field.value)
        }
        return headers
    }

    private func startWebSocket(
        _ upgrade: WebSocketUpgrade, exchange: Exchange, transport: any ConnectionTransport, watch: ConnectionWatch,
        leftover: [UInt8], rawHead: [UInt8]?, onEnd: @escaping () -> Void
    ) {
        let connection = WebSocketConnection(
            transport: transport, watch: watch, loop: loop, logger: exchange.request.boundLogger,
            maxMessage: upgrade.maxMessage, leftover: leftover,
            onEnd: { [weak self] connection in
                _ = self?.webSockets.withLock { $0.removeValue(forKey: ObjectIdentifier(connection)) }
                onEnd()
            })
        if let rawHead { connection.sendRaw(rawHead) }
        webSockets.withLock { $0[ObjectIdentifier(connection)] = connection }
        connection.start(upgrade.open(connection))
    }
}

/// An upgraded connection's handle (`struct MHD_UpgradeResponseHandle`), used on the loop.
struct UpgradeHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}
