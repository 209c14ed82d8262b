/// The life of a stream to a bulk or interrupt OUT endpoint, with no I/O: the body's bytes cut
/// into transfers of `transferSize`, up to `buffers` of them in flight, submitted in order,
/// each buffer used again once its transfer is back. ``OutStream`` holds it under a lock and
/// makes the calls it asks for (copy, submit, cancel) after letting go.
///
/// The body is taken only as fast as buffers come back: ``take(_:)`` answers how many bytes
/// fit now, and the client is held back for the rest until a transfer ends (``Actions/room``).
/// The stream stops at the first transfer that does not complete, and ends once the transfers
/// in flight are back; the rest of the body is then taken and dropped.
struct OutStreamMachine {
    /// How a stream to the device ended.
    enum Ending: Equatable {
        /// Every byte went out (and the zero-length packet, if one was asked for).
        case completed
        /// A transfer ended with this status: nothing more was sent after it.
        case failed(TransferStatus)
        /// The client went away, or the stream was cut (a lease, the device closed).
        case cancelled
        /// libusb refused a submission.
        case refused(USBError)
    }

    /// What the owner does after an event.
    struct Actions {
        /// Copy `count` body bytes, starting `from` bytes into what was offered, into buffer
        /// `index` at `offset`.
        var copies: [(from: Int, index: Int, offset: Int, count: Int)] = []
        /// Submit these buffers with these lengths, in order (-1: a zero-length packet of its own).
        var submit: [(index: Int, length: Int)] = []
        var cancelInFlight = false
        /// The held-back client may send more.
        var room = false
        /// The stream is over: its outcome.
        var end: Ending?
    }

    let transferSize: Int
    let packetSize: Int
    let zeroLengthPacket: Bool
    private var free: [Int]
    /// The buffer being filled and its bytes.
    private var filling: (index: Int, count: Int)?
    /// Transfers submitted and not back, in order: buffer index (-1 for a zero-length packet).
    private var inFlight: [Int] = []
    private var heldBack = false
    private var bodyEnded = false
    private var lastLength = -1
    private(set) var ending: Ending?
    private var endReported = false
    /// Bytes taken from the body, and bytes the device took.
    private(set) var offered = 0
    private(set) var sent = 0

    init(buffers: Int, transferSize: Int, packetSize: Int, zeroLengthPacket: Bool) {
        self.transferSize = transferSize
        self.packetSize = max(packetSize, 1)
        self.zeroLengthPacket = zeroLengthPacket
        self.free = Array((0..<buffers).reversed())
    }

    /// The client offers `count` more bytes: how many fit now (the owner copies them as
    /// `actions.copies` say, then submits). After a failure everything is taken and dropped.
    mutating func take(_ count: Int) -> (taken: Int, actions: Actions) {
        var actions = Actions()
        guard ending == nil else {
            offered += count
            return (count, actions)
        }
        var taken = 0
        while taken < count {
            if filling == nil {
                guard let index = free.popLast() else { break }
                filling = (index, 0)
            }
            let (index, filled) = filling!
            let chunk = min(count - taken, transferSize - filled)
            actions.copies.append((taken, index, filled, chunk))
            taken += chunk
            filling = (index, filled + chunk)
            if filled + chunk == transferSize { submitFilling(into: &actions) }
        }
        offered += taken
        if taken < count { heldBack = true }
        return (taken, actions)
    }

    /// The whole body is in: what is left goes out (and a zero-length packet after data that
    /// fills its last packet, if asked for); the stream ends once every transfer is back.
    mutating func endOfBody() -> Actions {
        var actions = Actions()
        guard !bodyEnded else { return actions }
        bodyEnded = true
        if ending == nil {
            if let filling, filling.count > 0 { submitFilling(into: &actions) }
            if zeroLengthPacket && lastLength > 0 && lastLength % packetSize == 0 {
                inFlight.append(-1)
                actions.submit.append((-1, 0))
            }
        }
        finishIfOver(&actions)
        return actions
    }

    /// The client went away, or the stream is cut: nothing more goes out.
    mutating func stop() -> Actions {
        var actions = Actions()
        if ending == nil {
            ending = .cancelled
            actions.cancelInFlight = !inFlight.isEmpty
        }
        bodyEnded = true
        finishIfOver(&actions)
        return actions
    }

    /// A transfer came back (they come back in order) having moved `count` bytes.
    mutating func completed(count: Int, status: TransferStatus) -> Actions {
        var actions = Actions()
        guard !inFlight.isEmpty else { return actions }
        let index = inFlight.removeFirst()
        sent += count
        if index >= 0 { free.append(index) }
        if status != .completed && ending == nil {
            ending = .failed(status)
            actions.cancelInFlight = !inFlight.isEmpty
        }
        if heldBack {
            heldBack = false
            actions.room = true
        }
        finishIfOver(&actions)
        return actions
    }

    /// A submission was refused: the stream ends. `unsubmitted` transfers (the refused one and
    /// those after it in the same actions) never went out.
    mutating func refused(_ error: USBError, unsubmitted: Int = 1) -> Actions {
        var actions = Actions()
        for _ in 0..<min(unsubmitted, inFlight.count) {
            let index = inFlight.removeLast()
            if index >= 0 { free.append(index) }
        }
        if ending == nil {
            ending = .refused(error)
            actions.cancelInFlight = !inFlight.isEmpty
        }
        if heldBack {
            heldBack = false
            actions.room = true
        }
        finishIfOver(&actions)
        return actions
    }

    private mutating func submitFilling(into actions: inout Actions) {
        guard let (index, count) = filling else { return }
        filling = nil
        lastLength = count
        inFlight.append(index)
        actions.submit.append((index, count))
    }

    /// Over once every transfer is back and the body is in, or the stream failed or stopped
    /// (the rest of the body is then taken and dropped).
    private mutating func finishIfOver(_ actions: inout Actions) {
        guard !endReported, inFlight.isEmpty, bodyEnded || ending != nil else { return }
        endReported = true
        if ending == nil { ending = .completed }
        actions.end = ending
    }
}
