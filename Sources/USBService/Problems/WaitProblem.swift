import HTTPServer

/// `/v1/wait` ran out of time.
struct WaitProblem: HTTPResponseError, Sendable {
    var wantedPresent: Bool
    var timeoutMilliseconds: Int
    var matching: [String]

    var status: Int { wantedPresent ? 404 : 409 }
    var code: String { wantedPresent ? "device-not-present" : "device-still-present" }
    var title: String { wantedPresent ? "No matching device arrived" : "A matching device is still present" }
    var detail: String {
        wantedPresent
            ? "No matching device was present within \(timeoutMilliseconds) ms."
            : "Within \(timeoutMilliseconds) ms, \(matching.joined(separator: ", ")) did not go away."
    }
}
