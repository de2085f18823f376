/// Compiles a parse tree to a `RegexProgram` the way Go's `syntax.Compile` does (after Go's
/// `Simplify`), so thread priorities, and with them leftmost-first submatches, are Go's.
struct RegexCompiler {
    /// An unfinished piece of program: its entry and a list of dangling exits. The list is
    /// threaded through the exits' own `out`/`arg` fields (`inst << 1 | isArg`; 0 = empty).
    struct Frag {
        var start: UInt32 = 0
        var head: UInt32 = 0
        var tail: UInt32 = 0
        var nullable = false
    }

    private var prog = RegexProgram()

    static func compile(_ node: RegexNode, numCap: Int) -> RegexProgram {
        var c = RegexCompiler()
        c.prog.numSlots = 2 * (numCap + 1)
        let f = c.compile(RegexSimplifier.simplify(node))
        let m = c.inst(.match)
        c.patch(f, to: m.start)
        c.prog.start = Int(f.start)
        return c.prog
    }

    private mutating func compile(_ node: RegexNode) -> Frag {
        switch node {
        case .empty: return exitFrag(.nop, arg: 0)
        case .noMatch: return Frag()
        case .literal(let c): return rune(.rune1, c)
        case .charClass(let cls): return charClass(cls)
        case .anyChar: return rune(.any, 0)
        case .anyCharNotNL: return rune(.anyNotNL, 0)
        case .assertion(let op): return exitFrag(.empty, arg: UInt32(op.rawValue))
        case .capture(let n, let sub):
            let bra = exitFrag(.capture, arg: UInt32(2 * n))
            let body = compile(sub)
            let ket = exitFrag(.capture, arg: UInt32(2 * n + 1))
            return cat(cat(bra, body), ket)
        case .concat(let subs):
            var f = compile(subs[0])
            for s in subs.dropFirst() { f = cat(f, compile(s)) }
            return f
        case .alternate(let subs):
            var f = Frag()
            for s in subs { f = alt(f, compile(s)) }
            return f
        case .star(let sub, let greedy): return star(compile(sub), greedy: greedy)
        case .plus(let sub, let greedy): return plus(compile(sub), greedy: greedy)
        case .quest(let sub, let greedy): return quest(compile(sub), greedy: greedy)
        case .repeatRange(let sub, let min, let max, let greedy): return counted(sub, min: min, max: max, greedy: greedy)
        }
    }

    /// `x{min,max}` with 0 <= min <= max, max >= 2: min copies, then `(x(x(x)?)?)?` built inside out.
    private mutating func counted(_ sub: RegexNode, min: Int, max: Int, greedy: Bool) -> Frag {
        var prefix: Frag?
        for _ in 0..<min { prefix = prefix.map { cat($0, compile(sub)) } ?? compile(sub) }
        guard max > min else { return prefix ?? exitFrag(.nop, arg: 0) }
        var suffix = compile(RegexSimplifier.innermostQuest(sub, greedy: greedy))
        for _ in (min + 1)..<max { suffix = quest(cat(compile(sub), suffix), greedy: greedy) }
        return prefix.map { cat($0, suffix) } ?? suffix
    }

    private mutating func charClass(_ cls: CharClass) -> Frag {
        if let s = cls.singleScalar { return rune(.rune1, s) }
        if cls.ranges == CharClass.any.ranges { return rune(.any, 0) }
        prog.classes.append(cls)
        return rune(.runeClass, UInt32(prog.classes.count - 1))
    }

    private mutating func inst(_ op: RegexProgram.Op, arg: UInt32 = 0) -> Frag {
        prog.insts.append(RegexProgram.Inst(op: op, arg: arg))
        return Frag(start: UInt32(prog.insts.count - 1), nullable: true)
    }

    /// An instruction whose `out` is its only exit.
    private mutating func exitFrag(_ op: RegexProgram.Op, arg: UInt32) -> Frag {
        var f = inst(op, arg: arg)
        f.head = f.start << 1
        f.tail = f.head
        return f
    }

    private mutating func rune(_ op: RegexProgram.Op, _ arg: UInt32) -> Frag {
        var f = exitFrag(op, arg: arg)
        f.nullable = false
        return f
    }

    private mutating func patch(_ f: Frag, to target: UInt32) {
        var ref = f.head
        while ref != 0 {
            let i = Int(ref >> 1)
            if ref & 1 == 0 {
                ref = prog.insts[i].out
                prog.insts[i].out = target
            } else {
                ref = prog.insts[i].arg
                prog.insts[i].arg = target
            }
        }
    }

    /// Joins two exit lists (`a`'s last exit points at `b`'s first until patched).
    private mutating func join(_ a: (UInt32, UInt32), _ b: (UInt32, UInt32)) -> (UInt32, UInt32) {
        if a.0 == 0 { return b }
        if b.0 == 0 { return a }
        let i = Int(a.1 >> 1)
        if a.1 & 1 == 0 { prog.insts[i].out = b.0 } else { prog.insts[i].arg = b.0 }
        return (a.0, b.1)
    }

    private mutating func cat(_ f1: Frag, _ f2: Frag) -> Frag {
        if f1.start == 0 || f2.start == 0 { return Frag() }
        patch(f1, to: f2.start)
        return Frag(start: f1.start, head: f2.head, tail: f2.tail, nullable: f1.nullable && f2.nullable)
    }

    private mutating func alt(_ f1: Frag, _ f2: Frag) -> Frag {
        if f1.start == 0 { return f2 }
        if f2.start == 0 { return f1 }
        var f = inst(.alt)
        prog.insts[Int(f.start)].out = f1.start
        prog.insts[Int(f.start)].arg = f2.start
        (f.head, f.tail) = join((f1.head, f1.tail), (f2.head, f2.tail))
        f.nullable = f1.nullable || f2.nullable
        return f
    }

    private mutating func quest(_ f1: Frag, greedy: Bool) -> Frag {
        var f = inst(.alt)
        let own: UInt32
        if greedy {
            prog.insts[Int(f.start)].out = f1.start
            own = f.start << 1 | 1
        } else {
            prog.insts[Int(f.start)].arg = f1.start
            own = f.start << 1
        }
        (f.head, f.tail) = join((own, own), (f1.head, f1.tail))
        return f
    }

    /// The loop of a plus or star: `alt` back to `f1` or out.
    private mutating func loop(_ f1: Frag, greedy: Bool) -> Frag {
        var f = inst(.alt)
        if greedy {
            prog.insts[Int(f.start)].out = f1.start
            f.head = f.start << 1 | 1
        } else {
            prog.insts[Int(f.start)].arg = f1.start
            f.head = f.start << 1
        }
        f.tail = f.head
        patch(f1, to: f.start)
        return f
    }

    private mutating func star(_ f1: Frag, greedy: Bool) -> Frag {
        // (x+)? keeps the priorities right when x can match empty (golang.org/issue/46123).
        if f1.nullable { return quest(plus(f1, greedy: greedy), greedy: greedy) }
        return loop(f1, greedy: greedy)
    }

    private mutating func plus(_ f1: Frag, greedy: Bool) -> Frag {
        let l = loop(f1, greedy: greedy)
        return Frag(start: f1.start, head: l.head, tail: l.tail, nullable: f1.nullable)
    }
}
