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
            return .array(s.components(separatedBy: d).map { .string($0) })
        },
        Builtin("replace", 3) { a, _ in
            let s = try argString(a, 0), old = try argString(a, 1), new = try argString(a, 2)
            if old.isEmpty {
                // Go inserts the replacement around every rune.
                var out = new
                for u in s.unicodeScalars { out.unicodeScalars.append(u); out += new }
                return .string(out)
            }
            return .string(s.replacingOccurrences(of: old, with: new))
        },
        Builtin("strings.replace_n", 2) { a, _ in
            let patterns = try argObject(a, 0)
            var s = try argString(a, 1)
            for (k, v) in patterns.sorted(by: { $0.key < $1.key }) {
                guard case .string(let ks) = k, case .string(let vs) = v else { throw typeError(1, "object[string: string]", a[0]) }
                if !ks.isEmpty { s = s.replacingOccurrences(of: ks, with: vs) }
            }
            return .string(s)
        },
        Builtin("trim", 2) { a, _ in .string(trimSet(try argString(a, 0), try argString(a, 1), left: true, right: true)) },
        Builtin("trim_left", 2) { a, _ in .string(trimSet(try argString(a, 0), try argString(a, 1), left: true, right: false)) },
        Builtin("trim_right", 2) { a, _ in .string(trimSet(try argString(a, 0), try argString(a, 1), left: false, right: true)) },
        Builtin("trim_prefix", 2) { a, _ in
            let s = try argString(a, 0), p = try argString(a, 1)
            return .string(s.hasPrefix(p) ? String(s.utf8.dropFirst(p.utf8.count))! : s)
        },
        Builtin("trim_suffix", 2) { a, _ in
            let s = try argString(a, 0), p = try argString(a, 1)
            return .string(s.hasSuffix(p) ? String(s.utf8.dropLast(p.utf8.count))! : s)
        },
        Builtin("trim_space", 1) { a, _ in .string(try argString(a, 0).trimmingCharacters(in: .whitespacesAndNewlines)) },
        Builtin("lower", 1) { a, _ in .string(try argString(a, 0).lowercased()) },
        Builtin("upper", 1) { a, _ in .string(try argString(a, 0).uppercased()) },
        Builtin("startswith", 2) { a, _ in .bool(try argString(a, 0).utf8.starts(with: try argString(a, 1).utf8)) },
        Builtin("endswith", 2) { a, _ in
            let s = try argString(a, 0), p = try argString(a, 1)
            return .bool(s.utf8.count >= p.utf8.count && s.utf8.suffix(p.utf8.count).elementsEqual(p.utf8))
        },
        Builtin("contains", 2) { a, _ in
            let s = try argString(a, 0), p = try argString(a, 1)
            return .bool(p.isEmpty || s.contains(p))
        },
        Builtin("strings.reverse", 1) { a, _ in .string(String(String.UnicodeScalarView(try argString(a, 0).unicodeScalars.reversed()))) },
        Builtin("strings.count", 2) { a, _ in
            let s = try argString(a, 0), sub = try argString(a, 1)
            if sub.isEmpty { return .int(s.unicodeScalars.count + 1) }
            return .int(s.components(separatedBy: sub).count - 1)
        },
        Builtin("indexof", 2) { a, _ in
            let s = Array(try argString(a, 0).unicodeScalars), sub = Array(try argString(a, 1).unicodeScalars)
            if sub.isEmpty { return .int(0) }
            if sub.count > s.count { return .int(-1) }
            for i in 0...(s.count - sub.count) where Array(s[i..<(i + sub.count)]) == sub { return .int(i) }
            return .int(-1)
        },
        Builtin("indexof_n", 2) { a, _ in
            let s = Array(try argString(a, 0).unicodeScalars), sub = Array(try argString(a, 1).unicodeScalars)
            var out: [Value] = []
            if sub.isEmpty || sub.count > s.count { return .array([]) }
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
            return .bool(search.contains { s in base.contains { s.hasPrefix($0) } })
        },
        Builtin("strings.any_suffix_match", 2) { a, _ in
            let search = try argStringsCollection(a, 0), base = try argStringsCollection(a, 1)
            return .bool(search.contains { s in base.contains { s.hasSuffix($0) } })
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
                case .number(let n): piece = n.description
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
                if case .bool(let b) = arg { piece = b ? "true" : "false" } else { piece = "%!t(\(goTypeName(arg))=\(arg.description))" }
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
        case .number(let n): return n.isInteger ? "int" : "float64"
        case .bool: return "bool"
        case .null: return "<nil>"
        default: return "ast." + v.typeName.capitalized
        }
    }
}
