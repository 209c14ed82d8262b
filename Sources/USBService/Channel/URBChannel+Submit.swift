import HTTPServer
import USB

/// SUBMIT and CANCEL: a transfer checked as REST checks one, made as soon as its head is read
/// (so that its OUT data goes straight into its memory), submitted when its message ends, in
/// the order the messages came.
extension URBChannel {
    /// Where a SUBMIT whose head was just read goes: its transfer now, or kept until the
    /// operations before it are done, or refused.
    func target(for request: AsyncTransferRequest, id: UInt32) -> ChannelReader.Target {
        if steps.busy { return .kept }
        switch prepare(request, id: id) {
        case .transfer(let transfer): return .transfer(transfer)
        case .refused(let error, let reason): return .refused(error: error, reason: reason)
        case .after: return .kept
        }
    }

    /// A SUBMIT's message ended.
    func submit(_ submit: ChannelReader.Submit, kept: [UInt8]) {
        switch submit.target {
        case .transfer(let transfer): start(transfer, id: submit.id)
        case .refused(let error, let reason): refuse(submit.id, error: error, reason: reason)
        case .kept: wait(.submit(submit.request, id: submit.id, data: kept))
        }
    }

    /// A CANCEL: the transfer in flight is cancelled (its COMPLETE follows); one still waiting
    /// its turn completes as cancelled at once; an id that is neither (it completed meanwhile)
    /// is nothing to do.
    func cancel(_ id: UInt32) {
        if inFlight[id] != nil {
            cancelInFlight(id)
        } else if steps.remove(id) {
            connection.send(URBMessage.complete(id: id, status: .cancelled, actualLength: 0))
        }
    }

    /// What a SUBMIT needs.
    enum Preparation {
        case transfer(AsyncTransfer)
        case refused(error: Int32, reason: String)
        /// A device operation first (claiming the interface a control request names, checking
        /// a hub's port): it waits its turn.
        case after(ControlPreparation)
    }

    /// Every check of a SUBMIT against the channel's bounds, the caller's rights and the
    /// device's state, then its transfer (not submitted yet). On the loop.
    /// `portChecked`: a hub's port request whose port was checked already.
    func prepare(_ request: AsyncTransferRequest, id: UInt32, portChecked: Bool = false) -> Preparation {
        var request = request
        if request.timeout == 0 && !limits.unboundedTimeouts { request.timeout = UInt32(limits.maxTimeout) }
        if deviceGone || session.isGone {
            return .refused(error: USBError.noDevice.rawValue, reason: "410 device-gone: the device left")
        }
        guard inFlight.count < limits.maxInFlight else {
            return .refused(
                error: USBError.busy.rawValue,
                reason: "503 too-many-transfers: \(limits.maxInFlight) transfers are in flight on this channel already")
        }
        guard bytesInFlight + request.length <= limits.maxBytesInFlight else {
            return .refused(
                error: USBError.noMemory.rawValue,
                reason: "503 too-many-bytes: \(bytesInFlight) bytes are in flight on this channel (at most \(limits.maxBytesInFlight))")
        }
        guard Int(request.timeout) <= limits.maxTimeout else {
            return .refused(
                error: USBError.invalidParameter.rawValue,
                reason: "400 invalid-parameter: a timeout of \(request.timeout) ms (at most \(limits.maxTimeout); 0 for none, which waits \(limits.unboundedTimeouts ? "without end" : "that long at most"))")
        }
        do {
            return try session.assumeIsolated { session throws -> Preparation in
                let state = session.state
                if let setup = request.setup {
                    switch try context.checkControl(caller, state: state, device: session.id, setup: setup) {
                    case .ready: break
                    case .hubPort where portChecked: break
                    case let preparation: return .after(preparation)
                    }
                } else {
                    try context.checkLease(caller, device: session.id, interface: state.interface(ofEndpoint: request.endpoint))
                }
                return .transfer(
                    try session.asyncTransfer(
                        request, pool: pool, timeouts: timeouts, share: session.budget.share(for: caller.client)
                    ) { [weak self] transfer in
                        self?.completed(transfer, id: id)
                    })
            }
        } catch {
            let (code, reason) = ChannelErrors.libusb(error, device: session.id)
            return .refused(error: code, reason: reason)
        }
    }

    /// Submits a transfer made for SUBMIT `id` (its OUT data in place); a control transfer when
    /// its turn on endpoint 0 comes (``startControl(_:id:)``).
    func start(_ transfer: AsyncTransfer, id: UInt32) {
        if transfer.request.type == .control { return startControl(transfer, id: id) }
        do {
            try transfer.submit()
        } catch {
            let (code, reason) = ChannelErrors.libusb(error, device: session.id)
            return refuse(id, error: code, reason: reason)
        }
        inFlight[id] = transfer
        bytesInFlight += transfer.request.length
    }
}
