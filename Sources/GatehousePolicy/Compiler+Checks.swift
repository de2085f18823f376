/// Static checks OPA makes that the compiler's main passes do not: declarations of names used
/// above, unused `some` declarations, rule paths that collide, names no rule may take.
extension RuleContext {
    /// A name declared by `:=` or `some` must not have been referenced earlier in the same body
    /// (OPA's "var x referenced above"); `input` and `data` may not be declared at all.
    func checkRedeclared(_ lit: Literal, _ declared: [String], _ seen: Set<String>, _ scope: Scope) {
        for n in declared {
            if n == "input" || n == "data" {
                error(.compile, "variables must not shadow \(n) (use a different variable name)", lit.loc)
                continue
            }
            guard seen.contains(n) else { continue }
            // `x := 1; x := 2` is reported as "assigned above" when the second literal is compiled.
            if case .assign = lit.kind, let s = scope.names[n], assigned.contains(s) { continue }
            error(.compile, "var \(n) referenced above", lit.loc)
        }
    }

    /// `some x` whose variable no other expression of the body uses.
    func checkUnusedSome(_ lits: [Literal], _ compiled: [CExpr], _ scope: Scope) {
        guard lits.contains(where: { if case .someDecl = $0.kind { return true }; return false }) else { return }
        var refs = Set<Int>()
        for e in compiled { slotsIn(e, &refs) }
        for lit in lits {
            guard case .someDecl(let terms) = lit.kind else { continue }
            for t in terms {
                if case .variable(let n) = t.node, n != "_", let s = scope.names[n], !refs.contains(s) {
                    error(.compile, "declared var \(n) unused", lit.loc)
                }
            }
        }
    }
}

extension Compiler {
    /// Checks of one module's declarations before its rules are registered.
    func checkModule(_ mod: Module) {
        var node = root
        for s in mod.package { node = node.child(s) }  // an empty package is still a document ({})
        var aliases = Set<String>()
        for imp in mod.imports where imp.path.first == "data" || imp.path.first == "input" {
            if !aliases.insert(imp.name).inserted {
                error(.compile, "import must not shadow import \(imp.name)", imp.loc)
            }
        }
        for decl in mod.rules {
            if case .scalar(.string(let first)) = decl.headRef[0].node, first == "input" || first == "data" {
                error(.compile, "rules must not shadow \(first) (use a different rule name)", decl.loc)
            }
            if decl.isDefault, decl.kind == .partialObject {
                error(.compile, "default rules must not have a variable key", decl.loc)
            }
        }
    }

    /// A rule whose value is not an object built by the rule tree (a complete rule, a set, a
    /// function) cannot have rules below it (`a.b := 1` with `a.b.c := 2`, or package `t.a` with
    /// rule `t.a`): OPA reports a type error.
    func checkRulePrefixes() {
        for rs in ruleSets where rs.kind != .partialObject {
            guard let node = root.find(rs.path[...]), node.children.values.contains(where: { $0.hasRules }) else { continue }
            error(.type, "rule \(rs.dottedPath) conflicts with rules below it", rs.rules.first?.loc ?? rs.defaultRule?.loc)
        }
    }

    /// OPA's compiler stops at the first stage that reports errors: local variable rewriting
    /// (compile errors) before rule conflicts and undefined functions (type errors), before safety
    /// (unsafe variables), recursion and type checking. The first error reported is of the earliest stage.
    func orderErrorsByStage() {
        func stage(_ e: PolicyError) -> Int {
            switch e.code {
            case .type where e.message.hasPrefix("multiple default rules") || e.message.hasPrefix("conflicting rules")
                || e.message.hasSuffix("conflicts with rules below it"): return 1
            case .type where e.message.hasPrefix("undefined function"): return 2
            case .unsafeVar: return 3
            case .recursion: return 4
            case .type: return 5
            default: return 0
            }
        }
        errors = errors.enumerated().sorted { (stage($0.element), $0.offset) < (stage($1.element), $1.offset) }.map(\.element)
    }
}
