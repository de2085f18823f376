/// Flags in effect while parsing (Go's `syntax.Flags` subset that the Perl syntax can change).
struct RegexFlags: OptionSet, Sendable {
    let rawValue: UInt8
    static let foldCase = RegexFlags(rawValue: 1)   // (?i)
    static let oneLine = RegexFlags(rawValue: 2)    // not (?m): ^ and $ match only at the text's edges
    static let dotNL = RegexFlags(rawValue: 4)      // (?s)
    static let nonGreedy = RegexFlags(rawValue: 8)  // (?U)
}

/// The scalar value of an ASCII character, for readable comparisons.
@inline(__always) func ascii(_ c: Unicode.Scalar) -> UInt32 { c.value }

/// Parser for Go's `regexp/syntax` Perl-flavoured syntax. It scans left to right with an explicit
/// stack of open groups (no recursion), so errors come out in the order Go reports them.
struct RegexParser {
    /// Go's `maxHeight`: deeper parse trees are refused.
    static let maxHeight = 1000
    /// Go's `maxSize`: 128 MB of 40-byte instructions (RE2.maxInstructions is Gatehouse's lower one).
    static let maxSize: Int64 = (128 << 20) / 40

    struct Item {
        var node: RegexNode
        var height: Int
        var size: Int64
    }

    struct Frame {
        var capture: Int?
        var savedFlags: RegexFlags
        var alternatives: [Item] = []
        var current: [Item] = []
    }

    struct Result {
        var node: RegexNode
        var numCap: Int
        var names: [String?]
    }

    let pat: [UInt32]
    let whole: String
    var pos = 0
    var flags: RegexFlags = [.oneLine]
    var frames: [Frame]
    var numCap = 0
    var names: [String?] = []
    var lastRepeat: Int?

    static func parse(_ pattern: String) throws(RE2Error) -> Result {
        var p = RegexParser(pattern)
        let node = try p.run()
        return Result(node: node, numCap: p.numCap, names: p.names)
    }

    private init(_ pattern: String) {
        pat = pattern.unicodeScalars.map(\.value)
        whole = pattern
        frames = [Frame(capture: nil, savedFlags: [.oneLine])]
    }

    var n: Int { pat.count }

    func text(_ from: Int, _ to: Int) -> String {
        var s = String.UnicodeScalarView()
        for v in pat[from..<min(to, n)] { if let u = Unicode.Scalar(v) { s.append(u) } }
        return String(s)
    }

    private mutating func run() throws(RE2Error) -> RegexNode {
        while pos < n {
            var repeatStart: Int?
            let c = pat[pos]
            switch c {
            case ascii("("): try openGroup()
            case ascii("|"):
                try finishAlternative()
                pos += 1
            case ascii(")"):
                try closeGroup()
                pos += 1
            case ascii("^"): try simple(.assertion(flags.contains(.oneLine) ? .beginText : .beginLine))
            case ascii("$"): try simple(.assertion(flags.contains(.oneLine) ? .endText : .endLine))
            case ascii("."): try simple(flags.contains(.dotNL) ? .anyChar : .anyCharNotNL)
            case ascii("["): try parseClass()
            case ascii("*"), ascii("+"), ascii("?"):
                repeatStart = pos
                try parseRepeatOperator(c)
            case ascii("{"):
                if let r = parseBraces() {
                    repeatStart = pos
                    try parseBraceRepeat(r)
                } else {
                    try literal(c)
                    pos += 1
                }
            case ascii("\\"): try parseBackslash()
            default:
                try literal(c)
                pos += 1
            }
            lastRepeat = repeatStart
        }
        if frames.count > 1 { throw RE2Error(.missingParen, whole) }
        return try finish(frames.removeLast()).node
    }

    private mutating func simple(_ node: RegexNode) throws(RE2Error) {
        try append(Item(node: node, height: 1, size: 1))
        pos += 1
    }

    /// Appends a literal scalar, as the class of its case-folding orbit under (?i).
    mutating func literal(_ c: UInt32) throws(RE2Error) {
        if flags.contains(.foldCase), c >= CaseFolding.minFold, c <= CaseFolding.maxFold {
            let orbit = CaseFolding.orbit(of: c)
            if !orbit.isEmpty {
                var cls = CharClass([c...c])
                for o in orbit { cls.add(o, o) }
                cls.normalize()
                try append(Item(node: .charClass(cls), height: 1, size: 1))
                return
            }
        }
        try append(Item(node: .literal(c), height: 1, size: 1))
    }

    mutating func append(_ item: Item) throws(RE2Error) {
        try checkLimits(item)
        frames[frames.count - 1].current.append(item)
    }

    func checkLimits(_ item: Item) throws(RE2Error) {
        if item.height > RegexParser.maxHeight { throw RE2Error(.nestingDepth, whole) }
        if item.size > RegexParser.maxSize { throw RE2Error(.large, whole) }
    }
}
