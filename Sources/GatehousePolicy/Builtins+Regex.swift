import Foundation
import Synchronization

final class RegexBox: @unchecked Sendable {
    let re: NSRegularExpression
    init(_ re: NSRegularExpression) { self.re = re }
}

/// Compiled regular expressions shared by all queries (bounded).
let regexCache = Mutex<[String: RegexBox]>([:])

func compiledRegex(_ pattern: String) throws -> NSRegularExpression {
    if let r = regexCache.withLock({ $0[pattern] }) { return r.re }
    let re: NSRegularExpression
    do {
        re = try NSRegularExpression(pattern: pattern, options: [])
    } catch {
        throw BuiltinError("error parsing regexp: invalid pattern `\(pattern)`")
    }
    regexCache.withLock { c in
        if c.count > 1000 { c.removeAll() }
        c[pattern] = RegexBox(re)
    }
    return re
}

extension NSRegularExpression {
    func matches(_ s: String) -> Bool {
        firstMatch(in: s, options: [], range: NSRange(s.startIndex..., in: s)) != nil
    }
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
            let ns = s as NSString
            var out: [Value] = []
            var last = 0
            for m in re.matches(in: s, options: [], range: NSRange(location: 0, length: ns.length)) {
                out.append(.string(ns.substring(with: NSRange(location: last, length: m.range.location - last))))
                last = m.range.location + m.range.length
            }
            out.append(.string(ns.substring(from: last)))
            return .array(out)
        },
        Builtin("regex.find_n", 3) { a, _ in
            let re = try compiledRegex(try argString(a, 0)), s = try argString(a, 1), n = try argInt(a, 2)
            let ns = s as NSString
            var out: [Value] = []
            for m in re.matches(in: s, options: [], range: NSRange(location: 0, length: ns.length)) {
                if n >= 0 && out.count >= n { break }
                out.append(.string(ns.substring(with: m.range)))
            }
            return .array(out)
        },
        Builtin("regex.find_all_string_submatch_n", 3) { a, _ in
            let re = try compiledRegex(try argString(a, 0)), s = try argString(a, 1), n = try argInt(a, 2)
            let ns = s as NSString
            var out: [Value] = []
            for m in re.matches(in: s, options: [], range: NSRange(location: 0, length: ns.length)) {
                if n >= 0 && out.count >= n { break }
                var groups: [Value] = []
                for g in 0..<m.numberOfRanges {
                    let r = m.range(at: g)
                    groups.append(.string(r.location == NSNotFound ? "" : ns.substring(with: r)))
                }
                out.append(.array(groups))
            }
            return .array(out)
        },
        Builtin("regex.replace", 3) { a, _ in
            let s = try argString(a, 0), re = try compiledRegex(try argString(a, 1)), rep = try argString(a, 2)
            // Go uses $1 / ${1}; NSRegularExpression uses $1.
            let template = rep.replacingOccurrences(of: "${", with: "$").replacingOccurrences(of: "}", with: "")
            return .string(re.stringByReplacingMatches(in: s, options: [], range: NSRange(s.startIndex..., in: s), withTemplate: template))
        },
        Builtin("glob.match", 3) { a, _ in
            let pattern = try argString(a, 0)
            var delims: [String]
            switch a[1] {
            case .null: delims = ["."]
            case .array(let x):
                delims = try x.map { v in guard case .string(let s) = v else { throw typeError(2, "array of strings", a[1]) }; return s }
                if delims.isEmpty { delims = ["."] }
            default: throw typeError(2, "array", a[1])
            }
            let s = try argString(a, 2)
            let re = try compiledRegex(globToRegex(pattern, delims))
            return .bool(re.matches(s))
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

    /// Translates a glob (gobwas/glob syntax: `*`, `**`, `?`, `[...]`, `{a,b}`) to an anchored regex.
    static func globToRegex(_ glob: String, _ delims: [String]) throws -> String {
        let sep = delims.map { NSRegularExpression.escapedPattern(for: $0) }.joined()
        let notSep = sep.isEmpty ? "." : "[^\(sep)]"
        var out = "^"
        let chars = Array(glob)
        var i = 0
        var braceDepth = 0
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "*":
                if i + 1 < chars.count, chars[i + 1] == "*" {
                    out += ".*"
                    i += 1
                } else {
                    out += notSep + "*"
                }
            case "?": out += notSep
            case "[":
                var j = i + 1
                var cls = "["
                if j < chars.count, chars[j] == "!" { cls += "^"; j += 1 }
                while j < chars.count, chars[j] != "]" {
                    if chars[j] == "\\", j + 1 < chars.count { cls += "\\" + String(chars[j + 1]); j += 2; continue }
                    cls.append(chars[j])
                    j += 1
                }
                guard j < chars.count else { throw BuiltinError("unexpected end of input") }
                out += cls + "]"
                i = j
            case "{": out += "(?:"; braceDepth += 1
            case "}" where braceDepth > 0: out += ")"; braceDepth -= 1
            case "," where braceDepth > 0: out += "|"
            case "\\":
                if i + 1 < chars.count {
                    out += NSRegularExpression.escapedPattern(for: String(chars[i + 1]))
                    i += 1
                }
            default:
                out += NSRegularExpression.escapedPattern(for: String(c))
            }
            i += 1
        }
        if braceDepth != 0 { throw BuiltinError("unexpected end of input") }
        return out + "$"
    }
}
