import Foundation
import Yams

extension Builtins {
    static let encoding: [Builtin] = [
        Builtin("json.marshal", 1) { a, _ in .string(JSON.serialize(a[0])) },
        Builtin("json.marshal_with_options", 2) { a, _ in
            let opts = try argObject(a, 1)
            let pretty = opts[.string("pretty")] == .true || opts[.string("indent")] != nil || opts[.string("prefix")] != nil
            return .string(JSON.serialize(a[0], pretty: pretty))
        },
        Builtin("json.unmarshal", 1) { a, _ in
            do { return try JSON.parse(try argString(a, 0)) } catch let e as JSON.ParseError { throw BuiltinError(e.description) }
        },
        Builtin("json.is_valid", 1) { a, _ in
            guard case .string(let s) = a[0] else { return .false }
            return .bool((try? JSON.parse(s)) != nil)
        },
        Builtin("yaml.marshal", 1) { a, _ in .string(try yamlMarshal(a[0])) },
        Builtin("yaml.unmarshal", 1) { a, _ in try yamlParse(try argString(a, 0)) },
        Builtin("yaml.is_valid", 1) { a, _ in
            guard case .string(let s) = a[0] else { return .false }
            return .bool((try? yamlParse(s)) != nil)
        },
        Builtin("base64.encode", 1) { a, _ in .string(Data(try argString(a, 0).utf8).base64EncodedString()) },
        Builtin("base64.decode", 1) { a, _ in
            guard let d = Data(base64Encoded: try argString(a, 0)) else { throw BuiltinError("illegal base64 data") }
            return .string(String(decoding: d, as: UTF8.self))
        },
        Builtin("base64.is_valid", 1) { a, _ in
            guard case .string(let s) = a[0] else { return .false }
            return .bool(Data(base64Encoded: s) != nil)
        },
        Builtin("base64url.encode", 1) { a, _ in .string(base64url(Data(try argString(a, 0).utf8), pad: true)) },
        Builtin("base64url.encode_no_pad", 1) { a, _ in .string(base64url(Data(try argString(a, 0).utf8), pad: false)) },
        Builtin("base64url.decode", 1) { a, _ in
            guard let d = base64urlDecode(try argString(a, 0)) else { throw BuiltinError("illegal base64 data") }
            return .string(String(decoding: d, as: UTF8.self))
        },
        Builtin("hex.encode", 1) { a, _ in .string(hexString(Array(try argString(a, 0).utf8))) },
        Builtin("hex.decode", 1) { a, _ in
            let s = Array(try argString(a, 0).utf8)
            guard s.count % 2 == 0 else { throw BuiltinError("encoding/hex: odd length hex string") }
            var bytes: [UInt8] = []
            var i = 0
            while i < s.count {
                guard let h = hexVal(s[i]), let l = hexVal(s[i + 1]) else { throw BuiltinError("encoding/hex: invalid byte") }
                bytes.append(h << 4 | l)
                i += 2
            }
            return .string(String(decoding: bytes, as: UTF8.self))
        },
        Builtin("urlquery.encode", 1) { a, _ in .string(queryEscape(try argString(a, 0))) },
        Builtin("urlquery.decode", 1) { a, _ in
            guard let s = queryUnescape(try argString(a, 0)) else { throw BuiltinError("invalid URL escape") }
            return .string(s)
        },
        Builtin("urlquery.encode_object", 1) { a, _ in
            var parts: [String] = []
            for (k, v) in try argObject(a, 0).sorted(by: { $0.key < $1.key }) {
                guard case .string(let ks) = k else { throw typeError(1, "object[string: any]", a[0]) }
                switch v {
                case .string(let s): parts.append(queryEscape(ks) + "=" + queryEscape(s))
                case .array, .set:
                    let elems: [Value] = v.arrayValue ?? v.setValue!.sorted()
                    for e in elems {
                        guard case .string(let s) = e else { throw typeError(1, "object[string: any<string, array[string], set[string]>]", a[0]) }
                        parts.append(queryEscape(ks) + "=" + queryEscape(s))
                    }
                default: throw typeError(1, "object[string: any<string, array[string], set[string]>]", a[0])
                }
            }
            return .string(parts.joined(separator: "&"))
        },
        Builtin("urlquery.decode_object", 1) { a, _ in
            var out: [Value: Value] = [:]
            for pair in try argString(a, 0).split(separator: "&", omittingEmptySubsequences: true) {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let k = queryUnescape(String(kv[0])) else { throw BuiltinError("invalid URL escape") }
                guard let v = queryUnescape(kv.count > 1 ? String(kv[1]) : "") else { throw BuiltinError("invalid URL escape") }
                var arr = out[.string(k)]?.arrayValue ?? []
                arr.append(.string(v))
                out[.string(k)] = .array(arr)
            }
            return .object(out)
        },
    ]

    static func base64url(_ d: Data, pad: Bool) -> String {
        var s = d.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        if !pad { while s.hasSuffix("=") { s.removeLast() } }
        return s
    }

    static func base64urlDecode(_ s: String) -> Data? {
        var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        if t.contains("+") && s.contains("+") { return nil }
        while t.count % 4 != 0 { t += "=" }
        return Data(base64Encoded: t)
    }

    static func hexVal(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }

    static func hexString(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func queryEscape(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            case UInt8(ascii: " "): out += "+"
            default: out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    static func queryUnescape(_ s: String) -> String? {
        var bytes: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "%") {
                guard i + 2 < u.count, let h = hexVal(u[i + 1]), let l = hexVal(u[i + 2]) else { return nil }
                bytes.append(h << 4 | l)
                i += 3
            } else if u[i] == UInt8(ascii: "+") {
                bytes.append(0x20)
                i += 1
            } else {
                bytes.append(u[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: YAML

    static func yamlParse(_ s: String) throws -> Value {
        // Multi-document streams are valid; the first document is the value.
        var first: Node?
        do {
            let parser = try Yams.Parser(yaml: s)
            while let n = try parser.nextRoot() {
                if first == nil { first = n }
            }
        } catch {
            throw BuiltinError("yaml: \(error)")
        }
        guard let n = first else { return .null }
        return try yamlToValue(n)
    }

    static func yamlToValue(_ n: Node) throws -> Value {
        switch n {
        case .scalar(let sc):
            switch Tag.Name(rawValue: n.tag.rawValue) {
            case .null: return .null
            case .bool: return .bool(n.bool ?? false)
            case .int:
                if let num = Number(parsing: sc.string) { return .number(num) }
                if let i = n.int { return .int(i) }
                return .string(sc.string)
            case .float:
                if let num = Number(parsing: sc.string) { return .number(num) }
                if let d = n.float { return .number(Number(d)) }
                return .string(sc.string)
            default: return .string(sc.string)
            }
        case .mapping(let m):
            var o: [Value: Value] = [:]
            for (k, v) in m {
                let key: Value
                if case .scalar(let ks) = k { key = .string(ks.string) } else { key = .string(JSON.serialize(try yamlToValue(k))) }
                if key == .string("<<"), case .object(let merged) = try yamlToValue(v) {
                    for (mk, mv) in merged where o[mk] == nil { o[mk] = mv }
                    continue
                }
                o[key] = try yamlToValue(v)
            }
            return .object(o)
        case .sequence(let seq):
            return .array(try seq.map { try yamlToValue($0) })
        default:
            throw BuiltinError("yaml: unsupported node")
        }
    }

    static func valueToYamlNode(_ v: Value) -> Node {
        switch v {
        case .null: return Node("null", Tag(.null))
        case .bool(let b): return Node(b ? "true" : "false", Tag(.bool))
        case .number(let n): return Node(n.description, Tag(n.isInteger ? .int : .float))
        case .string(let s):
            let resolved = (try? Yams.compose(yaml: s))??.tag.rawValue
            let plainOK = !s.isEmpty && resolved == Tag.Name.str.rawValue && !s.contains(": ") && !s.contains("\n") && !s.hasPrefix(" ") && !s.hasSuffix(" ")
            return Node(s, Tag(.str), plainOK ? .plain : .doubleQuoted)
        case .array(let a): return Node(a.map(valueToYamlNode))
        case .set(let s): return Node(s.sorted().map(valueToYamlNode))
        case .object(let o):
            return Node(o.sorted(by: { $0.key < $1.key }).map { kv in
                let k: Node = { if case .string(let s) = kv.key { return valueToYamlNode(.string(s)) }; return Node(JSON.serialize(kv.key)) }()
                return (k, valueToYamlNode(kv.value))
            })
        }
    }

    static func yamlMarshal(_ v: Value) throws -> String {
        do { return try Yams.serialize(node: valueToYamlNode(v)) } catch { throw BuiltinError("yaml: \(error)") }
    }
}
