/// OPA's rule index, as far as it shows in results: OPA does not evaluate a rule whose body (or
/// head) refers to a part of `input` that is undefined, so an error elsewhere in that body never
/// surfaces — `p := 1 if { count(input.tags) < 1; input.user }` is undefined in OPA when
/// `input.user` is missing even if `input.tags` is a number. Gatehouse checks the same references
/// when a rule's body raises an error, and drops the error when one is missing (the body could
/// not have produced anything: an undefined reference makes its expression fail). This never
/// changes a value, only whether an error or an undefined result comes out, and it costs nothing
/// when no error is raised.
///
/// A guard is a reference into `input` whose path is constant up to its first variable
/// (`input.tags[x]` guards `input.tags`), used by a body expression that is not negated, has no
/// `with`, and is not inside a comprehension, `every` or `print`. Rules with `else` and functions
/// have no guards (OPA indexes neither that way).
enum InputGuards {
    static func collect(_ rule: CRule, kind: RuleKind) -> [[Value]] {
        guard kind != .function, rule.elses.isEmpty else { return [] }
        var paths: [[Value]] = []
        for e in rule.body where !e.negated && !e.hasWith {
            switch e.kind {
            case .term(let t): collect(t, into: &paths)
            case .unify(let a, let b): collect(a, into: &paths); collect(b, into: &paths)
            case .someIn(_, _, let c): collect(c, into: &paths)
            case .every, .noop: break
            }
        }
        for k in rule.keys { collect(k, into: &paths) }
        collect(rule.value, into: &paths)
        // Keep the longest paths: a path that exists has every prefix.
        let unique = Array(Set(paths))
        return unique.filter { p in !unique.contains { q in q.count > p.count && Array(q.prefix(p.count)) == p } }
    }

    static func collect(_ t: CTerm, into paths: inout [[Value]]) {
        switch t {
        case .ref(.input, let path):
            var ground: [Value] = []
            for p in path {
                guard case .const(let k) = p else { break }
                ground.append(k)
            }
            if !ground.isEmpty { paths.append(ground) }
            for p in path { collect(p, into: &paths) }
        case .ref(let head, let path):
            collect(head, into: &paths)
            for p in path { collect(p, into: &paths) }
        case .dataRef(_, _, let rest):
            for p in rest { collect(p, into: &paths) }
        case .array(let a), .set(let a):
            for x in a { collect(x, into: &paths) }
        case .object(let pairs):
            for (k, v) in pairs { collect(k, into: &paths); collect(v, into: &paths) }
        case .call(let callee, let args, _):
            if case .builtin(let b) = callee, b.isSpecial { return }  // print shows <undefined>
            for a in args { collect(a, into: &paths) }
        case .const, .slot, .input, .compr:
            break
        }
    }

    /// True when every guard's path exists in `input`.
    @inline(__always)
    static func hold(_ guards: [[Value]], _ input: Value?) -> Bool {
        if guards.isEmpty { return true }
        guard let input else { return false }
        for path in guards {
            var v = input
            for k in path {
                guard let next = v.lookup(k) else { return false }
                v = next
            }
        }
        return true
    }
}
