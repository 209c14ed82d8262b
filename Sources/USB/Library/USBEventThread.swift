import CLibUSB
import Threads
import Dispatch
import Glibc
import Synchronization

/// The one thread that handles libusb's events for a context: every asynchronous transfer's
/// callback runs on it (libusb_handle_events_timeout_completed in a loop).
public final class USBEventThread: Sendable {
    private let context: USBContext
    private let stopping = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)

    /// Starts handling `context`'s events.
    public init(context: USBContext) {
        self.context = context
        NamedThread.start(name: "usb-events") { [self] in loop() }
    }

    private func loop() {
        while !stopping.load(ordering: .acquiring) {
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            _ = libusb_handle_events_timeout_completed(context.pointer, &timeout, nil)
        }
        stopped.signal()
    }

    /// Ends the loop (woken by libusb_interrupt_event_handler) and waits for the thread to leave it.
    /// Transfers still in flight after this never complete: cancel them first.
    public func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        libusb_interrupt_event_handler(context.pointer)
        stopped.wait()
    }
}
