/// OPA's `regex.globs_match`: whether two patterns of the restricted syntax OPA accepts there
/// (github.com/yashtewari/glob-intersection: literals, `.`, `[…]` sets without negation, `\`
/// escapes, and `*` / `+` after a non-flag token) can match a common string.
enum GlobIntersection {
    private enum Quantifier { case one, star }

    private struct Token {
        var set: CharClass
        var quantifier: Quantifier
    }

    static func intersects(_ a: String, _ b: String) throws -> Bool {
        let ta = try tokens(a), tb = try tokens(b)
        if ta.isEmpty || tb.isEmpty { return ta.isEmpty && tb.isEmpty }
        return search(ta, tb)
    }

    private static func invalid(_ input: String, _ pos: Int, _ why: String) -> BuiltinError {
        BuiltinError("input:\(input), pos:\(pos), \(why): the input provided is invalid")
    }

    private static func tokens(_ input: String) throws -> [Token] {
        let c = Array(input.unicodeScalars)
        var out: [Token] = []
        var lastWasFlag = true
        var i = 0
        while i < c.count {
            switch c[i] {
            case "*", "+":
                if lastWasFlag { throw invalid(input, i + 1, "flag '\(c[i])' must be preceded by a non-flag") }
                let last = out.removeLast()
                if c[i] == "+" { out.append(Token(set: last.set, quantifier: .one)) }
                out.append(Token(set: last.set, quantifier: .star))
                lastWasFlag = true
                i += 1
                continue
            case "\\":
                guard i + 1 < c.count else { throw invalid(input, i, "input ends with a \\ (escape) character") }
                i += 1
                out.append(Token(set: CharClass([c[i].value...c[i].value]), quantifier: .one))
            case ".": out.append(Token(set: .any, quantifier: .one))
            case "]": throw invalid(input, i + 1, "set-close ']' with no preceding '['")
            case "[":
                let (set, end) = try parseSet(c, i, input)
                out.append(Token(set: set, quantifier: .one))
                i = end
            default: out.append(Token(set: CharClass([c[i].value...c[i].value]), quantifier: .one))
            }
            lastWasFlag = false
            i += 1
        }
        return out
    }

    /// A `[…]` set at `start`; returns it and the index of its `]`.
    private static func parseSet(_ c: [Unicode.Scalar], _ start: Int, _ input: String) throws -> (CharClass, Int) {
        var set = CharClass()
        var i = start + 1
        while i < c.count, c[i] != "]" {
            var lo = c[i].value
            if c[i] == "\\", i + 1 < c.count {
                i += 1
                lo = c[i].value
            }
            if i + 1 < c.count, c[i + 1] == "-" {
                guard i + 2 < c.count, c[i + 2] != "]" else {
                    throw invalid(input, i + 2, "range character '-' must be followed by a Unicode character")
                }
                let hi = c[i + 2].value
                if hi < lo {
                    throw invalid(input, i + 3, "range is out of order: '\(c[i + 2])' comes before '\(c[i])' in Unicode")
                }
                set.add(lo, hi)
                i += 3
                continue
            }
            set.add(lo, lo)
            i += 1
        }
        guard i < c.count else { throw invalid(input, i, "found [ without matching ]") }
        set.normalize()
        return (set, i)
    }

    private static func overlap(_ x: CharClass, _ y: CharClass) -> Bool {
        for r in x.ranges where y.ranges.contains(where: { $0.overlaps(r) }) { return true }
        return false
    }

    /// Reachability in the product of the two token automata.
    private static func search(_ a: [Token], _ b: [Token]) -> Bool {
        var seen = Set<Int>()
        var work = [(0, 0)]
        while let (i, j) = work.popLast() {
            if i == a.count && j == b.count { return true }
            guard seen.insert(i * (b.count + 1) + j).inserted else { continue }
            let ta = i < a.count ? a[i] : nil, tb = j < b.count ? b[j] : nil
            if let ta, let tb, ta.quantifier == .star, tb.quantifier == .star, !overlap(ta.set, tb.set) { continue }
            if let ta, ta.quantifier == .star { work.append((i + 1, j)) }
            if let tb, tb.quantifier == .star { work.append((i, j + 1)) }
            guard let ta, let tb, overlap(ta.set, tb.set) else { continue }
            work.append((ta.quantifier == .star ? i : i + 1, tb.quantifier == .star ? j : j + 1))
        }
        return false
    }
}
