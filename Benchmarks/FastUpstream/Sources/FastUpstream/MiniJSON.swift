/// Just enough JSON to answer MCP requests without decoding them: walks the top-level object
/// (and `params`) and returns the raw byte ranges of the few members the server needs. Values
/// are skipped, never materialised. Input is trusted benchmark traffic; malformed input yields
/// nil, never a crash.
struct MiniJSON {
    let bytes: UnsafeRawBufferPointer

    /// Raw ranges of the members of the object starting at `start` whose keys are in `wanted`.
    /// Keys are compared as raw bytes (no unescaping: MCP member names never need it).
    func members(ofObjectAt start: Int, wanted: [[UInt8]]) -> [Range<Int>?]? {
        var found = [Range<Int>?](repeating: nil, count: wanted.count)
        var i = skipWhitespace(start)
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { return nil }
        i = skipWhitespace(i + 1)
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { return found }
        while i < bytes.count {
            guard bytes[i] == UInt8(ascii: "\"") else { return nil }
            guard let keyEnd = skipString(i) else { return nil }
            let keyRange = (i + 1)..<(keyEnd - 1)
            i = skipWhitespace(keyEnd)
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
            i = skipWhitespace(i + 1)
            guard let valueEnd = skipValue(i) else { return nil }
            for (n, key) in wanted.enumerated() where found[n] == nil && equals(keyRange, key) {
                found[n] = i..<valueEnd
            }
            i = skipWhitespace(valueEnd)
            guard i < bytes.count else { return nil }
            if bytes[i] == UInt8(ascii: ",") {
                i = skipWhitespace(i + 1)
            } else if bytes[i] == UInt8(ascii: "}") {
                return found
            } else {
                return nil
            }
        }
        return nil
    }

    /// The contents of a JSON string value without its quotes (still escaped).
    func stringContents(_ range: Range<Int>) -> Range<Int>? {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\""), bytes[range.upperBound - 1] == UInt8(ascii: "\"") else { return nil }
        return (range.lowerBound + 1)..<(range.upperBound - 1)
    }

    func equals(_ range: Range<Int>, _ literal: [UInt8]) -> Bool {
        guard range.count == literal.count else { return false }
        var j = 0
        for k in range {
            if bytes[k] != literal[j] { return false }
            j += 1
        }
        return true
    }

    func skipWhitespace(_ start: Int) -> Int {
        var i = start
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return i
            }
        }
        return i
    }

    /// `start` is at the opening quote; returns the index after the closing quote.
    func skipString(_ start: Int) -> Int? {
        var i = start + 1
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "\\"): i += 2
            case UInt8(ascii: "\""): return i + 1
            default: i += 1
            }
        }
        return nil
    }

    func skipValue(_ start: Int) -> Int? {
        guard start < bytes.count else { return nil }
        switch bytes[start] {
        case UInt8(ascii: "\""):
            return skipString(start)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var i = start
            while i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: "\""):
                    guard let end = skipString(i) else { return nil }
                    i = end
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return i + 1 }
                default:
                    break
                }
                i += 1
            }
            return nil
        default:
            var i = start
            while i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D:
                    return i == start ? nil : i
                default:
                    i += 1
                }
            }
            return i == start ? nil : i
        }
    }
}
