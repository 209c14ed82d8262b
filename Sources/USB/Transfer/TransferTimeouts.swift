import EventLoop
import LinuxSystem

/// The timeouts of transfers that clients submit one by one (the URB channel's), kept by the
/// daemon instead of libusb. libusb arms and disarms its timerfd around each transfer with a
/// timeout (two timerfd_settime and two clock_gettime calls, dear under emulation, where a
/// system call costs tens of microseconds); here one deadline source on the loop, read from the
/// coarse clock without a system call, cancels a transfer whose time is up, and its completion
/// says TIMED_OUT, as libusb's would (a few milliseconds late at most: the coarse clock's tick).
///
/// Lives on the event loop (checked); ``close()`` ends it.
public final class TransferTimeouts: @unchecked Sendable {
    private let loop: EventLoop
    private var deadlines: [ObjectIdentifier: (due: Int64, transfer: AsyncTransfer)] = [:]
    /// The earliest due time, or nil when none is kept; recomputed only when that one leaves.
    private var earliest: Int64?
    private var source: UInt64?

    public init(loop: EventLoop) {
        self.loop = loop
        loop.preconditionInEventLoop()
        source = loop.addDeadlineSource(
            next: { [unowned(unsafe) self] in
                guard let earliest else { return nil }
                return Int(max(earliest - CoarseClock.milliseconds(), 0))
            },
            expired: { [unowned(unsafe) self] in expire() })
    }

    deinit {
        if let source { loop.removeDeadlineSource(source) }
    }

    /// `transfer` times out `milliseconds` from now, unless it ends first (``remove(_:)``).
    func add(_ transfer: AsyncTransfer, after milliseconds: UInt32) {
        loop.preconditionInEventLoop()
        let due = CoarseClock.milliseconds() + Int64(milliseconds)
        deadlines[ObjectIdentifier(transfer)] = (due, transfer)
        if earliest.map({ due < $0 }) ?? true { earliest = due }
    }

    func remove(_ transfer: AsyncTransfer) {
        guard let (due, _) = deadlines.removeValue(forKey: ObjectIdentifier(transfer)) else { return }
        if due == earliest { earliest = deadlines.values.map(\.due).min() }
    }

    /// Ends it: no transfer is timed any more.
    public func close() {
        loop.preconditionInEventLoop()
        deadlines = [:]
        earliest = nil
        if let source { loop.removeDeadlineSource(source) }
        source = nil
    }

    private func expire() {
        let now = CoarseClock.milliseconds()
        let due = deadlines.filter { $0.value.due <= now }
        for (key, entry) in due {
            deadlines[key] = nil
            entry.transfer.timeUp()
        }
        earliest = deadlines.values.map(\.due).min()
    }
}
