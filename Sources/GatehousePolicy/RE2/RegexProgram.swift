/// A compiled NFA (Go's `syntax.Prog`). Instruction 0 is always `fail`.
struct RegexProgram: Sendable {
    enum Op: UInt8, Sendable {
        case fail, match, nop
        case alt        // try `out` first, then `arg`
        case capture    // record the position in slot `arg`
        case empty      // zero-width assertion `arg` (EmptyOp raw value)
        case rune1      // the scalar `arg`
        case runeClass  // a scalar in `classes[arg]`
        case any        // any scalar
        case anyNotNL   // any scalar but `\n`
    }

    struct Inst: Sendable {
        var op: Op
        var out: UInt32 = 0
        var arg: UInt32 = 0
    }

    var insts: [Inst] = [Inst(op: .fail)]
    var classes: [CharClass] = []
    var start = 0
    /// Capture slots: 2 × (groups + 1).
    var numSlots = 2

    /// True when every match must begin at the start of the text (`\A…`, or `^…` without (?m)).
    var anchoredStart: Bool {
        var pc = start
        var seen = 0
        while seen < insts.count {
            let i = insts[pc]
            switch i.op {
            case .nop, .capture: pc = Int(i.out)
            case .empty:
                if EmptyOp(rawValue: UInt8(i.arg)).contains(.beginText) { return true }
                pc = Int(i.out)
            default: return false
            }
            seen += 1
        }
        return false
    }

    @inline(__always) func matches(_ i: Inst, _ c: Int32) -> Bool {
        switch i.op {
        case .rune1: return c == Int32(i.arg)
        case .runeClass: return c >= 0 && classes[Int(i.arg)].contains(UInt32(c))
        case .any: return c >= 0
        case .anyNotNL: return c >= 0 && c != 0x0A
        default: return false
        }
    }
}
