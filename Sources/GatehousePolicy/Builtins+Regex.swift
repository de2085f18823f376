import Synchronization

/// Compiled regular expressions shared by all queries (bounded).
let regexCache = Mutex<[String: RE2]>([:])

/// The RE2 (Go `regexp`) program for `pattern`, cached; errors carry Go's message.
func compiledRegex(_ pattern: String) throws -> RE2 {
    if let r = regexCache.withLock({ $0[pattern] }) { return r }
    let re: RE2
    do {
        re = try RE2(pattern)
    } catch {
        throw BuiltinError(error.description)
    }
    regexCache.withLock { c in
        if c.count > 1000 { c.removeAll() }
        c[pattern] = re
    }
    return re
}

extension Builtins {
    static let regexAndGlob: [Builtin] = [
        Builtin("regex.match", 2) { a, _ in
            let p = try argString(a, 0), s = try argString(a, 1)
            return .bool(try compiledRegex(p).matches(s))
        },
        Builtin("re_match", 2) { a, _ in
            let p = try argString(a, 0), s = try argString(a, 1)
            return .bool(try compiledRegex(p).matches(s))
        },
        Builtin("regex.is_valid", 1) { a, _ in
            guard case .string(let p) = a[0] else { return .false }
            return .bool((try? compiledRegex(p)) != nil)
        },
        Builtin("regex.split", 2) { a, _ in
            let re = try compiledRegex(try argString(a, 0)), s = try argString(a, 1)
            return .array(re.split(s, limit: -1).map { .string($0) })
        },
        Builtin("regex.find_n", 3) { a, _ in
            let re = try compiledRegex(try argString(a, 0)), s = try argString(a, 1), n = try argInt(a, 2)
            return .array(re.matches(in: s, limit: n).map { m in .string(m[0].map { String(s[$0]) } ?? "") })
        },
        Builtin("regex.find_all_string_submatch_n", 3) { a, _ in
            let re = try compiledRegex(try argString(a, 0)), s = try argString(a, 1), n = try argInt(a, 2)
            return .array(re.matches(in: s, limit: n).map { m in
                .array(m.map { r in .string(r.map { String(s[$0]) } ?? "") })
            })
        },
        Builtin("regex.replace", 3) { a, _ in
            let s = try argString(a, 0), re = try compiledRegex(try argString(a, 1)), rep = try argString(a, 2)
            return .string(re.replacingAll(in: s, template: rep))
        },
        Builtin("regex.template_match", 4) { a, _ in
            let template = try argString(a, 0), value = try argString(a, 1)
            let open = try argString(a, 2), close = try argString(a, 3)
            return .bool(try templateRegex(template, open, close).matches(value))
        },
        Builtin("regex.globs_match", 2) { a, _ in
            let g1 = try argString(a, 0), g2 = try argString(a, 1)
            return .bool(try GlobIntersection.intersects(g1, g2))
        },
        Builtin("glob.match", 3) { a, _ in
            let pattern = try argString(a, 0)
            var delims: [Unicode.Scalar]
            switch a[1] {
            case .null: delims = []
            case .array(let x):
                delims = try x.map { v in
                    guard case .string(let s) = v else {
                        throw BuiltinError("operand 2 must be array of strings but got array containing \(v.typeName)", type: true)
                    }
                    guard s.unicodeScalars.count == 1, let c = s.unicodeScalars.first else {
                        throw BuiltinError("operand 2 must be array of runes but got array containing string", type: true)
                    }
                    return c
                }
                if delims.isEmpty { delims = ["."] }
            default: throw typeError(2, "one of {array, null}", a[1])
            }
            let s = try argString(a, 2)
            return .bool(try compiledRegex(globToRegex(pattern, delims)).matches(s))
        },
        Builtin("glob.quote_meta", 1) { a, _ in
            var out = ""
            for c in try argString(a, 0) {
                if "*?\\[]{}".contains(c) { out.append("\\") }
                out.append(c)
            }
            return .string(out)
        },
    ]

    /// OPA's `regex.template_match` pattern (after gorilla/mux): the text between one-character
    /// delimiters is a regex (each checked on its own as `^…$`), the rest is literal.
    static func templateRegex(_ template: String, _ open: String, _ close: String) throws -> RE2 {
        guard open.unicodeScalars.count == 1, let o = open.unicodeScalars.first else {
            throw BuiltinError("start delimiter has to be exactly one character long but is \(open.utf8.count) long")
        }
        guard close.unicodeScalars.count == 1, let c = close.unicodeScalars.first else {
            throw BuiltinError("end delimiter has to be exactly one character long but is \(close.utf8.count) long")
        }
        let t = Array(template.unicodeScalars)
        var pairs: [(Int, Int)] = []
        var level = 0, begin = 0
        for (i, ch) in t.enumerated() {
            if ch == o {
                level += 1
                if level == 1 { begin = i }
            } else if ch == c {
                level -= 1
                if level == 0 { pairs.append((begin, i)) } else if level < 0 { level = -1; break }
            }
        }
        if level != 0 { throw BuiltinError("unbalanced braces in \(JSON.serialize(.string(template)))") }
        func text(_ r: Range<Int>) -> String { String(String.UnicodeScalarView(t[r])) }
        var pattern = "^"
        var end = 0
        for (b, e) in pairs {
            let inner = text(b + 1..<e)
            _ = try compiledRegex("^\(inner)$")
            pattern += RE2.quoteMeta(text(end..<b)) + "(" + inner + ")"
            end = e + 1
        }
        pattern += RE2.quoteMeta(text(end..<t.count)) + "$"
        return try compiledRegex(pattern)
    }
}

extension Builtins {
    /// Translates a glob (gobwas/glob syntax: `*`, `**`, `?`, `[…]`, `[!…]`, `{a,b}`, `\x`) to an
    /// anchored RE2 pattern. `*` and `?` do not cross the delimiters; with none they match anything.
    static func globToRegex(_ glob: String, _ delims: [Unicode.Scalar]) throws -> String {
        let anyOne = delims.isEmpty ? "(?s:.)" : "[^" + delims.map(hexEscape).joined() + "]"
        var out = "^"
        let chars = Array(glob.unicodeScalars)
        var i = 0
        var braceDepth = 0
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "*":
                if i + 1 < chars.count, chars[i + 1] == "*" {
                    out += "(?s:.)*"
                    i += 1
                } else {
                    out += anyOne + "*"
                }
            case "?": out += anyOne
            case "[": i = try globClass(chars, i, into: &out)
            case "{": out += "(?:"; braceDepth += 1
            case "}" where braceDepth > 0: out += ")"; braceDepth -= 1
            case "," where braceDepth > 0: out += "|"
            case "\\" where i + 1 < chars.count:
                i += 1
                out += RE2.quoteMeta(String(chars[i]))
            default: out += RE2.quoteMeta(String(c))
            }
            i += 1
        }
        out += String(repeating: ")", count: braceDepth)
        return out + "$"
    }

    /// `[…]` at `start` as an RE2 class; returns the index of the closing `]`.
    private static func globClass(_ chars: [Unicode.Scalar], _ start: Int, into out: inout String) throws -> Int {
        var j = start + 1
        var cls = "["
        if j < chars.count, chars[j] == "!" {
            cls += "^"
            j += 1
        }
        var items = 0
        while j < chars.count, chars[j] != "]" {
            if chars[j] == "\\", j + 1 < chars.count { j += 1 }
            if chars[j] == "-", items > 0, j + 1 < chars.count, chars[j + 1] != "]" {
                cls += "-"
            } else {
                cls += hexEscape(chars[j])
                items += 1
            }
            j += 1
        }
        guard j < chars.count else { throw BuiltinError("unexpected end of input") }
        guard items > 0 else { throw BuiltinError("could not parse range") }
        out += cls + "]"
        return j
    }

    private static func hexEscape(_ c: Unicode.Scalar) -> String {
        "\\x{" + String(c.value, radix: 16) + "}"
    }
}
