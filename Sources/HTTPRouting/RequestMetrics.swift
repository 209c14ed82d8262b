import CoreMetrics
import HTTPServer

/// What every request counts, through swift-metrics (whatever backend the program
/// bootstrapped): `usbhttpd_http_requests_total{route, method, status}` and
/// `usbhttpd_http_request_duration_seconds{route, method}` (to the response's head; a stream's
/// body is not included). Labels stay bounded: the route template, never the path.
enum RequestMetrics {
    /// The route label of a request that matched no route.
    static let unmatched = "unmatched"

    /// The method as a label: one of the methods HTTP defines, else `other` (a client's made-up
    /// methods must not grow the metrics).
    static func methodLabel(_ method: String) -> String {
        switch method {
        case "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE": method
        default: "other"
        }
    }

    static func record(route: String, method: String, status: Int, duration: Duration) {
        Counter(
            label: "usbhttpd_http_requests_total",
            dimensions: [("route", route), ("method", method), ("status", String(status))]
        ).increment()
        Timer(label: "usbhttpd_http_request_duration_seconds", dimensions: [("route", route), ("method", method)])
            .recordNanoseconds(duration.nanoseconds)
    }

    /// The status a thrown error answers with (as ``HTTPResponder/response(to:)`` makes it).
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
