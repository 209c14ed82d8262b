/// The `id` of an event: "<instance>-<sequence>", the daemon run's ``ChangeLog/instance`` and
/// the change's number. A client that reconnects sends it back (`Last-Event-ID`) to resume.
struct EventID: Equatable, Sendable {
    var instance: String
    var sequence: UInt64

    var text: String { "\(instance)-\(sequence)" }

    init(instance: String, sequence: UInt64) {
        self.instance = instance
        self.sequence = sequence
    }

    /// nil for anything not of that form.
    init?(_ text: String) {
        guard let dash = text.lastIndex(of: "-"), let sequence = UInt64(text[text.index(after: dash)...]) else {
            return nil
        }
        instance = String(text[..<dash])
        self.sequence = sequence
        guard !instance.isEmpty else { return nil }
    }
}
