import Foundation

/// Times in the API: RFC 3339 / ISO 8601 in UTC with milliseconds.
enum Timestamp {
    static func iso8601(_ secondsSinceEpoch: Double) -> String {
        Date(timeIntervalSince1970: secondsSinceEpoch)
            .formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}
