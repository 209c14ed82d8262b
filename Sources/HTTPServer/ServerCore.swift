import CMicroHTTPD
import Logging
import Synchronization

/// What libmicrohttpd's callbacks reach through their `cls` pointer: turns callbacks into
/// ``HTTPRequest``s, runs the responder off libmicrohttpd's thread (the connection suspended
/// meanwhile), and queues the answers.
final class ServerCore: Sendable {
    let responder: any HTTPResponder
    let configuration: HTTPServerConfiguration
    let logger: Logger
    /// Exchanges whose connection is suspended while the responder runs.
    let inProgress = Mutex<[ObjectIdentifier: Exchange]>([:])
    let shuttingDown = Atomic<Bool>(false)
    /// Streamed responses not yet freed, ended first when the server stops.
    let streams = Mutex<[ObjectIdentifier: StreamResponse]>([:])
    /// Notices clients that hang up while their request is processed (nil if epoll failed).
    let hangups: DisconnectWatcher?

    init(responder: any HTTPResponder, configuration: HTTPServerConfiguration, logger: Logger) {
        self.responder = responder
        self.configuration = configuration
        self.logger = logger
        self.hangups = DisconnectWatcher()
        if hangups == nil { logger.warning("cannot watch for clients that hang up: epoll failed") }
    }

    func handle(
        connection: OpaquePointer, url: String, method: String,
        uploadData: UnsafePointer<CChar>?, uploadDataSize: UnsafeMutablePointer<Int>,
        conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    ) -> MHD_Result {
        guard let pointer = conCls.pointee else {
            // First call: headers only.
            let streamsBody = responder.streamsBody(method: method, path: url)
            let exchange = Exchange(
                connection: ConnectionRef(pointer: connection),
                request: makeRequest(connection: connection, url: url, method: method),
                bodyStream: streamsBody ? HTTPRequestBody() : nil)
            conCls.pointee = Unmanaged.passRetained(exchange).toOpaque()
            if streamsBody { return startStreamedBody(exchange) }
            if let length = exchange.request.headers["Content-Length"].flatMap(Int.init),
                length > configuration.maxBodySize
            {
                // Answer before reading the body (and before any 100 Continue).
                return refuseBody(exchange)
            }
            return MHD_Result.YES
        }
        let exchange = Unmanaged<Exchange>.fromOpaque(pointer).takeUnretainedValue()
        if let body = exchange.bodyStream {
            return continueStreamedBody(exchange, body: body, uploadData: uploadData, uploadDataSize: uploadDataSize)
        }

        if uploadDataSize.pointee > 0 {
            let count = uploadDataSize.pointee
            uploadDataSize.pointee = 0
            let limit = configuration.maxBodySize
            exchange.state.withLock { state in
                guard !state.bodyTooLarge else { return }
                if state.body.count + count > limit {
                    state.bodyTooLarge = true
                    state.body = []
                } else if let uploadData {
                    uploadData.withMemoryRebound(to: UInt8.self, capacity: count) {
                        state.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: count))
                    }
                }
            }
            return MHD_Result.YES
        }

        enum Next { case start([UInt8]), tooLarge, queue(HTTPResponse), wait }
        let next = exchange.state.withLock { state -> Next in
            switch state.phase {
            case .receiving:
                if state.bodyTooLarge { return .tooLarge }
                state.phase = .processing
                let body = state.body
                state.body = []
                return .start(body)
            case .ready(let response): return .queue(response)
            case .processing, .sent: return .wait
            }
        }
        switch next {
        case .start(let body):
            if shuttingDown.load(ordering: .relaxed) {
                exchange.state.withLock { $0.phase = .receiving }
                return queue(HTTPProblem.shuttingDown.response(for: exchange.request), exchange: exchange)
            }
            var request = exchange.request
            request.body = body
            inProgress.withLock { $0[ObjectIdentifier(exchange)] = exchange }
            MHD_suspend_connection(connection)
            let responder = self.responder
            let task = Task(executorPreference: responder.executor(for: request)) { [shuttingDown = self.isShuttingDown] in
                let response = await responder.response(to: request)
                // A request cancelled by the shutdown says so, whatever its handler made of the cancellation.
                exchange.answer(
                    Task.isCancelled && shuttingDown() ? HTTPProblem.shuttingDown.response(for: request) : response)
            }
            exchange.started(task, watch: watchForHangup(exchange))
            return MHD_Result.YES
        case .tooLarge:
            return refuseBody(exchange)
        case .queue(let response):
            inProgress.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(exchange)) }
            return queue(response, exchange: exchange)
        case .wait:
            return MHD_Result.YES
        }
    }

    @Sendable func isShuttingDown() -> Bool { shuttingDown.load(ordering: .relaxed) }

    /// A route that reads its body as it arrives: the responder starts now, with the headers.
    private func startStreamedBody(_ exchange: Exchange) -> MHD_Result {
        if shuttingDown.load(ordering: .relaxed) {
            return queue(HTTPProblem.shuttingDown.response(for: exchange.request), exchange: exchange)
        }
        var request = exchange.request
        request.bodyStream = exchange.bodyStream
        exchange.state.withLock { $0.phase = .processing }
        inProgress.withLock { $0[ObjectIdentifier(exchange)] = exchange }
        let responder = self.responder
        let task = Task(executorPreference: responder.executor(for: request)) { [shuttingDown = self.isShuttingDown] in
            let response = await responder.response(to: request)
            exchange.answer(
                Task.isCancelled && shuttingDown() ? HTTPProblem.shuttingDown.response(for: request) : response)
        }
        exchange.started(task, watch: nil)
        return MHD_Result.YES
    }

    /// Later calls for a streamed body: offer each piece (suspending while the handler is
    /// behind), end the body on the last call, and send the answer once there is one.
    private func continueStreamedBody(
        _ exchange: Exchange, body: HTTPRequestBody, uploadData: UnsafePointer<CChar>?,
        uploadDataSize: UnsafeMutablePointer<Int>
    ) -> MHD_Result {
        let count = uploadDataSize.pointee
        enum Next { case queue(HTTPResponse), offer, suspend, wait }
        let next = exchange.state.withLock { state -> Next in
            switch state.phase {
            case .ready(let response): return .queue(response)
            case .sent: return .wait
            case .receiving, .processing:
                if count > 0 { return .offer }
                if !state.bodyFinished {
                    state.bodyFinished = true
                    body.finish()
                }
                return .suspend
            }
        }
        switch next {
        case .queue(let response):
            // An answer before the whole body (an error, most likely): libmicrohttpd takes a
            // response only before the body or after all of it, so the rest is read and dropped.
            if count > 0 {
                uploadDataSize.pointee = 0
                return MHD_Result.YES
            }
            inProgress.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(exchange)) }
            return queue(response, exchange: exchange)
        case .wait:
            uploadDataSize.pointee = 0
            return MHD_Result.YES
        case .suspend:
            // Until the answer (which resumes; one that came meanwhile undoes the suspend).
            exchange.suspend()
            return MHD_Result.YES
        case .offer:
            let accepted = body.offer(UnsafeRawBufferPointer(start: uploadData, count: count)) {
                [exchange] in exchange.resumeIfSuspended()
            }
            if accepted {
                uploadDataSize.pointee = 0
            } else {
                // Held back: the same bytes come again once the handler has read (or answered);
                // a release that came before this suspend undoes it.
                exchange.suspend()
            }
            return MHD_Result.YES
        }
    }

    func completed(_ exchange: Exchange, termination: MHD_RequestTerminationCode) {
        inProgress.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(exchange)) }
        if let body = exchange.bodyStream, termination != MHD_RequestTerminationCode.REQUEST_TERMINATED_COMPLETED_OK {
            body.fail()
            exchange.cancelTask()
        }
        let status = exchange.state.withLock { state -> Int? in
            if case .sent(let status) = state.phase { return status }
            return nil
        }
        let elapsed = ContinuousClock.now - exchange.started
        var metadata: Logger.Metadata = exchange.request.annotations.metadata
        metadata["http.path"] = .string(exchange.request.path)
        metadata["http.duration_ms"] = .stringConvertible(Self.milliseconds(elapsed))
        if let status { metadata["http.status"] = .stringConvertible(status) }
        if termination != MHD_RequestTerminationCode.REQUEST_TERMINATED_COMPLETED_OK {
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
        let box = StreamResponse(
            stream: stream, connection: exchange.connection, logger: exchange.request.logger, hangups: hangups,
            onFree: { [weak self] box in _ = self?.streams.withLock { $0.removeValue(forKey: ObjectIdentifier(box)) } })
        let retained = Unmanaged.passRetained(box)
        guard
            let response = MHD_create_response_from_callback(
                usbhttpd_mhd_size_unknown, 256 * 1024, streamReader, retained.toOpaque(), streamFreed)
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

    /// Cancels the exchange's task if its client hangs up while the connection is suspended.
    private func watchForHangup(_ exchange: Exchange) -> DisconnectWatcher.Registration? {
        return hangups?.watch(exchange.connection) { [weak exchange] in
            guard let exchange else { return }
            exchange.request.logger.notice("client hung up; cancelling its request")
            exchange.cancelTask()
        }
    }

    /// 413 for a body over the configured limit.
    private func refuseBody(_ exchange: Exchange) -> MHD_Result {
        queue(HTTPProblem.bodyTooLarge(limit: configuration.maxBodySize).response(for: exchange.request), exchange: exchange)
    }

    private func makeRequest(connection: OpaquePointer, url: String, method: String) -> HTTPRequest {
        var headers: [(name: String, value: String)] = []
        var query: [(name: String, value: String)] = []
        withUnsafeMutablePointer(to: &headers) {
            _ = MHD_get_connection_values(connection, MHD_ValueKind.HEADER_KIND, collectPairs, $0)
        }
        withUnsafeMutablePointer(to: &query) {
            _ = MHD_get_connection_values(connection, MHD_ValueKind.GET_ARGUMENT_KIND, collectPairs, $0)
        }
        let httpHeaders = HTTPHeaders(headers)
        return HTTPRequest(
            method: method, path: url, query: query, headers: httpHeaders, body: [],
            id: RequestID.accept(httpHeaders["X-Request-Id"]), logger: logger, metadata: ["http.method": .string(method)])
    }

    private func queue(_ response: HTTPResponse, exchange: Exchange) -> MHD_Result {
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
        exchange.state.withLock { $0.phase = .sent(status: response.status) }
        return MHD_queue_response(exchange.connection.pointer, UInt32(response.status), mhdResponse)
    }
}
