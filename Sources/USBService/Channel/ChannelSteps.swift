import HTTPServer
import USB

/// The URB channel's messages that must wait their turn, in the order they came: device
/// operations (which block, on the device's worker), and the SUBMITs that came after one or
/// need one first (a control request to an interface nobody claimed claims it; a hub's port
/// request checks the port's device). While one runs, later SUBMITs queue behind it, so that
/// a client that claims then submits without waiting for the RESULT still gets them in order.
/// On the loop only.
struct ChannelSteps {
    enum Step {
        case submit(AsyncTransferRequest, id: UInt32, data: [UInt8])
        case operation(URBMessage.OperationRequest, tail: [UInt8])
    }

    private var waiting: [Step] = []
    private var running = false

    /// Something runs or waits: a new SUBMIT must queue.
    var busy: Bool { running || !waiting.isEmpty }

    /// Whether SUBMIT `id` waits here.
    func waiting(_ id: UInt32) -> Bool {
        waiting.contains { if case .submit(_, let waitingID, _) = $0 { waitingID == id } else { false } }
    }

    mutating func add(_ step: Step) { waiting.append(step) }

    /// Takes SUBMIT `id` out (a CANCEL came for it); whether it was here.
    mutating func remove(_ id: UInt32) -> Bool {
        guard let index = waiting.firstIndex(where: { if case .submit(_, let waitingID, _) = $0 { waitingID == id } else { false } })
        else { return false }
        waiting.remove(at: index)
        return true
    }

    /// The next step to run, marking it running; nil while one runs or none waits.
    mutating func next() -> Step? {
        guard !running, !waiting.isEmpty else { return nil }
        running = true
        return waiting.removeFirst()
    }

    /// The running step is done.
    mutating func done() { running = false }

    /// The channel closed: nothing waiting will run.
    mutating func drop() { waiting.removeAll() }
}

extension URBChannel {
    /// Queues `step` behind the others and runs what may run.
    func wait(_ step: ChannelSteps.Step) {
        steps.add(step)
        runSteps()
    }

    /// Runs the waiting steps in order: a SUBMIT that needs nothing more at once, anything else
    /// as a task on the loop, after which the next ones run.
    func runSteps() {
        while !closed, let step = steps.next() {
            switch step {
            case .submit(let request, let id, let data):
                switch prepare(request, id: id) {
                case .transfer(let transfer):
                    if !request.isIn { transfer.data.copyBytes(from: data) }
                    start(transfer, id: id)
                    steps.done()
                case .refused(let error, let reason):
                    refuse(id, error: error, reason: reason)
                    steps.done()
                case .after(let preparation):
                    runAsync {
                        let refusal = await $0.meet(preparation)
                        $0.finishSubmit(request, id: id, data: data, refusal: refusal)
                    }
                }
            case .operation(let operation, let tail):
                runAsync { channel in
                    let answer = await channel.perform(operation, tail: tail)
                    channel.connection.send(
                        URBMessage.result(operation.operation, id: operation.id, error: answer.error, value: answer.value)
                            + Array(answer.reason.utf8))
                }
            }
        }
    }

    /// Runs `work` on the loop as a task, then the steps after it.
    private func runAsync(_ work: @escaping @Sendable (URBChannel) async -> Void) {
        Task(executorPreference: loop) { [self] in
            await work(self)
            loop.preconditionInEventLoop()
            steps.done()
            giveBack()
            runSteps()
        }
    }

    /// What a control SUBMIT needed before its URB; its refusal if that could not be met.
    private func meet(_ preparation: ControlPreparation) async -> (error: Int32, reason: String)? {
        switch preparation {
        case .ready: return nil
        case .claimFirst(let interface):
            // A kernel driver's interface stays its own: the transfer then fails as usbfs answers it.
            if (try? await session.claim(interface, detach: false, owner: owner)) != nil {
                claimed.insert(interface)
            }
            return nil
        case .hubPort(let port):
            do {
                try await context.checkHubPort(caller, hub: session.id, port: port)
                return nil
            } catch {
                let (code, reason) = ChannelErrors.libusb(error, device: session.id)
                return (code, reason)
            }
        }
    }

    private func finishSubmit(
        _ request: AsyncTransferRequest, id: UInt32, data: [UInt8], refusal: (error: Int32, reason: String)?
    ) {
        loop.preconditionInEventLoop()
        if let refusal { return refuse(id, error: refusal.error, reason: refusal.reason) }
        switch prepare(request, id: id, portChecked: true) {
        case .transfer(let transfer):
            if !request.isIn { transfer.data.copyBytes(from: data) }
            start(transfer, id: id)
        case .refused(let error, let reason): refuse(id, error: error, reason: reason)
        case .after:
            // The interface could not be claimed (a kernel driver holds it): as usbfs would answer.
            refuse(id, error: USBError.busy.rawValue, reason: "409 device-busy: the interface the request names is held")
        }
    }
}
