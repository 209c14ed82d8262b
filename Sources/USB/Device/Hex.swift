/// A byte as "0x" and two hex digits ("0x81"), the way endpoint addresses are written.
public func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16)
    return "0x" + (digits.count < 2 ? "0" : "") + digits
}
