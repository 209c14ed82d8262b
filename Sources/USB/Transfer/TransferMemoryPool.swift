import EventLoop

/// The device's DMA memory for transfers that come and go one by one (the URB channel's), kept
/// once made and used again: a mapping (libusb_dev_mem_alloc is an mmap of the usbfs
/// descriptor, libusb_dev_mem_free its munmap) costs more than a transfer's own work, above all
/// under emulation, where it took the channel's bulk IN to a third of a stream's. Kept by size
/// class (powers of two from 4 KiB), up to `keep` bytes in all; every byte made counts against
/// the daemon's usbfs share until it is freed (the kernel counts mapped memory as its own).
///
/// Lives on the event loop: taken and given back there (checked). ``close()`` frees what is
/// kept; memory given back after it is freed at once.
public final class TransferMemoryPool: @unchecked Sendable {
    private let io: any DeviceIO
    private let budget: UsbfsShare
    private let loop: EventLoop
    private let keep: Int
    private var kept: [Int: [TransferMemory]] = [:]
    private var keptBytes = 0
    private var closed = false
    /// The smallest class: the kernel maps whole pages anyway.
    static let smallestClass = 4096

    init(io: any DeviceIO, budget: UsbfsShare, loop: EventLoop, keep: Int) {
        self.io = io
        self.budget = budget
        self.loop = loop
        self.keep = keep
    }

    deinit { freeKept() }

    /// The size class that holds `size` bytes.
    static func sizeClass(_ size: Int) -> Int {
        var size = max(size, smallestClass) - 1
        size |= size >> 1
        size |= size >> 2
        size |= size >> 4
        size |= size >> 8
        size |= size >> 16
        size |= size >> 32
        return size + 1
    }

    /// Memory for `size` bytes: kept memory of its class, or new DMA memory (the heap where the
    /// kernel gives none), counted against the usbfs share.
    func take(_ size: Int) throws(UsbfsBudget.Exhausted) -> TransferMemory {
        loop.preconditionInEventLoop()
        let sizeClass = Self.sizeClass(size)
        if let memory = kept[sizeClass]?.popLast() {
            keptBytes -= sizeClass
            return memory
        }
        try budget.reserve(sizeClass)
        return TransferMemory(io: io, size: sizeClass, kind: .dma)
    }

    /// Memory taken from here is done with: kept for the next transfer, or freed.
    func give(_ memory: TransferMemory) {
        loop.preconditionInEventLoop()
        let size = memory.bytes.count
        guard !closed, keptBytes + size <= keep else {
            free(memory)
            return
        }
        kept[size, default: []].append(memory)
        keptBytes += size
    }

    /// Frees what is kept; what is given back later is freed at once.
    public func close() {
        loop.preconditionInEventLoop()
        closed = true
        freeKept()
    }

    private func freeKept() {
        for memory in kept.values.joined() { free(memory) }
        kept = [:]
        keptBytes = 0
    }

    private func free(_ memory: TransferMemory) {
        memory.free()
        budget.release(memory.bytes.count)
    }
}
