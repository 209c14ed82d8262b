/// Why a stream ended.
public enum StreamEnding: Sendable, Equatable {
    /// `maxBytes` were delivered.
    case limit
    /// It was asked to finish (a duration ran out).
    case finished
    /// It was cancelled (the client went away, the device was closed).
    case cancelled
    /// A transfer ended with this status.
    case failed(TransferStatus)
    /// libusb refused a submission.
    case refused(USBError)

    /// A clean end, that a client may take as the end of the data.
    public var isClean: Bool { self == .limit || self == .finished }

    /// A name for logs and trailers: `limit`, `finished`, `cancelled`, a transfer status, or a
    /// libusb error name.
    public var name: String {
        switch self {
        case .limit: "limit"
        case .finished: "finished"
        case .cancelled: "cancelled"
        case .failed(let status): status.rawValue
        case .refused(let error): error.name
        }
    }
}

/// The life of a stream from an IN endpoint, with no I/O: which buffer to submit again, which
/// to hand over or copy from, and when the stream is over. ``BulkInStream`` holds it under a
/// lock and makes the calls it asks for (submit, cancel, hand over) after letting go.
///
/// Completed buffers go out in the order they complete, which is the order they were submitted
/// (one endpoint's URBs complete in order). A buffer goes back to the bus only once its bytes
/// are out: copied by a reader (``read(max:)``), or, once a sink is attached (``attach()``),
/// reported sent by it (``sent(_:)``). So a consumer that does not keep up holds the device back,
/// and memory stays at the stream's buffers whatever it does.
struct InStreamMachine {
    typealias Ending = StreamEnding

    /// What the owner does after an event.
    struct Actions {
        /// Submit these buffers (again).
        var submit: [Int] = []
        /// Hand these bytes to the sink: buffer index and byte count, in order.
        var deliver: [(index: Int, count: Int)] = []
        /// Tell a waiting reader there is something to read.
        var wake = false
        /// Cancel every transfer in flight.
        var cancelInFlight = false
        /// Tell the sink the stream ended (after what was delivered).
        var end: Ending?
    }

    /// What a read gives.
    enum Read: Equatable {
        /// Copy `count` bytes from buffer `index` at `offset`.
        case copy(index: Int, offset: Int, count: Int)
        case wait
        case end(Ending)
    }

    let maxBytes: Int?
    private(set) var inFlight: [Bool]
    /// Completed buffers not yet handed out: (index, byte count), in order.
    private var ready: [(index: Int, count: Int)] = []
    /// Bytes of the first ready buffer a reader has copied.
    private var offset = 0
    /// Buffers handed to the sink and not yet reported sent.
    private(set) var sending = 0
    private(set) var sinkAttached = false
    private(set) var ending: Ending?
    private var endReported = false
    private(set) var delivered = 0
    /// Transfers that ended, and buffers submitted again after being consumed.
    private(set) var completions = 0
    private(set) var resubmissions = 0

    init(buffers: Int, maxBytes: Int?) {
        self.maxBytes = maxBytes
        self.inFlight = Array(repeating: false, count: buffers)
    }

    /// Every buffer was submitted at the start (`submitted(_:)` for each that went).
    mutating func submitted(_ index: Int) { inFlight[index] = true }

    /// A submission failed: the stream ends.
    mutating func submitFailed(_ error: USBError) -> Actions {
        stop(.refused(error))
    }

    /// A transfer ended with `count` bytes and `status`.
    mutating func completed(_ index: Int, count: Int, status: TransferStatus) -> Actions {
        inFlight[index] = false
        completions += 1
        var actions = Actions()
        switch status {
        case .completed:
            if ending == nil { accept(index, count: count, into: &actions) }
        case .cancelled:
            // Data that came before a cancel the stream itself did not ask for is kept.
            if ending == nil && count > 0 { accept(index, count: count, into: &actions) }
        default:
            if ending == nil && count > 0 { accept(index, count: count, into: &actions) }
            if ending == nil {
                ending = .failed(status)
                actions.cancelInFlight = true
            }
        }
        finishIfOver(&actions)
        return actions
    }

    /// A buffer's bytes are out (or it was empty): hand it over, or keep it for a reader.
    private mutating func accept(_ index: Int, count: Int, into actions: inout Actions) {
        var count = count
        if let maxBytes { count = min(count, maxBytes - delivered - queuedBytes) }
        guard count > 0 else {
            // A zero-length packet, or nothing left below the limit.
            if maxBytes.map({ delivered + queuedBytes >= $0 }) ?? false {
                ending = .limit
                actions.cancelInFlight = true
            } else {
                resubmissions += 1
                actions.submit.append(index)
            }
            return
        }
        if sinkAttached {
            sending += 1
            delivered += count
            actions.deliver.append((index, count))
            if let maxBytes, delivered >= maxBytes {
                ending = .limit
                actions.cancelInFlight = true
            }
        } else {
            ready.append((index, count))
            actions.wake = true
        }
    }

    /// Bytes waiting for a reader.
    private var queuedBytes: Int { ready.reduce(0) { $0 + $1.count } - offset }

    /// A reader wants up to `max` bytes: what to copy (the owner copies, then calls
    /// ``copied(_:count:)``), or wait, or the end.
    mutating func read(max: Int) -> Read {
        if let first = ready.first {
            return .copy(index: first.index, offset: offset, count: min(first.count - offset, max))
        }
        if let ending { return .end(ending) }
        return .wait
    }

    /// The reader copied `count` bytes from the first ready buffer: resubmit it once it is
    /// wholly read (unless the stream is over), and end at the limit.
    mutating func copied(count: Int) -> Actions {
        var actions = Actions()
        guard let first = ready.first else { return actions }
        offset += count
        delivered += count
        if offset >= first.count {
            ready.removeFirst()
            offset = 0
            if ending == nil {
                resubmissions += 1
                actions.submit.append(first.index)
            }
        }
        if let maxBytes, delivered >= maxBytes, ending == nil {
            ending = .limit
            actions.cancelInFlight = true
            actions.submit = []
        }
        return actions
    }

    /// From now on completed buffers go to a sink: what is ready goes at once.
    mutating func attach() -> Actions {
        sinkAttached = true
        var actions = Actions()
        let waiting = ready
        ready = []
        for (index, count) in waiting {
            let count = offset > 0 ? count - offset : count
            offset = 0
            sending += 1
            actions.deliver.append((index, count))
            delivered += count
        }
        if let maxBytes, delivered >= maxBytes, ending == nil {
            ending = .limit
            actions.cancelInFlight = true
        }
        finishIfOver(&actions)
        return actions
    }

    /// The sink sent buffer `index`: back to the bus, unless the stream is over.
    mutating func sent(_ index: Int) -> Actions {
        sending -= 1
        var actions = Actions()
        if ending == nil {
            resubmissions += 1
            actions.submit.append(index)
        }
        return actions
    }

    /// Ends the stream (the first ending counts): transfers in flight are cancelled.
    mutating func stop(_ why: Ending) -> Actions {
        var actions = Actions()
        if ending == nil { ending = why }
        actions.cancelInFlight = inFlight.contains(true)
        actions.wake = true
        finishIfOver(&actions)
        return actions
    }

    /// The sink hears of the ending once, after every delivery (it sends what it has first).
    private mutating func finishIfOver(_ actions: inout Actions) {
        guard sinkAttached, let ending, !endReported else { return }
        endReported = true
        actions.end = ending
    }
}
