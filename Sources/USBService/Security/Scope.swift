/// What a bearer token may do. Each scope includes the ones before it.
public enum Scope: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    /// List and describe devices, follow events, wait, metrics.
    case read
    /// Everything that touches a device: claims, alternate settings, control, bulk and
    /// interrupt transfers, streams, clearing halts.
    case transfer
    /// What changes a device for everyone: reset, configuration.
    case admin

    public init?(name: some StringProtocol) {
        guard let scope = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = scope
    }

    public var description: String {
        switch self {
        case .read: "read"
        case .transfer: "transfer"
        case .admin: "admin"
        }
    }

    public static func < (a: Scope, b: Scope) -> Bool { a.rawValue < b.rawValue }
}
