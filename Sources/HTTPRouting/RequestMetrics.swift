import CoreMetrics
import HTTPServer
import Synchronization

/// What every request counts, through swift-metrics (whatever backend the program
/// bootstrapped): `usbhttpd_http_requests_total{route, method, status}` and
/// `usbhttpd_http_request_duration_seconds{route, method}` (to the response's head; a stream's
/// body is not included). Labels stay bounded: the route template (never the path), one of
/// the methods HTTP defines or `other`, the status.
///
/// One per route template, made when the route is registered, holding its metric handles
/// once made: a request looks its handles up by a small integer, not by hashing labels
/// through the metrics backend.
final class RequestMetrics: Sendable {
    /// The route label of requests that matched no route.
    static let unmatchedRoute = "unmatched"

    /// The methods that are labels of their own; any other is `other`.
    private static let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"]

    let route: String
    private let handles = Mutex<[Int: (counter: Counter, timer: Timer)]>([:])

    init(route: String) { self.route = route }

    /// The index of `method`'s label (``methods``, or its count for `other`).
    static func methodIndex(_ method: String) -> Int {
        methods.firstIndex(of: method) ?? methods.count
    }

    static func methodLabel(_ index: Int) -> String {
        index < methods.count ? methods[index] : "other"
    }

    func record(method: Int, status: Int, duration: Duration) {
        let key = method << 16 | (status & 0xffff)
        let known = handles.withLock { $0[key] }
        let (counter, timer) = known ?? make(key: key, method: method, status: status)
        counter.increment()
        timer.recordNanoseconds(duration.nanoseconds)
    }

    private func make(key: Int, method: Int, status: Int) -> (counter: Counter, timer: Timer) {
        let label = Self.methodLabel(method)
        let made = (
            Counter(
                label: "usbhttpd_http_requests_total",
                dimensions: [("route", route), ("method", label), ("status", String(status))]),
            Timer(label: "usbhttpd_http_request_duration_seconds", dimensions: [("route", route), ("method", label)])
        )
        handles.withLock { $0[key] = made }
        return made
    }

    /// The status a thrown error answers with (as ``HTTPHandler/response(to:)`` makes it).
    static func status(of error: any Error) -> Int {
        HTTPProblem.answer(for: error).status
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
