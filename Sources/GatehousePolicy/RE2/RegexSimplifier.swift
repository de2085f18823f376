/// Go's `Regexp.Simplify`: counted repetitions become concatenations of copies, and redundant
/// nesting of the same operator collapses (`(?:a*)*` is `a*`). The result has no `.repeatRange`.
enum RegexSimplifier {
    private enum Kind { case star, plus, quest }

    static func simplify(_ node: RegexNode) -> RegexNode {
        switch node {
        case .capture(let n, let sub): return .capture(n, simplify(sub))
        case .concat(let subs): return .concat(subs.map(simplify))
        case .alternate(let subs): return .alternate(subs.map(simplify))
        case .star(let sub, let greedy): return simplify1(.star, greedy, simplify(sub))
        case .plus(let sub, let greedy): return simplify1(.plus, greedy, simplify(sub))
        case .quest(let sub, let greedy): return simplify1(.quest, greedy, simplify(sub))
        case .repeatRange(let sub, let min, let max, let greedy):
            return expand(simplify(sub), min: min, max: max, greedy: greedy)
        default: return node
        }
    }

    private static func simplify1(_ kind: Kind, _ greedy: Bool, _ sub: RegexNode) -> RegexNode {
        switch (kind, sub) {
        case (_, .empty): return sub
        case (.star, .star(_, let g)) where g == greedy: return sub
        case (.plus, .plus(_, let g)) where g == greedy: return sub
        case (.quest, .quest(_, let g)) where g == greedy: return sub
        case (.star, _): return .star(sub, greedy: greedy)
        case (.plus, _): return .plus(sub, greedy: greedy)
        case (.quest, _): return .quest(sub, greedy: greedy)
        }
    }

    /// `x{min,max}` (sub already simplified). `x{n,}` becomes `xx…x+` here; a bounded count stays a
    /// `.repeatRange`, which the compiler unrolls iteratively into `xx(x(x(x)?)?)?` (no deep tree).
    private static func expand(_ sub: RegexNode, min: Int, max: Int, greedy: Bool) -> RegexNode {
        if min == 0 && max == 0 { return .empty }
        if max == -1 {
            if min == 0 { return simplify1(.star, greedy, sub) }
            if min == 1 { return simplify1(.plus, greedy, sub) }
            return .concat(Array(repeating: sub, count: min - 1) + [simplify1(.plus, greedy, sub)])
        }
        if min == 1 && max == 1 { return sub }
        if max < min { return .noMatch }
        return .repeatRange(sub, min: min, max: max, greedy: greedy)
    }

    /// The innermost optional copy of a bounded repetition, `simplify1(.quest, sub)` in Go.
    static func innermostQuest(_ sub: RegexNode, greedy: Bool) -> RegexNode {
        simplify1(.quest, greedy, sub)
    }
}
