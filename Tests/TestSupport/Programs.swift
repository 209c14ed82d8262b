import Foundation

/// Runs a program to its end on a thread of its own (never blocking Swift's cooperative
/// pool, which the server under test may need to answer it); its standard output, or an
/// error if it exits non-zero.
@discardableResult
public func runProgram(_ program: String, _ arguments: [String]) async throws -> String {
    try await offThePool { try runProgramBlocking(program, arguments) }
}

/// Runs `body` on a new thread and waits for it without holding a cooperative thread: tests
/// on a 2-core machine have only two, and a blocked pair starves the server they test.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

private func runProgramBlocking(_ program: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw TestFailure("\(program) exited \(process.terminationStatus)") }
    return String(decoding: data, as: UTF8.self)
}

/// A self-signed certificate for 127.0.0.1 and localhost, made with openssl in `folder`:
/// the paths of its certificate and key (PEM).
public func makeCertificate(in folder: URL) async throws -> (certificate: String, key: String) {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let certificate = folder.appendingPathComponent("cert.pem").path
    let key = folder.appendingPathComponent("key.pem").path
    try await runProgram(
        "/usr/bin/openssl",
        [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", key, "-out", certificate,
        ])
    return (certificate, key)
}
