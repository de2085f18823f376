import BigInt
import CYaml
import Yams
import Foundation

/// YAML as OPA reads it: sigs.k8s.io/yaml over go-yaml v2, i.e. YAML 1.1 scalars (y/yes/on are
/// true, 0o17 and 017 are octal, 1_000 is an integer), duplicate keys allowed (the last wins),
/// merge keys applied in order, only the first document read, map keys turned into strings
/// (numbers, booleans) or refused (null, sequences, mappings), and NaN/Inf refused as JSON does.
/// The event stream comes from libyaml (the C library Yams wraps; go-yaml v2 is a port of it),
/// because Yams's own composer refuses duplicate keys and resolves YAML 1.2 core tags.
enum GoYAML {
    indirect enum Node {
        case scalar(String, tag: String, implicit: Bool)
        case sequence([Node])
        case mapping([(Node, Node)])
        case alias(Node)
    }

    /// A scalar after go-yaml v2's resolve: the Go type it decodes to.
    enum Scalar: Equatable {
        case null, bool(Bool), int(Int64), uint(UInt64), float(Double), string(String)
    }

    struct Failure: Error { let message: String }

    /// Reads the first document of `text` into a Rego value, as OPA's yaml.unmarshal does.
    static func unmarshal(_ text: String) throws -> Value {
        guard let root = try parseFirstDocument(text) else { return .null }
        var decoder = Decoder()
        return try decoder.value(root)
    }

    // MARK: events

    static func parseFirstDocument(_ text: String) throws -> Node? {
        // libyaml keeps a pointer to the parser in it (its read handler's data): it must not move.
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else { throw Failure(message: "yaml: cannot initialize the parser") }
        defer { yaml_parser_delete(parser) }
        let bytes = Array(text.utf8) + [0]  // never an empty buffer: libyaml asserts on a null input
        return try bytes.withUnsafeBufferPointer { buf -> Node? in
            yaml_parser_set_input_string(parser, buf.baseAddress, buf.count - 1)
            yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
            var reader = EventReader(parser: parser)
            return try reader.firstDocument()
        }
    }

    struct EventReader {
        let parser: UnsafeMutablePointer<yaml_parser_t>
        var anchors: [String: Node] = [:]

        mutating func next() throws -> yaml_event_t {
            var event = yaml_event_t()
            guard yaml_parser_parse(parser, &event) == 1 else {
                let problem = parser.pointee.problem.map { String(cString: $0) } ?? "unknown error"
                throw Failure(message: "yaml: line \(parser.pointee.problem_mark.line + 1): \(problem)")
            }
            return event
        }

        mutating func firstDocument() throws -> Node? {
            while true {
                var event = try next()
                defer { yaml_event_delete(&event) }
                switch event.type {
                case YAML_STREAM_END_EVENT: return nil
                case YAML_DOCUMENT_START_EVENT:
                    var first = try next()
                    let root = try node(&first)
                    yaml_event_delete(&first)
                    var end = try next()
                    yaml_event_delete(&end)
                    return root
                default: continue
                }
            }
        }

        static func text(_ p: UnsafeMutablePointer<yaml_char_t>?, _ count: Int? = nil) -> String? {
            guard let p else { return nil }
            if let count { return String(decoding: UnsafeBufferPointer(start: p, count: count), as: UTF8.self) }
            return String(cString: p)
        }

        /// The node that begins with `event` (its children are read here).
        mutating func node(_ event: inout yaml_event_t) throws -> Node {
            switch event.type {
            case YAML_ALIAS_EVENT:
                let name = Self.text(event.data.alias.anchor) ?? ""
                guard let target = anchors[name] else { throw Failure(message: "yaml: unknown anchor '\(name)' referenced") }
                return .alias(target)
            case YAML_SCALAR_EVENT:
                let s = event.data.scalar
                let n = Node.scalar(Self.text(s.value, Int(s.length)) ?? "", tag: Self.shortTag(Self.text(s.tag)), implicit: s.plain_implicit != 0)
                if let a = Self.text(s.anchor) { anchors[a] = n }
                return n
            case YAML_SEQUENCE_START_EVENT:
                let anchor = Self.text(event.data.sequence_start.anchor)
                var items: [Node] = []
                while true {
                    var e = try next()
                    defer { yaml_event_delete(&e) }
                    if e.type == YAML_SEQUENCE_END_EVENT { break }
                    items.append(try node(&e))
                }
                let n = Node.sequence(items)
                if let anchor { anchors[anchor] = n }
                return n
            case YAML_MAPPING_START_EVENT:
                let anchor = Self.text(event.data.mapping_start.anchor)
                var pairs: [(Node, Node)] = []
                while true {
                    var k = try next()
                    defer { yaml_event_delete(&k) }
                    if k.type == YAML_MAPPING_END_EVENT { break }
                    let key = try node(&k)
                    var v = try next()
                    defer { yaml_event_delete(&v) }
                    pairs.append((key, try node(&v)))
                }
                let n = Node.mapping(pairs)
                if let anchor { anchors[anchor] = n }
                return n
            default:
                throw Failure(message: "yaml: unexpected event \(event.type.rawValue)")
            }
        }

        static func shortTag(_ tag: String?) -> String {
            guard let tag else { return "" }
            let prefix = "tag:yaml.org,2002:"
            return tag.hasPrefix(prefix) ? "!!" + tag.dropFirst(prefix.count) : tag
        }
    }
}

// MARK: decoding

extension GoYAML {
    /// go-yaml v2's decoding into interface{} values followed by sigs.k8s.io/yaml's conversion to
    /// JSON (string keys; NaN and infinities refused by encoding/json).
    struct Decoder {
        var decodeCount = 0, aliasCount = 0, aliasDepth = 0

        /// go-yaml v2's guard against alias expansion bombs ("excessive aliasing").
        mutating func count() throws {
            decodeCount += 1
            if aliasDepth > 0 { aliasCount += 1 }
            guard aliasCount > 100, decodeCount > 1000 else { return }
            let low = 400_000.0, high = 4_000_000.0, n = Double(decodeCount)
            let allowed = n <= low ? 0.99 : (n >= high ? 0.10 : 0.99 - 0.89 * (n - low) / (high - low))
            if Double(aliasCount) / n > allowed { throw Failure(message: "yaml: document contains excessive aliasing") }
        }

        /// Nesting of the value being built, aliases followed: chained anchors, each under
        /// libyaml's own limit, made values thousands deep that crashed whatever walked them
        /// (json.marshal, walk, ==). The same limit as JSON's (MCPWire).
        var depth = 0
        static let maxDepth = 512

        mutating func value(_ node: Node) throws -> Value {
            try count()
            switch node {
            case .alias(let target):
                aliasDepth += 1
                defer { aliasDepth -= 1 }
                return try value(target)
            case .scalar(let text, let tag, let implicit):
                return try GoYAML.jsonValue(try GoYAML.decodeScalar(text, tag: tag, implicit: implicit))
            case .sequence(let items):
                try enter()
                defer { depth -= 1 }
                return .array(try items.map { try value($0) })
            case .mapping(let pairs):
                try enter()
                defer { depth -= 1 }
                var out: [Value: Value] = [:]
                try fill(&out, pairs)
                return .object(out)
            }
        }

        mutating func enter() throws {
            depth += 1
            if depth > Self.maxDepth { throw Failure(message: "yaml: nesting deeper than \(Self.maxDepth) levels (aliases included)") }
        }

        mutating func fill(_ out: inout [Value: Value], _ pairs: [(Node, Node)]) throws {
            for (k, v) in pairs {
                if case .scalar("<<", let tag, let implicit) = k, implicit || tag == "!!merge" {
                    try merge(&out, v)
                    continue
                }
                let key = try keyString(k)
                out[.string(key)] = try value(v)
            }
        }

        /// A merge key's value: a mapping (or an alias of one) or a sequence of them, the earlier
        /// ones taking precedence; its entries are set in turn, replacing what is there.
        mutating func merge(_ out: inout [Value: Value], _ node: Node) throws {
            switch node {
            case .mapping(let pairs):
                try count()
                try fill(&out, pairs)
            case .alias(let target):
                guard case .mapping = target else { throw Failure(message: "yaml: map merge requires map or sequence of maps as the value") }
                try count()
                aliasDepth += 1
                defer { aliasDepth -= 1 }
                try merge(&out, target)
            case .sequence(let items):
                for item in items.reversed() {
                    switch item {
                    case .mapping, .alias(.mapping): try merge(&out, item)
                    default: throw Failure(message: "yaml: map merge requires map or sequence of maps as the value")
                    }
                }
            case .scalar:
                throw Failure(message: "yaml: map merge requires map or sequence of maps as the value")
            }
        }

        /// The JSON key sigs.k8s.io/yaml makes of a map key: numbers and booleans become strings.
        mutating func keyString(_ node: Node) throws -> String {
            try count()
            switch node {
            case .alias(let target):
                aliasDepth += 1
                defer { aliasDepth -= 1 }
                return try keyString(target)
            case .sequence, .mapping:
                throw Failure(message: "yaml: invalid map key: a \(node.kindName)")
            case .scalar(let text, let tag, let implicit):
                switch try GoYAML.decodeScalar(text, tag: tag, implicit: implicit) {
                case .string(let s): return s
                case .int(let i): return String(i)
                case .float(let d): return GoYAML.formatFloat32Key(d)
                case .bool(let b): return b ? "true" : "false"
                case .null, .uint: throw Failure(message: "error converting YAML to JSON: unsupported map key `\(text)`")
                }
            }
        }
    }

    static func decodeScalar(_ text: String, tag: String, implicit: Bool) throws -> Scalar {
        if tag.isEmpty && !implicit { return .string(text) }
        if tag == "!!binary" {
            guard let d = Data(base64Encoded: text.filter { $0 != "\n" && $0 != "\r" }) else {
                throw Failure(message: "yaml: !!binary value contains invalid base64 data")
            }
            return .string(String(decoding: d, as: UTF8.self))
        }
        return try resolve(tag, text).value
    }

    static func jsonValue(_ s: Scalar) throws -> Value {
        switch s {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .number(Number(Int(i)))
        case .uint(let u): return .number(Number(BigInt(u)))
        case .string(let t): return .string(t)
        case .float(let d):
            guard d.isFinite else { throw Failure(message: "error converting YAML to JSON: json: unsupported value: \(d)") }
            return .number(Number(d))
        }
    }

    /// strconv.FormatFloat(f, 'g', -1, 32) with YAML's names for the infinities and NaN.
    static func formatFloat32Key(_ d: Double) -> String {
        let f = Float(d)
        if f.isNaN { return ".nan" }
        if f.isInfinite { return f < 0 ? "-.inf" : ".inf" }
        return goFormatG("\(f)")
    }

    /// Go's %g with the shortest precision (strconv.FormatFloat(x, 'g', -1, _)), from Swift's
    /// shortest round-tripping text of the same value ("1.5", "1e-07", "1.2345678e+22", "100.0").
    static func goFormatG(_ swiftText: String) -> String {
        var t = Substring(swiftText)
        var sign = ""
        if t.hasPrefix("-") { sign = "-"; t = t.dropFirst() }
        var exp10 = 0
        if let e = t.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exp10 = Int(t[t.index(after: e)...]) ?? 0
            t = t[..<e]
        }
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        var digits = String(parts[0]) + (parts.count > 1 ? String(parts[1]) : "")
        var point = parts[0].count + exp10  // digits before the decimal point
        while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst(); point -= 1 }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        if digits == "0" { return sign + "0" }
        let exp = point - 1
        if exp < -4 || exp >= 6 {
            let mant = digits.count > 1 ? String(digits.first!) + "." + digits.dropFirst() : digits
            let e = String(abs(exp))
            return sign + mant + "e" + (exp < 0 ? "-" : "+") + (e.count < 2 ? "0" + e : e)
        }
        if point <= 0 { return sign + "0." + String(repeating: "0", count: -point) + digits }
        if point >= digits.count { return sign + digits + String(repeating: "0", count: point - digits.count) }
        return sign + digits.prefix(point) + "." + digits.dropFirst(point)
    }
}

extension GoYAML.Node {
    var kindName: String {
        switch self {
        case .scalar: return "scalar"
        case .sequence: return "sequence"
        case .mapping: return "mapping"
        case .alias(let t): return t.kindName
        }
    }
}

// MARK: encoding

extension GoYAML {
    /// OPA's yaml.marshal: the value as JSON, read back by go-yaml v2 and written by it: strings
    /// that would read back as something else are double-quoted, multi-line ones are literal
    /// blocks, keys in go-yaml's natural order (a2 before a10), integers beyond uint64 as floats.
    static func marshal(_ v: Value) throws -> String {
        var text: String
        do { text = try Yams.serialize(node: yamsNode(v), allowUnicode: true) } catch { throw Failure(message: "yaml: \(error)") }
        // libyaml ends the document explicitly after a block scalar that keeps its trailing line
        // breaks (|+); go-yaml v2's emitter does not. A scalar "..." is always quoted.
        if text.hasSuffix("\n...\n") { text.removeLast(4) }
        return text
    }

    static func yamsNode(_ v: Value) -> Yams.Node {
        switch v {
        case .null: return Yams.Node("null", Tag(.null), .plain)
        case .bool(let b): return Yams.Node(b ? "true" : "false", Tag(.bool), .plain)
        case .number(let n): return Yams.Node(numberText(n), Tag(n.isInteger ? .int : .float), .plain)
        case .string(let s): return Yams.Node(s, Tag(.str), scalarStyle(s))
        case .array(let a): return Yams.Node(a.map(yamsNode))
        case .set(let s): return Yams.Node(s.sorted().map(yamsNode))
        case .object(let o):
            let pairs = o.map { (k, v) -> (String, Value) in
                if case .string(let s) = k { return (s, v) }
                return (JSON.serialize(k), v)
            }
            return Yams.Node(pairs.sorted { naturalLess($0.0, $1.0) }.map { (yamsNode(.string($0.0)), yamsNode($0.1)) })
        }
    }

    static func numberText(_ n: Number) -> String {
        switch n {
        case .int(let i): return String(i)
        case .big(let b): return UInt64(exactly: b) != nil ? b.description : goFormatG("\(Double(b.description) ?? Double(b))")
        case .float(let d): return goFormatG("\(d)")
        }
    }

    static func scalarStyle(_ s: String) -> Yams.Node.Scalar.Style {
        if s.contains("\n") { return .literal }
        if let r = try? resolve("", s), r.tag == "!!str", !isBase60Float(s) { return .plain }
        return .doubleQuoted
    }

    /// go-yaml v2's key order: letters by code point, runs of digits by their numeric value.
    static func naturalLess(_ a: String, _ b: String) -> Bool {
        let ar = Array(a.unicodeScalars), br = Array(b.unicodeScalars)
        func isLetter(_ c: Unicode.Scalar) -> Bool {
            switch c.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
            default: return false
            }
        }
        func isDigit(_ c: Unicode.Scalar) -> Bool { c.properties.generalCategory == .decimalNumber }
        for i in 0..<min(ar.count, br.count) where ar[i] != br[i] {
            let al = isLetter(ar[i]), bl = isLetter(br[i])
            if al && bl { return ar[i].value < br[i].value }
            if al || bl { return bl }
            var an: Int64 = 0, bn: Int64 = 0
            if ar[i] == "0" || br[i] == "0" {
                var j = i - 1
                while j >= 0 && isDigit(ar[j]) {
                    if ar[j] != "0" { an = 1; bn = 1; break }
                    j -= 1
                }
            }
            var ai = i, bi = i
            while ai < ar.count && isDigit(ar[ai]) { an = an &* 10 &+ (Int64(ar[ai].value) - 48); ai += 1 }
            while bi < br.count && isDigit(br[bi]) { bn = bn &* 10 &+ (Int64(br[bi].value) - 48); bi += 1 }
            if an != bn { return an < bn }
            if ai != bi { return ai < bi }
            return ar[i].value < br[i].value
        }
        return ar.count < br.count
    }
}
