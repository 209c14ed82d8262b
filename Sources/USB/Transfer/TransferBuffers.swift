import CLibUSB

/// The buffers of a stream's transfers, allocated once and used again and again: from usbfs
/// (libusb_dev_mem_alloc: memory the kernel maps into this process, so a URB's data is not
/// copied between user and kernel space) or, where that fails, ordinary memory.
/// ``free()`` must come after every transfer using them has ended, and before the handle closes.
struct TransferBuffers: @unchecked Sendable {
    let pointers: [UnsafeMutablePointer<UInt8>]
    /// Which of them came from usbfs.
    let fromUSBFS: [Bool]
    let size: Int
    private let handle: USBDeviceHandle

    /// `count` buffers of `size` bytes (libusb_dev_mem_alloc, else the heap).
    init(handle: USBDeviceHandle, count: Int, size: Int) {
        self.handle = handle
        self.size = size
        var pointers: [UnsafeMutablePointer<UInt8>] = []
        var fromUSBFS: [Bool] = []
        for _ in 0..<count {
            if let mapped = libusb_dev_mem_alloc(handle.pointer, size) {
                pointers.append(mapped)
                fromUSBFS.append(true)
            } else {
                pointers.append(UnsafeMutablePointer<UInt8>.allocate(capacity: max(size, 1)))
                fromUSBFS.append(false)
            }
        }
        self.pointers = pointers
        self.fromUSBFS = fromUSBFS
    }

    /// Whether every buffer came from usbfs.
    var zeroCopy: Bool { fromUSBFS.allSatisfy { $0 } }

    /// libusb_dev_mem_free or deallocate, each buffer.
    func free() {
        for (pointer, usbfs) in zip(pointers, fromUSBFS) {
            if usbfs {
                _ = libusb_dev_mem_free(handle.pointer, pointer, size)
            } else {
                pointer.deallocate()
            }
        }
    }
}
