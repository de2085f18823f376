extension RegexParser {
    struct Braces {
        var min: Int
        var max: Int
        var end: Int
    }

    /// `*`, `+` or `?` at `pos`.
    mutating func parseRepeatOperator(_ c: UInt32) throws(RE2Error) {
        let before = pos
        pos += 1
        switch c {
        case ascii("*"): try applyRepeat(before, min: 0, max: -1)
        case ascii("+"): try applyRepeat(before, min: 1, max: -1)
        default: try applyRepeat(before, min: 0, max: 1)
        }
    }

    /// `{n}`, `{n,}` or `{n,m}` at `pos`; nil if it does not parse (then `{` is a literal).
    func parseBraces() -> Braces? {
        var i = pos + 1
        guard var min = parseInt(&i), i < n else { return nil }
        var max = min
        if pat[i] == ascii(",") {
            i += 1
            guard i < n else { return nil }
            if pat[i] == ascii("}") {
                max = -1
            } else {
                guard let m = parseInt(&i) else { return nil }
                max = m
                if m < 0 { min = -1 }
            }
        }
        guard i < n, pat[i] == ascii("}") else { return nil }
        return Braces(min: min, max: max, end: i + 1)
    }

    /// Decimal digits at `i` without a leading zero; -1 if too big.
    private func parseInt(_ i: inout Int) -> Int? {
        func digit(_ k: Int) -> Bool { k < n && pat[k] >= ascii("0") && pat[k] <= ascii("9") }
        guard digit(i) else { return nil }
        if pat[i] == ascii("0"), digit(i + 1) { return nil }
        var v = 0
        while digit(i) {
            if v >= 100_000_000 { v = -1 } else if v >= 0 { v = v * 10 + Int(pat[i] - ascii("0")) }
            i += 1
        }
        return v
    }

    mutating func parseBraceRepeat(_ r: Braces) throws(RE2Error) {
        let before = pos
        if r.min < 0 || r.min > 1000 || r.max > 1000 || (r.max >= 0 && r.min > r.max) {
            throw RE2Error(.invalidRepeatSize, text(before, r.end))
        }
        pos = r.end
        try applyRepeat(before, min: r.min, max: r.max, braces: true)
    }

    /// Applies a repetition (its text starts at `before`, `pos` is after it) to the last item.
    private mutating func applyRepeat(_ before: Int, min: Int, max: Int, braces: Bool = false) throws(RE2Error) {
        var greedy = !flags.contains(.nonGreedy)
        if pos < n, pat[pos] == ascii("?") {
            pos += 1
            greedy.toggle()
        }
        if let last = lastRepeat { throw RE2Error(.invalidRepeatOp, text(last, pos)) }
        let top = frames.count - 1
        guard let sub = frames[top].current.popLast() else {
            throw RE2Error(.missingRepeatArgument, text(before, pos))
        }
        let item: Item
        if braces {
            let size: Int64
            if max == -1 {
                size = min == 0 ? 2 + sub.size : 1 + Int64(min) * sub.size
            } else {
                size = Int64(max) * sub.size + Int64(max - min)
            }
            item = Item(node: .repeatRange(sub.node, min: min, max: max, greedy: greedy),
                        height: sub.height + 1, size: Swift.max(1, size))
        } else if max == 1 {
            item = Item(node: .quest(sub.node, greedy: greedy), height: sub.height + 1, size: 1 + sub.size)
        } else if min == 1 {
            item = Item(node: .plus(sub.node, greedy: greedy), height: sub.height + 1, size: 1 + sub.size)
        } else {
            item = Item(node: .star(sub.node, greedy: greedy), height: sub.height + 1, size: 2 + sub.size)
        }
        try checkLimits(item)
        if braces, min >= 2 || max >= 2, !RegexParser.repeatIsValid(item.node, 1000) {
            throw RE2Error(.invalidRepeatSize, text(before, pos))
        }
        frames[top].current.append(item)
    }

    /// Go's check that nested counted repetitions multiply to at most `n`.
    static func repeatIsValid(_ node: RegexNode, _ n: Int) -> Bool {
        var n = n
        switch node {
        case .repeatRange(let sub, let min, let max, _):
            var m = max
            if m == 0 { return true }
            if m < 0 { m = min }
            if m > n { return false }
            if m > 0 { n /= m }
            return repeatIsValid(sub, n)
        case .capture(_, let sub), .star(let sub, _), .plus(let sub, _), .quest(let sub, _):
            return repeatIsValid(sub, n)
        case .concat(let subs), .alternate(let subs):
            return subs.allSatisfy { repeatIsValid($0, n) }
        default:
            return true
        }
    }
}
