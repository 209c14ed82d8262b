/// Transfers a client submits and waits for on its own, many in flight (the URB channel's),
/// checked against the device's state as REST transfers are.
extension DeviceSession {
    /// Checks `request` against the device as it is now (the endpoint in the current alternate
    /// setting of a claimed interface, with that direction and type; isochronous packets it can
    /// carry) and makes its transfer, whose memory counts against the usbfs share until it is
    /// released. Not submitted yet: the caller fills an OUT transfer's ``AsyncTransfer/data``
    /// first. `completion` runs on the loop once per submission.
    /// `timeouts`: who keeps the request's timeout (``TransferTimeouts``), else libusb.
    public func asyncTransfer(
        _ request: AsyncTransferRequest, pool: TransferMemoryPool, timeouts: TransferTimeouts? = nil,
        share: UsbfsShare? = nil, completion: @escaping (AsyncTransfer) -> Void
    ) throws -> AsyncTransfer {
        try ensurePresent()
        switch request.type {
        case .control:
            guard let setup = request.setup, request.endpoint & 0x7f == 0, Int(setup.length) == request.length else {
                throw USBError.invalidParameter
            }
        case .bulk, .interrupt:
            let descriptor = try state.endpoint(request.endpoint, for: request.isIn ? .read : .write)
            guard descriptor.transferType == request.type else { throw DeviceStateError.wrongType(request.endpoint, descriptor.transferType) }
        case .isochronous:
            let descriptor = try state.endpoint(request.endpoint, for: request.isIn ? .isoRead : .isoWrite)
            try DeviceState.checkIsoPackets(request.isoPackets, for: descriptor)
            guard request.isoPackets.reduce(0, +) == request.length else { throw USBError.invalidParameter }
        }
        // Not kept among the session's streams: its owner (a URB channel) cancels what it has in
        // flight when it closes or its device leaves, and the kernel fails a gone device's URBs.
        return try AsyncTransfer(
            io: io, request: request, loop: loop, budget: share ?? .unattributed(budget), pool: pool, timeouts: timeouts,
            completion: completion)
    }

    /// A pool of this device's DMA memory for transfers that come and go one by one, keeping up
    /// to `keep` bytes (``TransferMemoryPool``), its memory counted against `share` (the client's).
    public nonisolated func memoryPool(keep: Int, share: UsbfsShare? = nil) -> TransferMemoryPool {
        TransferMemoryPool(io: io, budget: share ?? .unattributed(budget), loop: loop, keep: keep)
    }

    /// Whether a kernel driver is bound to `interface` (libusb_kernel_driver_active: usbfs, this
    /// daemon's own hold, does not count), on the device's worker.
    public func kernelDriverActive(_ interface: UInt8) async throws -> Bool {
        try await ready()
        _ = try state.interface(interface)
        let io = io
        return try await blocking { () throws(USBError) in try io.kernelDriverActive(interface: interface) }
    }

    /// Detaches the kernel driver of `interface` (libusb_detach_kernel_driver), on the worker.
    public func detachKernelDriver(_ interface: UInt8) async throws {
        try await ready()
        _ = try state.interface(interface)
        let io = io
        try await blocking { () throws(USBError) in try io.detachKernelDriver(interface: interface) }
    }

    /// Attaches the kernel driver of `interface` again (libusb_attach_kernel_driver): refused
    /// while the daemon holds the interface (LIBUSB_ERROR_BUSY), as libusb does.
    public func attachKernelDriver(_ interface: UInt8) async throws {
        try await ready()
        _ = try state.interface(interface)
        if state.claims[interface] != nil { throw USBError.busy }
        let io = io
        try await blocking { () throws(USBError) in try io.attachKernelDriver(interface: interface) }
    }
}
