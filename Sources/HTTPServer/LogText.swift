/// Text from clients made safe for a log line: a path with `%0a` in it must not start a forged
/// line of its own.
public enum LogText {
    /// `text` with control characters (and backslash) escaped (`\n`, `\r`, `\t`, `\\`, `\xNN`),
    /// cut after `limit` characters (with "…").
    public static func printable(_ text: String, limit: Int = 1024) -> String {
        var needsWork = text.utf8.count > limit
        if !needsWork {
            // Non-ASCII too: C1 controls and the Unicode line separators are escaped.
            for byte in text.utf8 where byte < 0x20 || byte == 0x7f || byte == 0x5c || byte >= 0x80 {
                needsWork = true
                break
            }
        }
        guard needsWork else { return text }
        var result = ""
        result.reserveCapacity(min(text.utf8.count, limit) + 8)
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= limit {
                result += "…"
                break
            }
            count += 1
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value)
                || scalar.value == 0x2028 || scalar.value == 0x2029:
                let hex = String(scalar.value, radix: 16)
                result += scalar.value < 0x100 ? "\\x" + String(repeating: "0", count: 2 - hex.count) + hex : "\\u{\(hex)}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
