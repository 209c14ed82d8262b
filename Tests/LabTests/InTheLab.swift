import Testing

/// Every test that drives the daemon on the lab's devices, one test at a time: they share
/// the devices, and some change a device's state for a moment (its configuration, a halt,
/// a claim) that another test would trip over.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct InTheLab {}
