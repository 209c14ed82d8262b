/// A control request waiting for endpoint 0 (``ControlQueue``), and what it was told.
final class ControlTurn: @unchecked Sendable {
    var ticket: UInt64 = 0
    var continuation: CheckedContinuation<Void, any Error>?
    /// It held endpoint 0 past the limit while another client waited, and was cancelled for it.
    var cut = false
}

/// A control request whose own timeout ran out while it waited for endpoint 0, which other
/// requests held: nothing was sent.
public struct ControlQueueTimeout: Error, Sendable, Equatable {
    public var waitedMs: Int
}

extension DeviceSession {
    /// Waits for endpoint 0 (``ControlQueue``): returns once `pending` may be submitted; throws
    /// ``ControlQueueTimeout`` when its timeout runs out first, CancellationError when its task
    /// is cancelled meanwhile (the client left). A cut cancels `pending`.
    func awaitTurn(client: String, timeout: UInt32, pending: PendingTransfer) async throws -> ControlTurn {
        let turn = ControlTurn()
        let queue = controlQueue
        let loop = self.loop
        let since = ContinuousClock.now
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // On the loop, where the queue lives (this closure may run elsewhere); the
                // cancellation handler's hop comes after it there.
                let queued = loop.execute {
                    turn.continuation = continuation
                    turn.ticket = queue.enter(
                        client: client, timeout: timeout,
                        .init(
                            start: { ticket in
                                turn.ticket = ticket
                                turn.continuation?.resume()
                                turn.continuation = nil
                            },
                            expired: { _ in
                                let waited = ContinuousClock.now - since
                                turn.continuation?.resume(
                                    throwing: ControlQueueTimeout(
                                        waitedMs: Int(waited.components.seconds * 1000
                                            + waited.components.attoseconds / 1_000_000_000_000_000)))
                                turn.continuation = nil
                            },
                            cut: { _ in
                                turn.cut = true
                                pending.cancel()
                            }))
                }
                if !queued { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            _ = loop.execute {
                guard let continuation = turn.continuation else { return }
                turn.continuation = nil
                queue.leave(turn.ticket)
                continuation.resume(throwing: CancellationError())
            }
        }
        return turn
    }
}
