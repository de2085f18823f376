import Foundation

/// JSON reading and writing for `Value`. Numbers keep their exact integer value.
public enum JSON {
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let message: String
        public let offset: Int
        public var description: String { "invalid JSON at offset \(offset): \(message)" }
    }

    public static func parse(_ text: String) throws(ParseError) -> Value {
        var p = JSONParser(Array(text.utf8))
        p.skipWS()
        let v = try p.parseValue(depth: 0)
        p.skipWS()
        if p.i != p.b.count { throw ParseError(message: "unexpected trailing characters", offset: p.i) }
        return v
    }

    public static func parse(bytes: [UInt8]) throws(ParseError) -> Value {
        var p = JSONParser(bytes)
        p.skipWS()
        let v = try p.parseValue(depth: 0)
        p.skipWS()
        if p.i != p.b.count { throw ParseError(message: "unexpected trailing characters", offset: p.i) }
        return v
    }

    /// Serializes compactly with sorted object keys; sets become sorted arrays.
    /// Non-string object keys are written as their JSON text.
    public static func serialize(_ v: Value, pretty: Bool = false, sortKeys: Bool = true) -> String {
        var out = ""
        write(v, into: &out, pretty: pretty, indent: 0)
        return out
    }

    static func write(_ v: Value, into out: inout String, pretty: Bool, indent: Int) {
        switch v {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n.description
        case .string(let s): writeString(s, into: &out)
        case .array(let a):
            writeList(a, into: &out, pretty: pretty, indent: indent)
        case .set(let s):
            writeList(s.sorted(), into: &out, pretty: pretty, indent: indent)
        case .object(let o):
            if o.isEmpty { out += "{}"; return }
            out += "{"
            var first = true
            for (k, val) in o.sorted(by: { $0.key < $1.key }) {
                if !first { out += "," }
                first = false
                if pretty { out += "\n" + String(repeating: "  ", count: indent + 1) }
                if case .string(let ks) = k { writeString(ks, into: &out) } else { writeString(serialize(k), into: &out) }
                out += pretty ? ": " : ":"
                write(val, into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { out += "\n" + String(repeating: "  ", count: indent) }
            out += "}"
        }
    }

    static func writeList(_ a: [Value], into out: inout String, pretty: Bool, indent: Int) {
        if a.isEmpty { out += "[]"; return }
        out += "["
        for (i, e) in a.enumerated() {
            if i > 0 { out += "," }
            if pretty { out += "\n" + String(repeating: "  ", count: indent + 1) }
            write(e, into: &out, pretty: pretty, indent: indent + 1)
        }
        if pretty { out += "\n" + String(repeating: "  ", count: indent) }
        out += "]"
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<": out += "\\u003c"
            case ">": out += "\\u003e"
            case "&": out += "\\u0026"
            default:
                if u.value < 0x20 {
                    out += String(format: "\\u%04x", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}

struct JSONParser {
    let b: [UInt8]
    var i = 0
    init(_ b: [UInt8]) { self.b = b }

    mutating func skipWS() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    func err(_ m: String) -> JSON.ParseError { JSON.ParseError(message: m, offset: i) }

    mutating func parseValue(depth: Int) throws(JSON.ParseError) -> Value {
        guard depth < 512 else { throw err("nesting too deep") }
        guard i < b.count else { throw err("unexpected end of input") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var o: [Value: Value] = [:]
            skipWS()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
            while true {
                skipWS()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw err("expected string key") }
                let k = try parseString()
                skipWS()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw err("expected ':'") }
                i += 1
                skipWS()
                o[.string(k)] = try parseValue(depth: depth + 1)
                skipWS()
                guard i < b.count else { throw err("unexpected end of input") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                throw err("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var a: [Value] = []
            skipWS()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            while true {
                skipWS()
                a.append(try parseValue(depth: depth + 1))
                skipWS()
                guard i < b.count else { throw err("unexpected end of input") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                throw err("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            if match("true") { return .bool(true) }
            throw err("invalid literal")
        case UInt8(ascii: "f"):
            if match("false") { return .bool(false) }
            throw err("invalid literal")
        case UInt8(ascii: "n"):
            if match("null") { return .null }
            throw err("invalid literal")
        default:
            let start = i
            if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
            while i < b.count {
                let c = b[i]
                if (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
                    || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
                {
                    i += 1
                } else {
                    break
                }
            }
            guard i > start else { throw err("unexpected character") }
            let text = String(decoding: b[start..<i], as: UTF8.self)
            guard let n = Number(parsing: text) else { throw JSON.ParseError(message: "invalid number \(text)", offset: start) }
            return .number(n)
        }
    }

    mutating func match(_ lit: StaticString) -> Bool {
        let n = lit.utf8CodeUnitCount
        guard i + n <= b.count else { return false }
        let p = lit.utf8Start
        for j in 0..<n where b[i + j] != p[j] { return false }
        i += n
        return true
    }

    mutating func parseString() throws(JSON.ParseError) -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        while i < b.count, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\") { i += 1 }
        if i < b.count, b[i] == UInt8(ascii: "\"") {
            let s = String(decoding: b[start..<i], as: UTF8.self)
            i += 1
            return s
        }
        var bytes = Array(b[start..<i])
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return String(decoding: bytes, as: UTF8.self)
            }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard i < b.count else { break }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): bytes.append(0x22)
                case UInt8(ascii: "\\"): bytes.append(0x5C)
                case UInt8(ascii: "/"): bytes.append(0x2F)
                case UInt8(ascii: "b"): bytes.append(0x08)
                case UInt8(ascii: "f"): bytes.append(0x0C)
                case UInt8(ascii: "n"): bytes.append(0x0A)
                case UInt8(ascii: "r"): bytes.append(0x0D)
                case UInt8(ascii: "t"): bytes.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if code >= 0xD800, code < 0xDC00, i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        let low = try hex4()
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                    bytes.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: throw err("invalid escape")
                }
            } else {
                bytes.append(c)
                i += 1
            }
        }
        throw err("unterminated string")
    }

    mutating func hex4() throws(JSON.ParseError) -> UInt32 {
        guard i + 4 <= b.count else { throw err("bad unicode escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            var d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            default: throw err("bad unicode escape")
            }
            v = v * 16 + d
            i += 1
        }
        return v
    }
}

extension Value: CustomStringConvertible {
    /// Rego-syntax rendering (sets as `{...}`), used by sprintf %v and print.
    public var description: String {
        var out = ""
        Value.writeRego(self, into: &out)
        return out
    }

    static func writeRego(_ v: Value, into out: inout String) {
        switch v {
        case .set(let s):
            if s.isEmpty { out += "set()"; return }
            out += "{"
            for (i, e) in s.sorted().enumerated() {
                if i > 0 { out += ", " }
                writeRego(e, into: &out)
            }
            out += "}"
        case .array(let a):
            out += "["
            for (i, e) in a.enumerated() {
                if i > 0 { out += ", " }
                writeRego(e, into: &out)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, kv) in o.sorted(by: { $0.key < $1.key }).enumerated() {
                if i > 0 { out += ", " }
                writeRego(kv.key, into: &out)
                out += ": "
                writeRego(kv.value, into: &out)
            }
            out += "}"
        case .string(let s):
            JSON.writeString(s, into: &out)
        default:
            JSON.write(v, into: &out, pretty: false, indent: 0)
        }
    }
}
