import Foundation

extension Builtins {
    static let encoding: [Builtin] = [
        Builtin("json.marshal", 1) { a, _ in .string(goJSON(a[0])) },
        Builtin("json.marshal_with_options", 2) { a, _ in try jsonMarshalWithOptions(a) },
        Builtin("json.unmarshal", 1) { a, _ in try jsonUnmarshal(try argString(a, 0)) },
        Builtin("json.is_valid", 1) { a, _ in
            guard case .string(let s) = a[0] else { return .false }
            return .bool((try? JSON.parse(replacingLoneSurrogates(s))) != nil)
        },
        Builtin("yaml.marshal", 1) { a, _ in .string(try yamlMarshal(a[0])) },
        Builtin("yaml.unmarshal", 1) { a, _ in try yamlParse(try argString(a, 0)) },
        Builtin("yaml.is_valid", 1) { a, _ in
            guard case .string(let s) = a[0] else { return .false }
            return .bool((try? yamlParse(s)) != nil)
        },
        Builtin("base64.encode", 1) { a, _ in .string(Data(try argString(a, 0).utf8).base64EncodedString()) },
        Builtin("base64.decode", 1) { a, _ in
            guard let d = goBase64Decode(try argString(a, 0), url: false) else { throw BuiltinError("illegal base64 data") }
            return .string(String(decoding: d, as: UTF8.self))
        },
        Builtin("base64.is_valid", 1) { a, _ in
            guard case .string(let s) = a[0] else { return .false }
            return .bool(goBase64Decode(s, url: false) != nil)
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
                // Go's url.ParseQuery refuses ';' (once a separator) anywhere in a pair.
                guard !pair.contains(";") else { throw BuiltinError("invalid semicolon separator in query") }
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

    /// OPA's base64url.decode: unpadded input is padded first (RFC 7515 appendix C).
    static func base64urlDecode(_ s: String) -> Data? {
        var t = s
        if !t.hasSuffix("=") {
            switch t.utf8.count % 4 {
            case 0: break
            case 2: t += "=="
            case 3: t += "="
            default: return nil
            }
        }
        return goBase64Decode(t, url: true).map { Data($0) }
    }

    /// Go's base64.StdEncoding/URLEncoding DecodeString: padding required, line breaks (\r, \n)
    /// ignored anywhere, unused trailing bits not checked.
    static func goBase64Decode(_ s: String, url: Bool) -> [UInt8]? {
        func sextet(_ c: UInt8) -> UInt32? {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt32(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt32(c - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "+") where !url, UInt8(ascii: "-") where url: return 62
            case UInt8(ascii: "/") where !url, UInt8(ascii: "_") where url: return 63
            default: return nil
            }
        }
        let input = s.utf8.filter { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }
        var out: [UInt8] = []
        var i = 0
        while i < input.count {
            var acc: UInt32 = 0, n = 0
            while n < 4, i < input.count, let v = sextet(input[i]) { acc = acc << 6 | v; n += 1; i += 1 }
            if n == 4 {
                out += [UInt8(acc >> 16), UInt8(acc >> 8 & 0xFF), UInt8(acc & 0xFF)]
                continue
            }
            // A short quantum must be completed by padding and end the input.
            guard n >= 2, i < input.count, input[i] == UInt8(ascii: "=") else { return nil }
            let pads = input[i...].prefix { $0 == UInt8(ascii: "=") }.count
            guard pads == 4 - n, i + pads == input.count else { return nil }
            acc <<= UInt32(6 * (4 - n))
            out.append(UInt8(acc >> 16))
            if n == 3 { out.append(UInt8(acc >> 8 & 0xFF)) }
            return out
        }
        return out
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

    // MARK: JSON

    /// json.marshal: Go's encoding/json also escapes U+2028 and U+2029 (as it does <, > and &).
    static func goJSON(_ v: Value) -> String {
        JSON.serialize(v).replacingOccurrences(of: "\u{2028}", with: "\\u2028").replacingOccurrences(of: "\u{2029}", with: "\\u2029")
    }

    /// OPA's json.marshal_with_options: keys pretty (boolean), indent and prefix (strings, either
    /// one asking for pretty output unless pretty is false); Go's json.MarshalIndent layout, the
    /// prefix also before the first line.
    static func jsonMarshalWithOptions(_ a: [Value]) throws -> Value {
        var indent = "\t", prefix = "", implicitPretty = false
        var pretty: Bool?
        for (k, v) in try argObject(a, 1) {
            guard case .string(let key) = k else { throw BuiltinError("operand 2 failed to stringify key \(k)") }
            switch (key, v) {
            case ("prefix", .string(let s)): prefix = s; implicitPretty = true
            case ("indent", .string(let s)): indent = s; implicitPretty = true
            case ("pretty", .bool(let b)): pretty = b
            case ("prefix", _), ("indent", _): throw BuiltinError("operand 2 key \(key) failed cast to string")
            case ("pretty", _): throw BuiltinError("operand 2 key pretty failed cast to boolean")
            default: throw BuiltinError("operand 2 object contained unknown key \(key)")
            }
        }
        let compact = goJSON(a[0])
        guard pretty ?? implicitPretty else { return .string(compact) }
        return .string(prefix + goJSONIndent(compact, prefix: prefix, indent: indent))
    }

    /// Go's json.Indent over compact JSON text: a line per element, empty containers kept as {} / [].
    static func goJSONIndent(_ compact: String, prefix: String, indent: String) -> String {
        var out = "", depth = 0, inString = false, escaped = false, pendingOpen = false
        func newline() { out += "\n" + prefix + String(repeating: indent, count: depth) }
        for c in compact.unicodeScalars {
            if inString {
                out.unicodeScalars.append(c)
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
                continue
            }
            if pendingOpen && c != "}" && c != "]" { pendingOpen = false; depth += 1; newline() }
            switch c {
            case "{", "[": pendingOpen = true; out.unicodeScalars.append(c)
            case "}", "]":
                if pendingOpen { pendingOpen = false } else { depth -= 1; newline() }
                out.unicodeScalars.append(c)
            case ",": out += ","; newline()
            case ":": out += ": "
            case "\"": inString = true; out += "\""
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func jsonUnmarshal(_ text: String) throws -> Value {
        let v: Value
        do { v = try JSON.parse(replacingLoneSurrogates(text)) } catch { throw BuiltinError(error.description) }
        if containsNonFinite(v) { throw BuiltinError("json: a number is beyond the range of a double (Gatehouse has no arbitrary-precision decimals)") }
        return v
    }

    static func containsNonFinite(_ v: Value) -> Bool {
        switch v {
        case .number(let n): return !n.doubleValue.isFinite && !n.isInteger
        case .array(let a): return a.contains(where: containsNonFinite)
        case .object(let o): return o.contains { containsNonFinite($0.key) || containsNonFinite($0.value) }
        default: return false
        }
    }

    /// Go's JSON decoder turns a \u escape of an unpaired UTF-16 surrogate into U+FFFD.
    static func replacingLoneSurrogates(_ text: String) -> String {
        guard text.contains("\\u") else { return text }
        let u = Array(text.utf8)
        func unit(at i: Int) -> UInt16? {
            guard i + 5 < u.count + 0, u[i] == UInt8(ascii: "\\"), u[i + 1] == UInt8(ascii: "u") else { return nil }
            var v: UInt16 = 0
            for k in 2..<6 { guard let h = hexVal(u[i + k]) else { return nil }; v = v << 4 | UInt16(h) }
            return v
        }
        var out: [UInt8] = [], i = 0, changed = false
        while i < u.count {
            guard u[i] == UInt8(ascii: "\\"), i + 1 < u.count else { out.append(u[i]); i += 1; continue }
            guard let cu = unit(at: i) else { out += u[i...(i + 1)]; i += 2; continue }
            if (0xD800..<0xDC00).contains(cu), let lo = unit(at: i + 6), (0xDC00..<0xE000).contains(lo) {
                out += u[i..<(i + 12)]; i += 12
            } else if (0xD800..<0xE000).contains(cu) {
                out += Array("\\ufffd".utf8); i += 6; changed = true
            } else {
                out += u[i..<(i + 6)]; i += 6
            }
        }
        return changed ? String(decoding: out, as: UTF8.self) : text
    }

    // MARK: YAML

    /// YAML as OPA reads it (YAML 1.1 through go-yaml v2): yaml.unmarshal, yaml.is_valid and data files.
    static func yamlParse(_ s: String) throws -> Value {
        do { return try GoYAML.unmarshal(s) } catch let e as GoYAML.Failure { throw BuiltinError(e.message) }
    }

    static func yamlMarshal(_ v: Value) throws -> String {
        do { return try GoYAML.marshal(v) } catch let e as GoYAML.Failure { throw BuiltinError(e.message) }
    }
}
