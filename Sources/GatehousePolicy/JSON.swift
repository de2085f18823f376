import Foundation
import MCPWire

/// JSON reading and writing for `Value`. Numbers keep their exact integer value.
public enum JSON {
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let message: String
        public let offset: Int
        public var description: String { "invalid JSON at offset \(offset): \(message)" }
    }

    /// The deepest nesting data files and `json.unmarshal` may use.
    public static let maxDepth = 512

    public static func parse(_ text: String) throws(ParseError) -> Value {
        try parse(bytes: Array(text.utf8))
    }

    /// Reads JSON with the gateway's one parser (MCPWire's, the same that reads every MCP
    /// message), then converts it to Rego values.
    public static func parse(bytes: [UInt8]) throws(ParseError) -> Value {
        do {
            return Value(json: try JSONParser.parse(bytes, maxDepth: maxDepth))
        } catch {
            throw ParseError(message: error.message, offset: error.offset)
        }
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
        case .number(.float(let d)) where !d.isFinite:
            // A double overflowed (a literal beyond 1e308 and 400 digits, or arithmetic on one):
            // still valid JSON, read back as the same infinity; NaN has no JSON form.
            out += d.isNaN ? "null" : (d < 0 ? "-1e999" : "1e999")
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

extension Value {
    /// JSON (as MCPWire reads it) → Rego values: numbers keep integer exactness (past
    /// `Number.maxExactDigits` they become doubles), object keys are strings, a repeated key keeps
    /// its last value (as OPA's Go decoder does).
    public init(json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let text): self = Number(parsing: text).map(Value.number) ?? .null
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map(Value.init(json:)))
        case .object(let o):
            var object: [Value: Value] = [:]
            object.reserveCapacity(o.count)
            for (key, value) in o { object[.string(key)] = Value(json: value) }
            self = .object(object)
        }
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
