import EventLoop
import HTTPServer
import Logging
import USB

/// One URB channel (docs/urb-channel.md): a WebSocket on one device's session, carrying the
/// client's SUBMIT, CANCEL and OPERATION messages and the daemon's HELLO, COMPLETE, RESULT and
/// EVENT back. Many transfers in flight, submitted in the order they came, each completing on
/// its own; every message judged by the checks REST uses, for the ``Caller`` of the upgrade.
///
/// Lives on the event loop, which is the device session's executor too: messages, URB
/// submissions, completions and answers without a thread switch or a lock. An OUT transfer's
/// data is unmasked straight into its URB's memory, and an IN transfer's data leaves with its
/// COMPLETE in one sendmsg from that memory. Device operations (claims and the like) block:
/// they run on the device's worker as REST's do, and the messages after one wait their turn
/// (``ChannelSteps``).
final class URBChannel: WebSocketHandler, @unchecked Sendable {
    struct Limits: Sendable {
        var maxInFlight = 64
        var maxTransfer = 1 << 20
        var maxBytesInFlight = 8 << 20
        /// The largest timeout a SUBMIT may give, in ms; what a timeout of 0 gets unless
        /// `unboundedTimeouts`.
        var maxTimeout: Int
        var unboundedTimeouts = false

        /// The largest message a client may send: a SUBMIT with its setup, packets and data.
        var maxMessage: Int { URBMessage.submitHeader + URBMessage.setupSize + 4 * IsoLayoutLimits.maxPackets + maxTransfer }
    }

    let connection: WebSocketConnection
    let session: DeviceSession
    let context: RouteContext
    /// Who the messages act for: the upgrade's, its lease token changed by USE_LEASE.
    var caller: Caller
    let limits: Limits
    let slot: StreamSlots.Slot
    var loop: EventLoop { connection.loop }
    var logger: BoundLogger { connection.logger }

    /// The message being read (``ChannelReader``) and the ordered work (``ChannelSteps``).
    var reader = ChannelReader()
    var steps = ChannelSteps()
    /// Transfers submitted whose COMPLETE is not yet out, by the client's id.
    var inFlight: [UInt32: AsyncTransfer] = [:]
    var bytesInFlight = 0
    /// Interfaces this channel claimed, and whose kernel driver it detached: given back at the end.
    var claimed: Set<UInt8> = []
    var detached: Set<UInt8> = []
    /// Whose the channel's claims are.
    let owner = ClaimOwner()
    /// The device's DMA memory for the channel's transfers, kept for the next ones.
    let pool: TransferMemoryPool
    /// The timeouts of the channel's transfers, kept on the loop (``TransferTimeouts``).
    let timeouts: TransferTimeouts
    /// The device left: transfers then say NO_DEVICE, and EVENT device-gone follows the last.
    var deviceGone = false
    private var goneEventSent = false
    private var changesSeen: UInt64 = 0
    private var follower: UInt64?
    var closed = false
    /// Control transfers in the device's endpoint-0 queue, and the tickets of those waiting.
    var controlTurns: [UInt32: ControlStage] = [:]
    var controlTickets: [UInt32: UInt64] = [:]

    init(
        connection: WebSocketConnection, session: DeviceSession, context: RouteContext, caller: Caller, limits: Limits,
        slot: StreamSlots.Slot
    ) {
        self.connection = connection
        self.session = session
        self.context = context
        self.caller = caller
        self.limits = limits
        self.slot = slot
        // Enough kept for a steady 8 × 64 KiB in flight, little of the daemon's usbfs share held idle.
        self.pool = session.memoryPool(
            keep: min(limits.maxBytesInFlight, 1 << 20), share: session.budget.share(for: caller.client))
        self.timeouts = TransferTimeouts(loop: connection.loop)
    }

    /// Says hello, and follows the device's comings and goings and leases cut over it.
    func start() {
        loop.preconditionInEventLoop()
        let state = session.assumeIsolated { $0.state }
        let info = context.catalog.changes.snapshot().devices.first { $0.id == session.id }
        connection.send(
            URBMessage.Hello(
                maxInFlight: UInt32(limits.maxInFlight), maxTransfer: UInt32(limits.maxTransfer),
                maxMessage: UInt32(limits.maxMessage), bus: info.map { UInt8(truncatingIfNeeded: $0.bus) } ?? 0,
                address: session.address, speed: UInt8(truncatingIfNeeded: info?.speed.rawValue ?? 0),
                configuration: state.activeConfiguration ?? 0, maxTimeout: UInt32(limits.maxTimeout),
                maxBytesInFlight: UInt32(limits.maxBytesInFlight), scope: UInt8(caller.scope.rawValue),
                device: session.id
            ).bytes)
        let changes = context.catalog.changes
        changesSeen = changes.latest
        follower = changes.follow { [weak self] in
            guard let self else { return }
            loop.execute { self.followChanges() }
        }
        // A lease granted over this device to someone else ends what this channel has in flight.
        slot.onCut { [weak self] in
            guard let self else { return }
            loop.execute {
                self.logger.notice("URB channel: a lease now covers the device; its transfers are cancelled")
                self.cancelAllInFlight()
            }
        }
        if session.isGone { deviceLeft() }
    }

    // MARK: WebSocketHandler

    func messageStart() throws(WebSocketFailure) { reader.start() }

    func messagePayload(_ piece: MaskedBytes) throws(WebSocketFailure) {
        try reader.take(piece, channel: self)
    }

    func messageEnd() throws(WebSocketFailure) {
        try reader.end(channel: self)
    }

    func connectionClosed(code: UInt16?, reason: String) {
        closed = true
        if let follower { context.catalog.changes.unfollow(follower) }
        follower = nil
        cancelAllInFlight()
        steps.drop()
        slot.release()
        pool.close()
        timeouts.close()
        logger.info(
            "URB channel closed",
            metadata: [
                "usb.device": "\(session.id)", "ws.close_code": "\(code.map(String.init) ?? "none")",
                "ws.close_reason": .string(reason), "usb.interfaces_released": "\(claimed.sorted())",
            ])
        giveBack()
    }

    /// What the channel took is given back once it is closed: its claims released (those it
    /// still holds: one released meanwhile may be someone else's now), the kernel drivers it
    /// detached attached again. (Also after an operation that was still running when the
    /// channel closed.)
    func giveBack() {
        guard closed, !claimed.isEmpty || !detached.isEmpty else { return }
        let (session, claimed, detached, owner) = (session, claimed, detached, self.owner)
        self.claimed = []
        self.detached = []
        Task(executorPreference: loop) {
            for number in claimed.sorted() { _ = try? await session.release(number, ifOwnedBy: owner) }
            for number in detached.sorted() { try? await session.attachKernelDriver(number) }
        }
    }

    // MARK: Completions

    /// A transfer in flight ended: its COMPLETE goes out (an IN transfer's data straight from
    /// its memory), and the transfer is let go once the kernel has it.
    func completed(_ transfer: AsyncTransfer, id: UInt32) {
        var status = transfer.status
        if transfer.request.type == .control { status = controlEnded(id, status: status) }
        if deviceGone && status == .cancelled { status = .noDevice }
        let count = transfer.request.type == .isochronous && transfer.request.isIn ? transfer.packedLength : transfer.actualLength
        let head = URBMessage.complete(id: id, status: status, actualLength: transfer.actualLength, packets: transfer.isoResults)
        let body = transfer.request.isIn && count > 0 ? UnsafeRawBufferPointer(rebasing: transfer.data[0..<count]) : nil
        connection.send(head, body: body) { [self] in
            // Kept until here: its memory is what was sent.
            _ = transfer
            release(id)
        }
    }

    func release(_ id: UInt32) {
        guard let transfer = inFlight.removeValue(forKey: id) else { return }
        bytesInFlight -= transfer.request.length
        if deviceGone && inFlight.isEmpty { sendGoneEvent() }
    }

    /// COMPLETE for a SUBMIT the daemon refused before any URB: `error` (a libusb_error) and why.
    /// Its status is ERROR, or NO_DEVICE when the device is gone.
    func refuse(_ id: UInt32, error: Int32, reason: String) {
        let status: TransferStatus = error == USBError.noDevice.rawValue ? .noDevice : .error
        connection.send(URBMessage.complete(id: id, status: status, actualLength: 0, error: error) + Array(reason.utf8))
    }

    // MARK: The device coming and going

    private func followChanges() {
        guard !closed, let changes = context.catalog.changes.changes(after: changesSeen) else { return }
        changesSeen = changes.last?.sequence ?? changesSeen
        for change in changes where change.device.id == session.id {
            if change.kind == .removed && change.device.address == session.address {
                deviceLeft()
            } else if change.kind == .added && change.device.address != session.address {
                connection.send(
                    URBMessage.event(
                        .deviceBack, bus: UInt8(truncatingIfNeeded: change.device.bus), address: change.device.address))
            }
        }
    }

    /// Every transfer in flight completes with NO_DEVICE, then EVENT device-gone.
    private func deviceLeft() {
        guard !deviceGone else { return }
        deviceGone = true
        cancelAllInFlight(status: .noDevice)
        if inFlight.isEmpty { sendGoneEvent() }
    }

    private func sendGoneEvent() {
        guard !goneEventSent else { return }
        goneEventSent = true
        connection.send(URBMessage.event(.deviceGone, bus: 0, address: session.address))
    }
}
