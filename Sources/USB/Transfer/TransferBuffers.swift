/// The buffers of a stream's transfers, allocated once and used again and again: from the
/// device's DMA memory (libusb_dev_mem_alloc: memory the kernel maps into this process, so a
/// URB's data is not copied between user and kernel space) or, where that fails, ordinary
/// memory. ``free()`` must come after every transfer using them has ended, and before the
/// handle closes.
struct TransferBuffers: @unchecked Sendable {
    let memory: [TransferMemory]
    let size: Int

    /// `count` buffers of `size` bytes.
    init(io: any DeviceIO, count: Int, size: Int) {
        self.size = size
        memory = (0..<count).map { _ in TransferMemory(io: io, size: size, kind: .dma) }
    }

    /// Buffer `index`.
    subscript(index: Int) -> UnsafeMutableRawBufferPointer { memory[index].bytes }

    /// The start of buffer `index`.
    func pointer(_ index: Int) -> UnsafeMutableRawPointer { memory[index].bytes.baseAddress! }

    /// Whether every buffer came from the device's DMA memory.
    var zeroCopy: Bool { memory.allSatisfy(\.dma) }

    func free() {
        for buffer in memory { buffer.free() }
    }
}
