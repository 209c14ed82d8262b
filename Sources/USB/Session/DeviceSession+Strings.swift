import Logging

/// String descriptors, read with asynchronous control transfers like any request's (libusb's
/// synchronous calls would handle libusb's events on the calling thread, away from the loop).
extension DeviceSession {
    /// The language ids of string descriptor 0.
    public func stringLanguages(logger: Logger) async throws -> [UInt16] {
        let raw = try await rawString(index: 0, language: 0, logger: logger)
        return stride(from: 0, to: raw.count - 1, by: 2).map { UInt16(raw[$0]) | UInt16(raw[$0 + 1]) << 8 }
    }

    /// String descriptor `index` in `language`, decoded from UTF-16LE.
    public func string(index: UInt8, language: UInt16, logger: Logger) async throws -> String {
        let raw = try await rawString(index: index, language: language, logger: logger)
        let units = stride(from: 0, to: raw.count - 1, by: 2).map { UInt16(raw[$0]) | UInt16(raw[$0 + 1]) << 8 }
        return String(decoding: units, as: UTF16.self)
    }

    /// The payload of a string descriptor (after bLength and bDescriptorType): GET_DESCRIPTOR
    /// (STRING), one second at most.
    private func rawString(index: UInt8, language: UInt16, logger: Logger) async throws -> [UInt8] {
        let setup = ControlSetup(
            direction: .in, kind: .standard, recipient: .device, request: 0x06, value: 0x0300 | UInt16(index),
            index: language, length: 255)
        let result = try await control(setup, timeout: 1000, logger: logger)
        let data = result.data
        guard result.status == .completed else { throw result.status == .noDevice ? USBError.noDevice : USBError.io }
        guard data.count >= 2, data[1] == 0x03 else { throw USBError.io }
        let length = min(data.count, Int(data[0]))
        return length > 2 ? Array(data[2..<length]) : []
    }
}
