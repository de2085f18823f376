import Foundation

extension Builtins {
    static let strings: [Builtin] = [
        Builtin("concat", 2) { a, _ in
            let d = try argString(a, 0)
            var parts: [String] = []
            switch a[1] {
            case .array(let x):
                for e in x { guard case .string(let s) = e else { throw typeError(2, "any of {array, set} of strings", a[1]) }; parts.append(s) }
            case .set(let x):
                for e in x.sorted() { guard case .string(let s) = e else { throw typeError(2, "any of {array, set} of strings", a[1]) }; parts.append(s) }
            default: throw typeError(2, "any of {array, set}", a[1])
            }
            return .string(parts.joined(separator: d))
        },
        Builtin("split", 2) { a, _ in
            let s = try argString(a, 0), d = try argString(a, 1)
            if d.isEmpty { return .array(s.unicodeScalars.map { .string(String($0)) }) }
            return .array(goSplit(s, d).map { .string($0) })
        },
        Builtin("replace", 3) { a, _ in
            let s = try argString(a, 0), old = try argString(a, 1), new = try argString(a, 2)
            if old.isEmpty {
                // Go inserts the replacement around every rune.
                var out = new
                for u in s.unicodeScalars { out.unicodeScalars.append(u); out += new }
                return .string(out)
            }
            return .string(goSplit(s, old).joined(separator: new))
        },
        Builtin("strings.replace_n", 2) { a, _ in
            let patterns = try argObject(a, 0)
            let s = try argString(a, 1)
            var pairs: [([UInt8], [UInt8])] = []
            for (k, v) in patterns.sorted(by: { $0.key < $1.key }) {
                guard case .string(let ks) = k, case .string(let vs) = v else { throw typeError(1, "object[string: string]", a[0]) }
                pairs.append((Array(ks.utf8), Array(vs.utf8)))
            }
            return .string(goReplacer(s, pairs))
        },
        Builtin("trim", 2) { a, _ in .string(trimSet(try argString(a, 0), try argString(a, 1), left: true, right: true)) },
        Builtin("trim_left", 2) { a, _ in .string(trimSet(try argString(a, 0), try argString(a, 1), left: true, right: false)) },
        Builtin("trim_right", 2) { a, _ in .string(trimSet(try argString(a, 0), try argString(a, 1), left: false, right: true)) },
        Builtin("trim_prefix", 2) { a, _ in
            let s = try argString(a, 0), p = try argString(a, 1)
            return .string(s.utf8.starts(with: p.utf8) ? String(decoding: s.utf8.dropFirst(p.utf8.count), as: UTF8.self) : s)
        },
        Builtin("trim_suffix", 2) { a, _ in
            let s = try argString(a, 0), p = try argString(a, 1)
            return .string(s.utf8.reversed().starts(with: p.utf8.reversed()) ? String(decoding: s.utf8.dropLast(p.utf8.count), as: UTF8.self) : s)
        },
        Builtin("trim_space", 1) { a, _ in
            var u = Array(try argString(a, 0).unicodeScalars)
            while let f = u.first, isGoSpace(f) { u.removeFirst() }
            while let l = u.last, isGoSpace(l) { u.removeLast() }
            return .string(String(String.UnicodeScalarView(u)))
        },
        Builtin("lower", 1) { a, _ in .string(goCaseMap(try argString(a, 0), upper: false)) },
        Builtin("upper", 1) { a, _ in .string(goCaseMap(try argString(a, 0), upper: true)) },
        Builtin("startswith", 2) { a, _ in .bool(try argString(a, 0).utf8.starts(with: try argString(a, 1).utf8)) },
        Builtin("endswith", 2) { a, _ in
            let s = try argString(a, 0), p = try argString(a, 1)
            return .bool(s.utf8.count >= p.utf8.count && s.utf8.suffix(p.utf8.count).elementsEqual(p.utf8))
        },
        Builtin("contains", 2) { a, _ in
            let s = try argString(a, 0), p = try argString(a, 1)
            return .bool(p.isEmpty || goIndex(Array(s.utf8), Array(p.utf8), from: 0) != nil)
        },
        Builtin("strings.reverse", 1) { a, _ in .string(String(String.UnicodeScalarView(try argString(a, 0).unicodeScalars.reversed()))) },
        Builtin("strings.count", 2) { a, _ in
            let s = try argString(a, 0), sub = try argString(a, 1)
            if sub.isEmpty { return .int(s.unicodeScalars.count + 1) }
            return .int(goSplit(s, sub).count - 1)
        },
        Builtin("indexof", 2) { a, _ in
            let s = Array(try argString(a, 0).unicodeScalars), sub = Array(try argString(a, 1).unicodeScalars)
            if sub.isEmpty { throw BuiltinError("empty search character") }
            if sub.count > s.count { return .int(-1) }
            for i in 0...(s.count - sub.count) where Array(s[i..<(i + sub.count)]) == sub { return .int(i) }
            return .int(-1)
        },
        Builtin("indexof_n", 2) { a, _ in
            let s = Array(try argString(a, 0).unicodeScalars), sub = Array(try argString(a, 1).unicodeScalars)
            var out: [Value] = []
            if sub.isEmpty { throw BuiltinError("empty search character") }
            if sub.count > s.count { return .array([]) }
            for i in 0...(s.count - sub.count) where Array(s[i..<(i + sub.count)]) == sub { out.append(.int(i)) }
            return .array(out)
        },
        Builtin("substring", 3) { a, _ in
            let s = Array(try argString(a, 0).unicodeScalars)
            let start = try argInt(a, 1), length = try argInt(a, 2)
            if start < 0 { throw BuiltinError("negative offset") }
            if start >= s.count { return .string("") }
            let end = length < 0 || length > s.count ? s.count : min(s.count, start + length)
            var out = String.UnicodeScalarView()
            out.append(contentsOf: s[start..<end])
            return .string(String(out))
        },
        Builtin("format_int", 2) { a, _ in
            let n = try argNumber(a, 0)
            let base = try argInt(a, 1)
            guard [2, 8, 10, 16].contains(base) else { throw BuiltinError("operand 2 must be one of {2, 8, 10, 16}") }
            let f: Number
            switch n {
            case .float(let d): f = Number(d.rounded(.towardZero))
            default: f = n
            }
            guard let b = f.bigValue else { throw BuiltinError("invalid number") }
            return .string(String(b, radix: base))
        },
        Builtin("sprintf", 2) { a, _ in .string(try sprintf(try argString(a, 0), try argArray(a, 1))) },
        Builtin("strings.any_prefix_match", 2) { a, _ in
            let search = try argStringsCollection(a, 0), base = try argStringsCollection(a, 1)
            return .bool(search.contains { s in base.contains { s.utf8.starts(with: $0.utf8) } })
        },
        Builtin("strings.any_suffix_match", 2) { a, _ in
            let search = try argStringsCollection(a, 0), base = try argStringsCollection(a, 1)
            return .bool(search.contains { s in base.contains { s.utf8.reversed().starts(with: $0.utf8.reversed()) } })
        },
    ]

    static func trimSet(_ s: String, _ cutset: String, left: Bool, right: Bool) -> String {
        let cut = Set(cutset.unicodeScalars)
        var scalars = Array(s.unicodeScalars)
        if left { while let f = scalars.first, cut.contains(f) { scalars.removeFirst() } }
        if right { while let l = scalars.last, cut.contains(l) { scalars.removeLast() } }
        var v = String.UnicodeScalarView()
        v.append(contentsOf: scalars)
        return String(v)
    }

    /// Go-style formatting for the common verbs: %v %s %d %f %e %g %x %X %o %b %q %t %T %%.
    static func sprintf(_ format: String, _ args: [Value]) throws -> String {
        var out = ""
        var chars = Array(format)
        var i = 0
        var argi = 0
        chars.append("\0")
        while i < chars.count - 1 {
            let c = chars[i]
            if c != "%" {
                out.append(c)
                i += 1
                continue
            }
            i += 1
            if chars[i] == "%" { out.append("%"); i += 1; continue }
            var flags = ""
            while "+-# 0".contains(chars[i]) && chars[i] != "\0" { flags.append(chars[i]); i += 1 }
            var width = ""
            while chars[i].isNumber { width.append(chars[i]); i += 1 }
            var precision: String?
            if chars[i] == "." {
                i += 1
                var p = ""
                while chars[i].isNumber { p.append(chars[i]); i += 1 }
                precision = p.isEmpty ? "0" : p
            }
            let verb = chars[i]
            i += 1
            guard argi < args.count else {
                out += "%!\(verb)(MISSING)"
                continue
            }
            let arg = args[argi]
            argi += 1
            var piece: String
            switch verb {
            case "v", "s":
                switch arg {
                case .string(let s): piece = s
                case .number(let n): piece = verb == "s" ? "%!s(\(goTypeName(arg))=\(n.description))" : n.description
                default: piece = arg.description
                }
                if let p = precision, verb == "s", let pn = Int(p) { piece = String(piece.prefix(pn)) }
            case "d":
                if case .number(let n) = arg, n.isInteger, let b = n.bigValue {
                    piece = b.description
                    if flags.contains("+"), b >= 0 { piece = "+" + piece }
                } else {
                    piece = "%!d(\(goTypeName(arg))=\(arg.description))"
                }
            case "f", "F", "e", "E", "g", "G":
                if case .number(let n) = arg {
                    let d = n.doubleValue
                    if verb == "g" || verb == "G", precision == nil {
                        piece = Number.format(d)
                    } else {
                        let fmt = "%" + flags + (precision.map { "." + $0 } ?? "") + String(verb)
                        piece = String(format: fmt, d)
                    }
                } else {
                    piece = "%!\(verb)(\(goTypeName(arg))=\(arg.description))"
                }
                if case .number(let n) = arg, case .float = n {} else if case .number(let n) = arg, let b = n.bigValue {
                    // Go: an integer under a float verb is a bad verb, printed with the precision as minimum digits.
                    let digits = String(b.magnitude)
                    let p = Int(precision ?? "0") ?? 0
                    piece = "%!\(verb)(\(goTypeName(arg))=\(b.sign == .minus ? "-" : "")\(String(repeating: "0", count: max(0, p - digits.count)) + digits))"
                }
            case "c":
                if case .number(let n) = arg, let i = n.intValue, let u = Unicode.Scalar(UInt32(clamping: max(0, i))) { piece = String(Character(u)) } else { piece = "%!c(\(goTypeName(arg))=\(arg.description))" }
            case "U":
                if case .number(let n) = arg, let i = n.intValue { piece = "U+" + String(format: "%04X", i) } else { piece = "%!U(\(goTypeName(arg))=\(arg.description))" }
            case "x", "X", "o", "b":
                let radix = verb == "o" ? 8 : (verb == "b" ? 2 : 16)
                if case .number(let n) = arg, let b = n.bigValue {
                    piece = String(b, radix: radix, uppercase: verb == "X")
                } else if case .string(let s) = arg, radix == 16 {
                    piece = s.utf8.map { String(format: verb == "X" ? "%02X" : "%02x", $0) }.joined()
                } else {
                    piece = "%!\(verb)(\(goTypeName(arg))=\(arg.description))"
                }
            case "q":
                if case .string(let s) = arg { var o = ""; JSON.writeString(s, into: &o); piece = o } else { piece = arg.description }
            case "t":
                // OPA passes booleans to Go's Sprintf as strings, so %t never applies.
                piece = "%!t(\(goTypeName(arg))=\(arg.stringValue ?? arg.description))"
            case "T":
                piece = goTypeName(arg)
            default:
                piece = "%!\(verb)(\(arg.description))"
            }
            if let w = Int(width), w < 10_000, piece.count < w {
                let pad = String(repeating: flags.contains("0") && !flags.contains("-") ? "0" : " ", count: w - piece.count)
                piece = flags.contains("-") ? piece + pad : pad + piece
            }
            out += piece
        }
        if argi < args.count {
            out += "%!(EXTRA " + args[argi...].map { "\(goTypeName($0))=\($0.description)" }.joined(separator: ", ") + ")"
        }
        return out
    }

    static func goTypeName(_ v: Value) -> String {
        switch v {
        case .string: return "string"
        case .number(let n):
            if case .float = n { return "float64" }
            return n.intValue != nil ? "int64" : "*big.Int"
        // OPA hands every other value to Go's Sprintf as its Rego text, a string.
        default: return "string"
        }
    }

    /// Go's strings.Split over UTF-8 bytes (no grapheme matching).
    static func goSplit(_ s: String, _ sep: String) -> [String] {
        let b = Array(s.utf8), p = Array(sep.utf8)
        var out: [String] = []
        var start = 0
        while let i = goIndex(b, p, from: start) {
            out.append(String(decoding: b[start..<i], as: UTF8.self))
            start = i + p.count
        }
        out.append(String(decoding: b[start...], as: UTF8.self))
        return out
    }

    static func goIndex(_ b: [UInt8], _ p: [UInt8], from: Int) -> Int? {
        guard !p.isEmpty, b.count >= p.count, from <= b.count - p.count else { return nil }
        var i = from
        while i <= b.count - p.count {
            if b[i] == p[0] && b[i..<(i + p.count)].elementsEqual(p) { return i }
            i += 1
        }
        return nil
    }

    /// Go's strings.NewReplacer: one pass; at each position the first pair (in order) that matches wins;
    /// an empty old string matches before every rune and at the end.
    static func goReplacer(_ s: String, _ pairs: [([UInt8], [UInt8])]) -> String {
        let b = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        while true {
            var consumed = false
            for (old, new) in pairs {
                if old.isEmpty { out += new; break }
                if i + old.count <= b.count, b[i..<(i + old.count)].elementsEqual(old) {
                    out += new
                    i += old.count
                    consumed = true
                    break
                }
            }
            if consumed { continue }
            guard i < b.count else { break }
            var n = 1
            while i + n < b.count, b[i + n] & 0xC0 == 0x80 { n += 1 }
            out += b[i..<(i + n)]
            i += n
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Go's unicode.IsSpace.
    static func isGoSpace(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// Go's strings.ToUpper/ToLower: per scalar, simple mappings only (a multi-scalar mapping leaves it).
    static func goCaseMap(_ s: String, upper: Bool) -> String {
        if s.utf8.allSatisfy({ $0 < 0x80 }) { return upper ? s.uppercased() : s.lowercased() }
        var v = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            if !upper, u.value == 0x130 { v.append("i"); continue }
            let m = upper ? u.properties.uppercaseMapping : u.properties.lowercaseMapping
            let ms = m.unicodeScalars
            if ms.count == 1, let f = ms.first { v.append(f) } else { v.append(u) }
        }
        return String(v)
    }
}
