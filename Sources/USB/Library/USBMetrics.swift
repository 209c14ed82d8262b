import CoreMetrics
import Synchronization

/// What the USB layer counts, through swift-metrics (whatever backend the program
/// bootstrapped). Labels stay bounded: types, outcomes, directions, never device ids.
///
/// - `usbhttpd_usb_transfers_total{type, outcome}`: URBs by transfer type and how they ended
///   (a `libusb_transfer_status` name, or the libusb error that refused the submission);
/// - `usbhttpd_usb_bytes_total{direction}`: bytes moved, `in` or `out`;
/// - `usbhttpd_streams_active{direction}` and `usbhttpd_stream_buffers_total{source}`
///   (`zero_copy` from libusb_dev_mem_alloc, or `fallback`);
/// - `usbhttpd_stream_resubmissions_total` and `usbhttpd_stream_resubmission_wait_seconds_total`:
///   streamed IN buffers resubmitted through the device actor, and their summed wait;
/// - `usbhttpd_devices_present`, `usbhttpd_device_changes_total{kind}`.
enum USBMetrics {
    /// Counter handles once made (a transfer looks its handles up here, by a short key, rather
    /// than through the metrics backend's labels). Made on first use, after the program
    /// bootstrapped its metrics backend.
    private static let counters = Mutex<[String: Counter]>([:])

    private static func counter(_ key: String, _ make: () -> Counter) -> Counter {
        if let known = counters.withLock({ $0[key] }) { return known }
        let made = make()
        counters.withLock { $0[key] = made }
        return made
    }

    /// `count` URBs of `type` that ended with `status`, having moved `bytes` in all. Counter
    /// handles are looked up in a table made once (no lock, no string per transfer).
    static func transfers(type: TransferType, endpoint: UInt8, status: TransferStatus, bytes: Int, count: Int = 1) {
        guard count > 0 else { return }
        outcomeCounters[Int(type.rawValue)][Int(status.libusbCode)].increment(by: count)
        if bytes > 0 { (endpoint & 0x80 != 0 ? bytesIn : bytesOut).increment(by: bytes) }
    }

    /// A URB of `type` that the kernel refused (the libusb error's name is the outcome).
    static func refused(type: TransferType, error: USBError) {
        let name = typeName(type)
        counter("\(type.rawValue)/\(error.name)") {
            Counter(label: "usbhttpd_usb_transfers_total", dimensions: [("type", name), ("outcome", error.name)])
        }.increment()
    }

    /// [type][status], made on first use (after the program bootstrapped its metrics backend).
    private static let outcomeCounters: [[Counter]] = [TransferType.control, .isochronous, .bulk, .interrupt].map { type in
        TransferStatus.allCases.map { status in
            Counter(
                label: "usbhttpd_usb_transfers_total", dimensions: [("type", typeName(type)), ("outcome", status.rawValue)])
        }
    }
    private static let bytesIn = Counter(label: "usbhttpd_usb_bytes_total", dimensions: [("direction", "in")])
    private static let bytesOut = Counter(label: "usbhttpd_usb_bytes_total", dimensions: [("direction", "out")])

    static func streamOpened(endpoint: UInt8, zeroCopy: Bool) {
        Meter(label: "usbhttpd_streams_active", dimensions: [("direction", endpoint & 0x80 != 0 ? "in" : "out")])
            .increment()
        Counter(label: "usbhttpd_stream_buffers_total", dimensions: [("source", zeroCopy ? "zero_copy" : "fallback")])
            .increment()
    }

    /// What resubmitting a streamed IN buffer through the device actor costs: `count` buffers
    /// resubmitted, having waited `waitNanoseconds` in all between being read and being
    /// submitted again (the hop onto the device's thread). Mean wait = sum / count.
    static func streamResubmissions(count: Int, waitNanoseconds: Int64) {
        guard count > 0 else { return }
        Counter(label: "usbhttpd_stream_resubmissions_total").increment(by: count)
        FloatingPointCounter(label: "usbhttpd_stream_resubmission_wait_seconds_total")
            .increment(by: Double(waitNanoseconds) / 1e9)
    }

    static func streamClosed(endpoint: UInt8) {
        Meter(label: "usbhttpd_streams_active", dimensions: [("direction", endpoint & 0x80 != 0 ? "in" : "out")])
            .decrement()
    }

    static func devices(present: Int) {
        Meter(label: "usbhttpd_devices_present").set(present)
    }

    static func deviceChange(_ kind: DeviceChange.Kind) {
        Counter(label: "usbhttpd_device_changes_total", dimensions: [("kind", kind.rawValue)]).increment()
    }

    private static func typeName(_ type: TransferType) -> String { type.name }
}
