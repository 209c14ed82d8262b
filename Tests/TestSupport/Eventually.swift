/// Waits until `condition` holds, checking every 5 ms, for at most `seconds`: whether it did.
/// For what the code under test does on its own time (a loop's hop, a URB given back).
public func eventually(within seconds: Int = 10, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return false
}
