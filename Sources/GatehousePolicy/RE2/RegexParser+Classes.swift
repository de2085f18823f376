extension RegexParser {
    /// ASCII POSIX classes for `[[:name:]]`.
    static let posixClasses: [String: [ClosedRange<UInt32>]] = [
        "alnum": [0x30...0x39, 0x41...0x5A, 0x61...0x7A],
        "alpha": [0x41...0x5A, 0x61...0x7A],
        "ascii": [0x00...0x7F],
        "blank": [0x09...0x09, 0x20...0x20],
        "cntrl": [0x00...0x1F, 0x7F...0x7F],
        "digit": [0x30...0x39],
        "graph": [0x21...0x7E],
        "lower": [0x61...0x7A],
        "print": [0x20...0x7E],
        "punct": [0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E],
        "space": [0x09...0x0D, 0x20...0x20],
        "upper": [0x41...0x5A],
        "word": [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A],
        "xdigit": [0x30...0x39, 0x41...0x46, 0x61...0x66],
    ]

    /// A bracketed class `[…]`; `pos` is at the `[`.
    mutating func parseClass() throws(RE2Error) {
        let start = pos
        var i = pos + 1
        var negate = false
        if i < n, pat[i] == ascii("^") {
            negate = true
            i += 1
        }
        var cls = CharClass()
        var first = true
        while i >= n || pat[i] != ascii("]") || first {
            first = false
            if i + 2 < n, pat[i] == ascii("["), pat[i + 1] == ascii(":"), let (g, next) = try namedClass(at: i) {
                cls.add(g)
                i = next
                continue
            }
            if i + 1 < n, pat[i] == ascii("\\"), pat[i + 1] == ascii("p") || pat[i + 1] == ascii("P") {
                pos = i
                cls.add(try parseUnicodeClass())
                i = pos
                continue
            }
            if let g = perlClass(at: i) {
                cls.add(g)
                i += 2
                continue
            }
            pos = i
            let lo = try classChar(classStart: start)
            var hi = lo
            if pos + 1 < n, pat[pos] == ascii("-"), pat[pos + 1] != ascii("]") {
                pos += 1
                hi = try classChar(classStart: start)
                if hi < lo { throw RE2Error(.invalidCharRange, text(i, pos)) }
            }
            i = pos
            var r = CharClass([lo...hi])
            if flags.contains(.foldCase) { r = r.caseFolded() }
            cls.add(r)
        }
        pos = i + 1
        cls.normalize()
        if negate { cls = cls.negated() }
        try append(Item(node: .charClass(cls), height: 1, size: 1))
    }

    private mutating func classChar(classStart: Int) throws(RE2Error) -> UInt32 {
        guard pos < n else { throw RE2Error(.missingBracket, text(classStart, n)) }
        if pat[pos] == ascii("\\") { return try parseEscape() }
        pos += 1
        return pat[pos - 1]
    }

    /// `[:alpha:]` or `[:^alpha:]` at `i`; nil if there is no closing `:]` (then `[` is literal).
    private func namedClass(at i: Int) throws(RE2Error) -> (CharClass, Int)? {
        var j = i + 2
        while j + 1 < n, !(pat[j] == ascii(":") && pat[j + 1] == ascii("]")) { j += 1 }
        guard j + 1 < n else { return nil }
        let full = text(i, j + 2)
        var name = text(i + 2, j)
        var negated = false
        if name.hasPrefix("^") {
            negated = true
            name.removeFirst()
        }
        guard let ranges = RegexParser.posixClasses[name] else { throw RE2Error(.invalidCharRange, full) }
        return (group(ranges, negated: negated), j + 2)
    }
}
