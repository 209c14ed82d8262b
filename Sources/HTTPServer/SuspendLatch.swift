/// The one rule for suspending a libmicrohttpd connection and resuming it, kept by every owner
/// of a suspended connection (``ExchangeMachine`` while a request waits for its answer or
/// holds its client back, ``StreamResponseMachine`` while a streamed body waits for data).
///
/// libmicrohttpd leaves resuming a connection that is not suspended undefined (in practice it
/// swallows the next suspend, and the request never answers). So a resume wanted while the
/// connection is not suspended is remembered instead, and undoes the next suspend: the owner
/// goes on at once (reads again, offers the body piece again) rather than suspending.
/// A value, no I/O: its owner suspends and resumes when it says so, on the event loop.
struct SuspendLatch {
    /// The owner suspended the connection on this latch's word and has not resumed it.
    private(set) var suspended = false
    /// A resume was wanted while the connection was not suspended: the next suspend is skipped.
    private(set) var resumeWanted = false

    /// The owner would suspend now: true if it must (MHD_suspend_connection), false if a
    /// resume came meanwhile (it goes on instead, and the resume is used up).
    mutating func suspend() -> Bool {
        if resumeWanted {
            resumeWanted = false
            return false
        }
        suspended = true
        return true
    }

    /// Something the suspended owner waits for came: true if it must resume now
    /// (MHD_resume_connection), false if the connection is not suspended (the next suspend
    /// is skipped).
    mutating func resume() -> Bool {
        guard suspended else {
            resumeWanted = true
            return false
        }
        suspended = false
        return true
    }
}
