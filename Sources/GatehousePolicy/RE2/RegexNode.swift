/// Zero-width assertions (Go's `syntax.EmptyOp`).
struct EmptyOp: OptionSet, Sendable, Hashable {
    let rawValue: UInt8
    static let beginLine = EmptyOp(rawValue: 1)
    static let endLine = EmptyOp(rawValue: 2)
    static let beginText = EmptyOp(rawValue: 4)
    static let endText = EmptyOp(rawValue: 8)
    static let wordBoundary = EmptyOp(rawValue: 16)
    static let noWordBoundary = EmptyOp(rawValue: 32)

    /// Go's `IsWordChar`: ASCII letters, digits and underscore only.
    static func isWordChar(_ c: Int32) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
    }

    /// The assertions that hold between `before` and `after` (-1 = the text's edge).
    static func context(_ before: Int32, _ after: Int32) -> EmptyOp {
        var op: EmptyOp = .noWordBoundary
        var boundary = false
        if isWordChar(before) { boundary = true } else if before == 0x0A { op.insert(.beginLine) } else if before < 0 {
            op.formUnion([.beginText, .beginLine])
        }
        if isWordChar(after) { boundary.toggle() } else if after == 0x0A { op.insert(.endLine) } else if after < 0 {
            op.formUnion([.endText, .endLine])
        }
        if boundary { op.formSymmetricDifference([.wordBoundary, .noWordBoundary]) }
        return op
    }
}

/// A parsed regular expression (Go's `syntax.Regexp`, without its parse-time rewrites).
indirect enum RegexNode: Sendable {
    case empty
    case noMatch
    case literal(UInt32)
    case charClass(CharClass)
    case anyChar
    case anyCharNotNL
    case assertion(EmptyOp)
    case capture(Int, RegexNode)
    case concat([RegexNode])
    case alternate([RegexNode])
    case star(RegexNode, greedy: Bool)
    case plus(RegexNode, greedy: Bool)
    case quest(RegexNode, greedy: Bool)
    /// `x{min,max}`; max -1 means unbounded.
    case repeatRange(RegexNode, min: Int, max: Int, greedy: Bool)
}
