import CLibUSB
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

    static func transfers(type: UInt8, endpoint: UInt8, outcome: String, bytes: Int, count: Int = 1) {
        guard count > 0 else { return }
        let name = typeName(type)
        counter("\(type)/\(outcome)") {
            Counter(label: "usbhttpd_usb_transfers_total", dimensions: [("type", name), ("outcome", outcome)])
        }.increment(by: count)
        if bytes > 0 {
            let direction = endpoint & 0x80 != 0 ? "in" : "out"
            counter(direction) { Counter(label: "usbhttpd_usb_bytes_total", dimensions: [("direction", direction)]) }
                .increment(by: bytes)
        }
    }

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

    private static func typeName(_ type: UInt8) -> String {
        switch UInt32(type) {
        case LIBUSB_TRANSFER_TYPE_CONTROL.rawValue: "control"
        case LIBUSB_TRANSFER_TYPE_ISOCHRONOUS.rawValue: "isochronous"
        case LIBUSB_TRANSFER_TYPE_BULK.rawValue: "bulk"
        case LIBUSB_TRANSFER_TYPE_INTERRUPT.rawValue: "interrupt"
        default: "other"
        }
    }
}
