import Glibc

/// Starts detached pthreads with a name. Foundation's Thread is not used: the threads that
/// run libusb and device actors need nothing from it.
public enum NamedThread {
    private final class Start: @unchecked Sendable {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Runs `body` on a new detached thread named `name` (at most 15 characters show in `top`).
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let start = Unmanaged.passRetained(Start(name: String(name.prefix(15)), body: body))
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        var handle = pthread_t()
        let result = pthread_create(
            &handle, &attributes,
            { argument in
                let start = Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue()
                // pthread_setname_np is not imported (it needs _GNU_SOURCE); this is what it does.
                if let file = fopen("/proc/thread-self/comm", "w") {
                    fputs(start.name, file)
                    fclose(file)
                }
                start.body()
                return nil
            }, start.toOpaque())
        pthread_attr_destroy(&attributes)
        precondition(result == 0, "pthread_create failed: \(result)")
        pthread_detach(handle)
    }
}
