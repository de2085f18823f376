extension RegexParser {
    /// A backslash outside a class: an assertion, `\Q…\E`, a class (`\d`, `\pL`) or an escaped scalar.
    mutating func parseBackslash() throws(RE2Error) {
        if pos + 1 < n {
            let assertions: [UInt32: EmptyOp] = [
                ascii("A"): .beginText, ascii("z"): .endText, ascii("b"): .wordBoundary, ascii("B"): .noWordBoundary,
            ]
            let c = pat[pos + 1]
            if let op = assertions[c] {
                try append(Item(node: .assertion(op), height: 1, size: 1))
                pos += 2
                return
            }
            if c == ascii("C") { throw RE2Error(.invalidEscape, text(pos, pos + 2)) }
            if c == ascii("Q") {
                try parseQuoted()
                return
            }
            if c == ascii("p") || c == ascii("P") {
                try append(Item(node: .charClass(try parseUnicodeClass()), height: 1, size: 1))
                return
            }
            if let cls = perlClass(at: pos) {
                try append(Item(node: .charClass(cls), height: 1, size: 1))
                pos += 2
                return
            }
        }
        try literal(try parseEscape())
    }

    /// `\Q…\E`: everything up to `\E` (or the end) is literal.
    private mutating func parseQuoted() throws(RE2Error) {
        var i = pos + 2
        while i < n {
            if pat[i] == ascii("\\"), i + 1 < n, pat[i + 1] == ascii("E") {
                pos = i + 2
                return
            }
            try literal(pat[i])
            i += 1
        }
        pos = n
    }

    /// An escape denoting one scalar (`\n`, `\x41`, `\x{10FFFF}`, `\123`, `\.`); `pos` is at the backslash.
    mutating func parseEscape() throws(RE2Error) -> UInt32 {
        let start = pos
        pos += 1
        guard pos < n else { throw RE2Error(.trailingBackslash, "") }
        let c = pat[pos]
        pos += 1
        switch c {
        case ascii("1")...ascii("7"):
            if pos < n, isOctal(pat[pos]) { return octal(c) }
        case ascii("0"):
            return octal(c)
        case ascii("x"):
            if let v = hexEscape() { return v }
        case ascii("a"): return 7
        case ascii("f"): return 12
        case ascii("n"): return 10
        case ascii("r"): return 13
        case ascii("t"): return 9
        case ascii("v"): return 11
        default:
            if c < 0x80 && !isASCIIAlnum(c) { return c }
        }
        throw RE2Error(.invalidEscape, text(start, pos))
    }

    private func isOctal(_ c: UInt32) -> Bool { c >= ascii("0") && c <= ascii("7") }

    private mutating func octal(_ first: UInt32) -> UInt32 {
        var r = first - ascii("0")
        for _ in 1..<3 {
            guard pos < n, isOctal(pat[pos]) else { break }
            r = r * 8 + pat[pos] - ascii("0")
            pos += 1
        }
        return r
    }

    /// After `\x`: two hex digits or `{hex…}`; nil (with `pos` after what was read) if malformed.
    private mutating func hexEscape() -> UInt32? {
        guard pos < n else { return nil }
        let c = pat[pos]
        pos += 1
        if c == ascii("{") {
            var r: UInt32 = 0
            var digits = 0
            while true {
                guard pos < n else { return nil }
                let d = pat[pos]
                pos += 1
                if d == ascii("}") { break }
                guard let v = hexValue(d) else { return nil }
                r = r * 16 + v
                if r > CharClass.maxScalar { return nil }
                digits += 1
            }
            return digits == 0 ? nil : r
        }
        let x = hexValue(c)
        let y = pos < n ? hexValue(pat[pos]) : nil
        if pos < n { pos += 1 }
        guard let x, let y else { return nil }
        return x * 16 + y
    }

    private func hexValue(_ c: UInt32) -> UInt32? {
        switch c {
        case ascii("0")...ascii("9"): return c - ascii("0")
        case ascii("a")...ascii("f"): return c - ascii("a") + 10
        case ascii("A")...ascii("F"): return c - ascii("A") + 10
        default: return nil
        }
    }

    /// `\pL`, `\p{Greek}`, `\PN`, `\p{^L}`; `pos` is at the backslash.
    mutating func parseUnicodeClass() throws(RE2Error) -> CharClass {
        let start = pos
        var negate = pat[pos + 1] == ascii("P")
        let i = pos + 2
        var name: String
        let seqEnd: Int
        if i >= n {
            name = ""
            seqEnd = i
        } else if pat[i] != ascii("{") {
            name = text(i, i + 1)
            seqEnd = i + 1
        } else {
            guard let close = pat[start...].firstIndex(of: ascii("}")) else {
                throw RE2Error(.invalidCharRange, text(start, n))
            }
            name = text(i + 1, close)
            seqEnd = close + 1
        }
        if name.hasPrefix("^") {
            negate.toggle()
            name.removeFirst()
        }
        guard var cls = UnicodeTables.named(name) else { throw RE2Error(.invalidCharRange, text(start, seqEnd)) }
        if flags.contains(.foldCase) { cls = cls.caseFolded() }
        pos = seqEnd
        return negate ? cls.negated() : cls
    }

    /// `\d \D \s \S \w \W` at `i` (ASCII, as in Go), folded under (?i) before any negation.
    func perlClass(at i: Int) -> CharClass? {
        guard i + 1 < n, pat[i] == ascii("\\") else { return nil }
        let c = pat[i + 1]
        let base: [ClosedRange<UInt32>]
        switch c | 0x20 {
        case ascii("d"): base = RegexParser.digitRanges
        case ascii("s"): base = [9...10, 12...13, 32...32]
        case ascii("w"): base = RegexParser.wordRanges
        default: return nil
        }
        return group(base, negated: c < 0x60)
    }

    static let digitRanges: [ClosedRange<UInt32>] = [0x30...0x39]
    static let wordRanges: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]

    func group(_ ranges: [ClosedRange<UInt32>], negated: Bool) -> CharClass {
        var cls = CharClass(ranges)
        if flags.contains(.foldCase) { cls = cls.caseFolded() }
        return negated ? cls.negated() : cls
    }
}
