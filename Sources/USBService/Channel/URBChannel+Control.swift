import USB

/// Control SUBMITs take their turn on endpoint 0 with every other control request of the device,
/// REST's included (``ControlQueue``): submitted when their turn comes, answered TIMED_OUT with
/// nothing sent when their timeout runs out first, and cut (cancelled, answered TIMED_OUT) when
/// they hold endpoint 0 past the limit while another client waits.
extension URBChannel {
    /// Where a control transfer of the channel stands in the device's queue.
    enum ControlStage {
        case waiting
        case running(ticket: UInt64, cut: Bool)
    }

    /// Queues control transfer `transfer` of SUBMIT `id` (counted in flight from now).
    func startControl(_ transfer: AsyncTransfer, id: UInt32) {
        inFlight[id] = transfer
        bytesInFlight += transfer.request.length
        controlTurns[id] = .waiting
        let ticket = session.controlQueue.enter(
            client: caller.client, timeout: transfer.request.timeout,
            .init(
                start: { [weak self] ticket in self?.controlTurnCame(id, ticket: ticket) },
                expired: { [weak self] _ in self?.controlTurnExpired(id) },
                cut: { [weak self] _ in self?.controlCut(id) }))
        if case .waiting = controlTurns[id] { controlTickets[id] = ticket }
    }

    private func controlTurnCame(_ id: UInt32, ticket: UInt64) {
        controlTickets[id] = nil
        guard let transfer = inFlight[id], !closed else { return session.controlQueue.leave(ticket) }
        controlTurns[id] = .running(ticket: ticket, cut: false)
        do {
            try transfer.submit()
        } catch {
            controlTurns[id] = nil
            session.controlQueue.leave(ticket)
            release(id)
            let (code, reason) = ChannelErrors.libusb(error, device: session.id)
            refuse(id, error: code, reason: reason)
        }
    }

    private func controlTurnExpired(_ id: UInt32) {
        controlTurns[id] = nil
        controlTickets[id] = nil
        guard inFlight[id] != nil else { return }
        if !closed { connection.send(URBMessage.complete(id: id, status: .timedOut, actualLength: 0)) }
        release(id)
    }

    private func controlCut(_ id: UInt32) {
        guard case .running(let ticket, false) = controlTurns[id] else { return }
        controlTurns[id] = .running(ticket: ticket, cut: true)
        logger.notice(
            "URB channel: a control transfer held endpoint 0 past the limit while another client waited: cut",
            metadata: ["usb.device": "\(session.id)"])
        inFlight[id]?.cancel()
    }

    /// A control transfer that ran ended: its turn is over; a cut one reads as timed out.
    func controlEnded(_ id: UInt32, status: TransferStatus) -> TransferStatus {
        guard case .running(let ticket, let cut) = controlTurns.removeValue(forKey: id) else { return status }
        session.controlQueue.leave(ticket)
        return cut && status == .cancelled ? .timedOut : status
    }

    /// Cancels transfer `id` in flight: one still waiting for its turn leaves the queue and
    /// completes now with `status` (unless the channel is closed); one running is cancelled.
    func cancelInFlight(_ id: UInt32, status: TransferStatus = .cancelled) {
        if case .waiting = controlTurns[id] {
            controlTurns[id] = nil
            if let ticket = controlTickets.removeValue(forKey: id) { session.controlQueue.leave(ticket) }
            if !closed { connection.send(URBMessage.complete(id: id, status: status, actualLength: 0)) }
            release(id)
            return
        }
        inFlight[id]?.cancel()
    }

    /// Cancels everything in flight (a lease cut, the device gone, the channel closed).
    func cancelAllInFlight(status: TransferStatus = .cancelled) {
        for id in Array(inFlight.keys) { cancelInFlight(id, status: status) }
    }
}
