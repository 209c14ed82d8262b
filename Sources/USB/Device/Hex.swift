/// A byte as "0x" and two hex digits ("0x81"), the way endpoint addresses are written.
public func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16)
    return "0x" + (digits.count < 2 ? "0" : "") + digits
}

/// A 16-bit value as "0x" and four hex digits ("0x1209"), the way USB ids are written.
public func hex(_ word: UInt16) -> String {
    let digits = String(word, radix: 16)
    return "0x" + String(repeating: "0", count: 4 - digits.count) + digits
}
