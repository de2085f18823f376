import Crypto
import Foundation
import MCPWire

/// One tool as a server defines it, reduced to what a person approves: name, title,
/// description, input and output schema, annotations. `_meta`, `icons` and fields a later
/// revision adds are not pinned (they carry no instructions for the model, and a pin that
/// broke on every cosmetic field would train operators to approve without reading).
///
/// The canonical form is JSON with object keys sorted by Unicode scalar value, no whitespace,
/// strings escaped the one way `JSONWriter` escapes them, and numbers as the server wrote them
/// (so `1` and `1.0` are different definitions — rare, and never a reason to miss a change).
public struct ToolDefinition: Sendable, Equatable {
    public static let pinnedFields = ["name", "title", "description", "inputSchema", "outputSchema", "annotations"]

    public let name: String
    /// The pinned fields, in canonical order.
    public let value: JSONValue
    /// `sha256:<hex>` of the canonical form.
    public let digest: String
    /// The digest of everything but the name: equal for a tool that was only renamed.
    public let bodyDigest: String
    /// Bytes of the canonical form.
    public let size: Int

    /// Nil when `tool` is not an object with a string `name`.
    public init?(_ tool: JSONValue) {
        guard case .object(let object) = tool, let name = object["name"]?.stringValue else { return nil }
        var pinned = JSONObject()
        for field in Self.pinnedFields {
            if let value = object[field] { pinned.append(field, Canonical.sorted(value)) }
        }
        let sorted = Canonical.sortedKeys(pinned)
        self.name = name
        self.value = .object(sorted)
        let bytes = JSONWriter.bytes(.object(sorted))
        self.size = bytes.count
        self.digest = Canonical.digest(bytes: bytes)
        var body = sorted
        if let position = body.position(of: "name") { body.setValue(.null, at: position) }
        self.bodyDigest = Canonical.digest(.object(body))
    }

    /// The canonical JSON text.
    public var canonicalText: String { JSONWriter.string(value) }

    /// The definition as indented JSON, one field per line: what a diff compares.
    public var prettyText: String { Canonical.pretty(value) }
}

/// Canonical JSON: sorted keys at every depth, and its SHA-256.
public enum Canonical {
    /// Deeper than the JSON parser's own limit only for values built in code; such parts are
    /// written as a marker instead of recursing without bound.
    static let maxDepth = 512

    public static func sorted(_ value: JSONValue, depth: Int = 0) -> JSONValue {
        guard depth < maxDepth else { return .string("…(nested too deep)") }
        switch value {
        case .object(let object):
            var out = JSONObject()
            out.reserveCapacity(object.count)
            for (key, inner) in object { out.append(key, sorted(inner, depth: depth + 1)) }
            return .object(sortedKeys(out))
        case .array(let items):
            return .array(items.map { sorted($0, depth: depth + 1) })
        default:
            return value
        }
    }

    static func sortedKeys(_ object: JSONObject) -> JSONObject {
        JSONObject(object.entries.sorted { $0.key.unicodeScalars.lexicographicallyPrecedes($1.key.unicodeScalars) })
    }

    public static func digest(_ value: JSONValue) -> String { digest(bytes: JSONWriter.bytes(value)) }

    static func digest(bytes: [UInt8]) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var out = Array("sha256:".utf8)
        for byte in SHA256.hash(data: bytes) {
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Indented JSON (two spaces), keys in the value's order.
    public static func pretty(_ value: JSONValue) -> String {
        var out = ""
        write(value, indent: "", into: &out)
        return out
    }

    private static func write(_ value: JSONValue, indent: String, into out: inout String) {
        switch value {
        case .object(let object) where !object.isEmpty:
            out += "{\n"
            for (index, entry) in object.entries.enumerated() {
                out += indent + "  " + JSONWriter.string(.string(entry.key)) + ": "
                write(entry.value, indent: indent + "  ", into: &out)
                out += index == object.count - 1 ? "\n" : ",\n"
            }
            out += indent + "}"
        case .array(let items) where !items.isEmpty:
            out += "[\n"
            for (index, item) in items.enumerated() {
                out += indent + "  "
                write(item, indent: indent + "  ", into: &out)
                out += index == items.count - 1 ? "\n" : ",\n"
            }
            out += indent + "]"
        default:
            out += JSONWriter.string(value)
        }
    }
}
