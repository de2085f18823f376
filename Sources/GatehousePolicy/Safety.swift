/// Safety analysis: which variables an expression needs bound, and which it binds.
/// Bodies are reordered so every expression runs after the expressions that bind its inputs
/// (like OPA's safety reordering); expressions that can never run are reported as unsafe.
struct TermVars {
    var needs = Set<Int>()
    var outs = Set<Int>()
    /// Slots in pattern positions (direct unification targets).
    var pats = Set<Int>()
}

func analyzeValue(_ t: CTerm, _ r: inout TermVars) {
    switch t {
    case .const, .input: break
    case .slot(let s): r.needs.insert(s)
    case .dataRef(_, _, let rest): for e in rest { analyzeKey(e, &r) }
    case .ref(let h, let path):
        analyzeValue(h, &r)
        for e in path { analyzeKey(e, &r) }
    case .array(let a), .set(let a): for e in a { analyzeValue(e, &r) }
    case .object(let pairs): for (k, v) in pairs { analyzeValue(k, &r); analyzeValue(v, &r) }
    case .call(_, let args, _): for e in args { analyzeValue(e, &r) }
    case .compr(let c): r.needs.formUnion(c.free)
    }
}

func analyzeKey(_ t: CTerm, _ r: inout TermVars) {
    switch t {
    case .slot(let s): r.outs.insert(s)
    case .array, .object:
        var inner = TermVars()
        analyzePattern(t, &inner)
        r.needs.formUnion(inner.needs)
        r.outs.formUnion(inner.outs)
        r.outs.formUnion(inner.pats)
    default: analyzeValue(t, &r)
    }
}

func analyzePattern(_ t: CTerm, _ r: inout TermVars) {
    switch t {
    case .slot(let s):
        r.pats.insert(s)
    case .array(let a): for e in a { analyzePattern(e, &r) }
    case .object(let pairs):
        for (k, v) in pairs {
            analyzeValue(k, &r)
            analyzePattern(v, &r)
        }
    default: analyzeValue(t, &r)
    }
}

extension Compiler {
    /// Can `a = b` run with `bound` bound?
    func canUnify(_ a: CTerm, _ b: CTerm, _ bound: Set<Int>) -> Bool {
        var ta = TermVars(), tb = TermVars()
        analyzePattern(a, &ta)
        analyzePattern(b, &tb)
        if case .array(let x) = a, case .array(let y) = b, x.count != y.count {
            // Arrays of different lengths are not unified elementwise: nothing in them is bound.
            return ta.pats.isSubset(of: bound) && tb.pats.isSubset(of: bound)
        }
        if ta.pats.isSubset(of: bound) || tb.pats.isSubset(of: bound) { return true }
        switch (a, b) {
        case (.array(let x), .array(let y)) where x.count == y.count:
            // Elementwise; bindings from earlier pairs help later ones.
            var remaining = Array(zip(x, y))
            var b2 = bound
            while !remaining.isEmpty {
                guard let idx = remaining.firstIndex(where: { canUnify($0.0, $0.1, b2) }) else { return false }
                var t1 = TermVars(), t2 = TermVars()
                analyzePattern(remaining[idx].0, &t1)
                analyzePattern(remaining[idx].1, &t2)
                b2.formUnion(t1.pats); b2.formUnion(t2.pats)
                b2.formUnion(t1.outs); b2.formUnion(t2.outs)
                remaining.remove(at: idx)
            }
            return true
        case (.object(let x), .object(let y)) where x.count == y.count:
            var pairs: [(CTerm, CTerm)] = []
            for (k, v) in x {
                guard case .const(let kv) = k,
                    let other = y.first(where: { if case .const(let ov) = $0.0 { return ov == kv }; return false })
                else { return false }
                pairs.append((v, other.1))
            }
            return canUnify(.array(pairs.map(\.0)), .array(pairs.map(\.1)), bound)
        default:
            return false
        }
    }

    struct LitInfo {
        var needs: Set<Int>
        var outs: Set<Int>
        var all: Set<Int>
    }

    func info(_ e: CExpr) -> LitInfo {
        var tv = TermVars()
        switch e.kind {
        case .term(let t): analyzeValue(t, &tv)
        case .unify(let a, let b):
            analyzePattern(a, &tv)
            analyzePattern(b, &tv)
        case .someIn(let k, let v, let c):
            if let k { analyzePattern(k, &tv) }
            analyzePattern(v, &tv)
            analyzeValue(c, &tv)
        case .every(_, _, let d, _, let free):
            analyzeValue(d, &tv)
            tv.needs.formUnion(free)
        case .noop: break
        }
        for w in e.with { analyzeValue(w.value, &tv) }
        var all = Set<Int>()
        slotsIn(e, &all)
        return LitInfo(needs: tv.needs, outs: tv.outs.union(tv.pats), all: all)
    }

    func orderBody(_ body: [CExpr], initial: Set<Int>, head: [CTerm], ctx: RuleContext, loc: SourceLocation?) -> [CExpr] {
        var bound = initial
        let infos = body.map { info($0) }
        var remaining = Array(body.indices)
        var out: [CExpr] = []
        func isReady(_ i: Int) -> Bool {
            let e = body[i], inf = infos[i]
            if e.negated {
                // Every variable of a negated expression (outside its comprehensions) must be bound
                // before it, wildcards included: `not xs[_] == 1` is unsafe in OPA.
                return inf.needs.isSubset(of: bound) && inf.outs.isSubset(of: bound)
            }
            if !inf.needs.subtracting(inf.outs).isSubset(of: bound) && !inf.needs.isSubset(of: bound.union(inf.outs)) {
                return false
            }
            if case .unify(let a, let b) = e.kind { return canUnify(a, b, bound) }
            if case .someIn(let k, let v, _) = e.kind {
                var tv = TermVars()
                if let k { analyzeValue(k, &tv) }
                _ = v
                return true
            }
            return true
        }
        while !remaining.isEmpty {
            if let pos = remaining.firstIndex(where: { isReady($0) }) {
                let i = remaining.remove(at: pos)
                out.append(body[i])
                if !body[i].negated { bound.formUnion(infos[i].outs) }
            } else {
                // Report unsafe variables of the first expression that cannot run.
                let i = remaining[0]
                var unsafe = infos[i].needs.subtracting(bound).subtracting(infos[i].outs)
                if unsafe.isEmpty { unsafe = infos[i].all.subtracting(bound) }
                for s in unsafe.sorted() {
                    let name = ctx.slotNames[s]
                    ctx.error(.unsafeVar, "var \(name == "_" ? "_" : name) is unsafe", body[i].loc)
                }
                if unsafe.isEmpty { ctx.error(.unsafeVar, "expression is unsafe", body[i].loc) }
                out.append(contentsOf: remaining.map { body[$0] })
                return out
            }
        }
        // Head variables must be bound by the body.
        for h in head {
            var tv = TermVars()
            analyzeValue(h, &tv)
            let missing = tv.needs.subtracting(bound).subtracting(tv.outs)
            for s in missing.sorted() {
                ctx.error(.unsafeVar, "var \(ctx.slotNames[s]) is unsafe", loc ?? body.first?.loc ?? SourceLocation(file: "", line: 0, column: 0))
            }
        }
        return out
    }
}
