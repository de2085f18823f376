/// Turns parsed modules into the resolved, safety-ordered IR and checks for errors.
final class Compiler {
    var errors: [PolicyError] = []
    /// Registration errors OPA finds in a later stage than local variable rewriting (reported by compileAll).
    var deferredErrors: [PolicyError] = []
    let root: RuleNode
    var ruleSets: [RuleSet] = []
    var modules: [Module] = []
    let builtins: [String: Builtin]
    /// First path segment of every rule, per package (key: package path joined by ".").
    var packageRuleNames: [String: Set<String>] = [:]

    init(builtins: [String: Builtin] = Builtins.table, root: RuleNode = RuleNode(path: [])) {
        self.builtins = builtins
        self.root = root
    }

    func error(_ code: PolicyError.Code, _ msg: String, _ loc: SourceLocation?) {
        let e = PolicyError(code, msg, at: loc)
        if !errors.contains(e) { errors.append(e) }
    }

    // MARK: registration

    func register(_ mod: Module) {
        checkModule(mod)
        modules.append(mod)
        let pkgKey = mod.package.joined(separator: ".")
        var names = packageRuleNames[pkgKey] ?? []
        for decl in mod.rules {
            guard case .scalar(.string(let first)) = decl.headRef[0].node else { continue }
            names.insert(first)
        }
        packageRuleNames[pkgKey] = names
        for decl in mod.rules {
            var path = mod.package
            var keyStart = decl.headRef.count
            for (i, t) in decl.headRef.enumerated() {
                if case .scalar(.string(let s)) = t.node, i < keyStart {
                    path.append(s)
                } else {
                    keyStart = min(keyStart, i)
                    break
                }
            }
            if decl.kind == .partialObject && keyStart == decl.headRef.count {
                decl.kind = .complete
            }
            if decl.kind == .function, keyStart != decl.headRef.count {
                error(.parse, "rule head reference must be static for functions and multi-value rules", decl.loc)
                continue
            }
            let kind: RuleKind
            switch decl.kind {
            case .complete: kind = .complete
            case .partialSet: kind = .partialSet
            case .partialObject: kind = .partialObject
            case .function: kind = .function
            }
            let node = root.find(path[...]) ?? {
                var n = root
                for s in path { n = n.child(s) }
                return n
            }()
            let rs: RuleSet
            if let existing = node.ruleSet {
                rs = existing
                if rs.kind != kind {
                    error(.type, "conflicting rules data.\(path.joined(separator: ".")) found", decl.loc)
                    continue
                }
                if kind == .function, let a = decl.args, a.count != rs.arity {
                    error(.type, "conflicting rules data.\(path.joined(separator: ".")) found: functions must have the same arity", decl.loc)
                    continue
                }
            } else {
                rs = RuleSet(id: ruleSets.count, path: path, kind: kind)
                rs.arity = decl.args?.count ?? 0
                ruleSets.append(rs)
                node.ruleSet = rs
            }
            let cr = CRule(decl: decl, module: mod)
            if decl.isDefault {
                if rs.defaultRule != nil {
                    deferredErrors.append(PolicyError(.type, "multiple default rules data.\(path.joined(separator: ".")) found", at: decl.loc))
                }
                rs.defaultRule = cr
            } else {
                rs.rules.append(cr)
            }
        }
    }

    // MARK: compilation of all rules

    func compileAll() {
        for e in deferredErrors { error(e.code, e.message, e.location) }
        checkRulePrefixes()
        for rs in ruleSets {
            for r in rs.rules { compileRule(r, rs) }
            if let d = rs.defaultRule { compileRule(d, rs) }
            rs.plainHeads = rs.rules.allSatisfy { r in
                r.args.allSatisfy { a in
                    switch a {
                    case .slot, .const: return true
                    default: return false
                    }
                }
            }
        }
        checkRecursion()
        orderErrorsByStage()
    }

    func compileRule(_ r: CRule, _ rs: RuleSet) {
        let decl = r.decl
        r.dottedPath = rs.dottedPath
        let ctx = RuleContext(compiler: self, module: r.module)
        let scope = Scope(parent: nil)
        // Pre-register names at rule level.
        var declared: [String] = []
        if let args = decl.args { for a in args { collectVarNames(a, into: &declared) } }
        for lit in decl.body { collectDeclared(lit, into: &declared) }
        for el in decl.elses { for lit in el.body { collectDeclared(lit, into: &declared) } }
        // Names declared with `some`/`:=` in the body are registered when their literal is reached, so a
        // comprehension before the declaration does not capture them (OPA's scoping).
        var argNames: [String] = []
        if let args = decl.args { for a in args { collectVarNames(a, into: &argNames) } }
        for n in argNames { ctx.declare(n, in: scope) }
        let declaredSet = Set(declared).subtracting(argNames)
        var used: [String] = []
        if let args = decl.args { for a in args { collectVarNames(a, into: &used) } }
        if decl.kind == .partialObject || decl.kind == .partialSet {
            for t in decl.headRef.dropFirst() { collectVarNames(t, into: &used) }
        }
        if let k = decl.key { collectVarNames(k, into: &used) }
        if let v = decl.value { collectVarNames(v, into: &used) }
        for lit in decl.body { collectLiteralVars(lit, into: &used) }
        for el in decl.elses {
            if let v = el.value { collectVarNames(v, into: &used) }
            for lit in el.body { collectLiteralVars(lit, into: &used) }
        }
        for n in used where !ctx.isGlobal(n) && !declaredSet.contains(n) { ctx.declare(n, in: scope) }

        if decl.isDefault {
            if let v = decl.value {
                r.value = ctx.compileTerm(v, scope)
                var tv = TermVars()
                analyzeValue(r.value, &tv)
                if !tv.needs.isEmpty || !tv.outs.isEmpty {
                    error(.compile, "default rule \(rs.dottedPath) value must be ground", decl.loc)
                }
            }
            if let args = decl.args { r.args = args.map { ctx.compileTerm($0, scope) } }
            r.slotCount = ctx.slotNames.count
            return
        }

        var initial = Set<Int>()
        if let args = decl.args {
            r.args = args.map { ctx.compileTerm($0, scope) }
            for a in r.args {
                var tv = TermVars()
                analyzePattern(a, &tv)
                initial.formUnion(tv.pats)
            }
        }
        let body = ctx.compileBody(decl.body, scope, seen: argNames)
        var headTerms: [CTerm] = []
        switch rs.kind {
        case .partialSet:
            // Variables in the head reference (`a[x].b contains y`) nest the set inside objects.
            var seenVar = false
            for t in decl.headRef.dropFirst() {
                if case .scalar(.string) = t.node, !seenVar { continue }
                seenVar = true
                r.keys.append(ctx.compileTerm(t, scope))
            }
            if let k = decl.key {
                r.keys.append(ctx.compileTerm(k, scope))
            }
        case .partialObject:
            var seenVar = false
            for t in decl.headRef.dropFirst() {
                if case .scalar(.string) = t.node, !seenVar {
                    continue
                }
                seenVar = true
                r.keys.append(ctx.compileTerm(t, scope))
            }
        default: break
        }
        headTerms.append(contentsOf: r.keys)
        if let v = decl.value {
            r.value = ctx.compileTerm(v, scope)
            headTerms.append(r.value)
        } else if rs.kind == .partialSet {
            r.value = .const(.true)
        }
        r.body = orderBody(body, initial: initial, head: headTerms, ctx: ctx, loc: decl.loc)
        for el in decl.elses {
            // Each else body declares its own variables (`x := ...` may appear in several branches).
            let elScope = Scope(parent: scope)
            let b = ctx.compileBody(el.body, elScope, seen: argNames)
            let v = el.value.map { ctx.compileTerm($0, elScope) } ?? .const(.true)
            r.elses.append((v, orderBody(b, initial: initial, head: [v], ctx: ctx, loc: el.loc)))
        }
        r.inputGuards = InputGuards.collect(r, kind: rs.kind)
        r.slotCount = ctx.slotNames.count
    }

    // MARK: queries

    func compileQuery(_ lits: [Literal], file: String) -> CompiledQuery {
        let mod = Module(file: file, package: [], version: .v1)
        let ctx = RuleContext(compiler: self, module: mod)
        let scope = Scope(parent: nil)
        var declared: [String] = []
        for lit in lits { collectDeclared(lit, into: &declared) }
        var used: [String] = []
        for lit in lits { collectLiteralVars(lit, into: &used) }
        for n in used where !ctx.isGlobal(n) && !declared.contains(n) { ctx.declare(n, in: scope) }
        let body = ctx.compileBody(lits, scope)
        let ordered = orderBody(body, initial: [], head: [], ctx: ctx, loc: lits.first?.loc)
        var vars: [(String, Int)] = []
        for (name, slot) in scope.names.sorted(by: { $0.value < $1.value }) where !name.hasPrefix("$") && name != "_" {
            vars.append((name, slot))
        }
        return CompiledQuery(body: ordered, slotCount: ctx.slotNames.count, vars: vars)
    }

    // MARK: recursion

    func checkRecursion() {
        var edges: [Int: Set<Int>] = [:]
        for rs in ruleSets {
            var deps = Set<Int>()
            for r in rs.rules + (rs.defaultRule.map { [$0] } ?? []) {
                for t in r.args + r.keys + [r.value] { collectDeps(t, &deps) }
                for e in r.body { collectDeps(e, &deps) }
                for el in r.elses {
                    collectDeps(el.value, &deps)
                    for e in el.body { collectDeps(e, &deps) }
                }
            }
            edges[rs.id] = deps
        }
        var state = [Int](repeating: 0, count: ruleSets.count)  // 0 new, 1 active, 2 done
        var stack: [Int] = []
        var reported = Set<Int>()
        func visit(_ n: Int) {
            state[n] = 1
            stack.append(n)
            for m in (edges[n] ?? []).sorted() {
                if state[m] == 1 {
                    if !reported.contains(m) {
                        reported.insert(m)
                        let cycleStart = stack.firstIndex(of: m) ?? 0
                        let names = (stack[cycleStart...] + [m]).map { ruleSets[$0].dottedPath }
                        let rs = ruleSets[m]
                        let loc = rs.rules.first?.loc ?? rs.defaultRule?.loc
                        error(.recursion, "rule \(rs.dottedPath) is recursive: \(names.joined(separator: " -> "))", loc)
                    }
                } else if state[m] == 0 {
                    visit(m)
                }
            }
            stack.removeLast()
            state[n] = 2
        }
        for i in 0..<ruleSets.count where state[i] == 0 { visit(i) }
    }

    func collectDeps(_ e: CExpr, _ deps: inout Set<Int>) {
        switch e.kind {
        case .term(let t): collectDeps(t, &deps)
        case .unify(let a, let b): collectDeps(a, &deps); collectDeps(b, &deps)
        case .someIn(let k, let v, let c):
            if let k { collectDeps(k, &deps) }
            collectDeps(v, &deps); collectDeps(c, &deps)
        case .every(let k, let v, let d, let body, _):
            if let k { collectDeps(k, &deps) }
            collectDeps(v, &deps); collectDeps(d, &deps)
            for x in body { collectDeps(x, &deps) }
        case .noop: break
        }
        for w in e.with {
            collectDeps(w.value, &deps)
        }
    }

    func collectDeps(_ t: CTerm, _ deps: inout Set<Int>) {
        switch t {
        case .const, .slot, .input: break
        case .dataRef(let node, _, let rest):
            if let node { addSubtree(node, &deps) }
            for x in rest { collectDeps(x, &deps) }
        case .ref(let h, let path):
            collectDeps(h, &deps)
            for x in path { collectDeps(x, &deps) }
        case .array(let a), .set(let a): for x in a { collectDeps(x, &deps) }
        case .object(let pairs): for (k, v) in pairs { collectDeps(k, &deps); collectDeps(v, &deps) }
        case .call(let c, let args, _):
            if case .function(let rs) = c { deps.insert(rs.id) }
            for x in args { collectDeps(x, &deps) }
        case .compr(let c):
            collectDeps(c.head, &deps)
            if let h2 = c.head2 { collectDeps(h2, &deps) }
            for x in c.body { collectDeps(x, &deps) }
        }
    }

    func addSubtree(_ n: RuleNode, _ deps: inout Set<Int>) {
        if let rs = n.ruleSet { deps.insert(rs.id) }
        for c in n.children.values { addSubtree(c, &deps) }
    }
}

/// Compiled query ready for evaluation against a `CompiledPolicy`.
public struct CompiledQuery: @unchecked Sendable {
    let body: [CExpr]
    let slotCount: Int
    /// User-visible variables (name, slot) in order of first appearance.
    let vars: [(String, Int)]
    public var variableNames: [String] { vars.map(\.0) }
}

// MARK: - variable collection on the syntax tree

/// Names declared at this body level: `some x`, `x := ...`, `some x in ...`.
func collectDeclared(_ lit: Literal, into out: inout [String]) {
    switch lit.kind {
    case .someDecl(let terms):
        for t in terms { collectVarNames(t, into: &out) }
    case .assign(let lhs, _):
        collectVarNames(lhs, into: &out)
    case .someIn(let k, let v, _):
        if let k { collectVarNames(k, into: &out) }
        collectVarNames(v, into: &out)
    default: break
    }
}

/// All variable names in a literal at this level (not inside comprehension or `every` bodies).
func collectLiteralVars(_ lit: Literal, into out: inout [String]) {
    switch lit.kind {
    case .expr(let t): collectVarNames(t, into: &out)
    case .unify(let a, let b), .assign(let a, let b):
        collectVarNames(a, into: &out); collectVarNames(b, into: &out)
    case .someDecl(let ts): for t in ts { collectVarNames(t, into: &out) }
    case .someIn(let k, let v, let c):
        if let k { collectVarNames(k, into: &out) }
        collectVarNames(v, into: &out); collectVarNames(c, into: &out)
    case .every(_, _, let d, _):
        collectVarNames(d, into: &out)
    }
    for w in lit.with {
        // A value naming a builtin (`with count as object.union_n`) is a function mock, not a variable.
        if case .variable(let n) = w.value.node, Builtins.table[n] != nil { continue }
        if case .ref(let h, let path) = w.value.node, case .variable(let n) = h.node {
            let name = ([n] + path.compactMap { $0.node.stringName }).joined(separator: ".")
            if Builtins.table[name] != nil { continue }
        }
        collectVarNames(w.value, into: &out)
    }
}

/// Variable names in a term, not descending into comprehensions; ref heads count.
func collectVarNames(_ t: Term, into out: inout [String]) {
    switch t.node {
    case .scalar: break
    case .variable(let n):
        if n != "_" && !out.contains(n) { out.append(n) }
    case .ref(let h, let path):
        collectVarNames(h, into: &out)
        for p in path { collectVarNames(p, into: &out) }
    case .array(let a), .set(let a): for x in a { collectVarNames(x, into: &out) }
    case .object(let pairs): for (k, v) in pairs { collectVarNames(k, into: &out); collectVarNames(v, into: &out) }
    case .call(_, let args): for x in args { collectVarNames(x, into: &out) }
    case .refCall(let h, let args):
        collectVarNames(h, into: &out)
        for x in args { collectVarNames(x, into: &out) }
    case .arrayCompr, .setCompr, .objectCompr: break
    }
}

// MARK: - scopes and term compilation

final class Scope {
    var names: [String: Int] = [:]
    let parent: Scope?
    init(parent: Scope?) { self.parent = parent }
    func lookup(_ n: String) -> Int? {
        if let s = names[n] { return s }
        return parent?.lookup(n)
    }
}

final class RuleContext {
    unowned let compiler: Compiler
    let module: Module
    var slotNames: [String] = []
    var imports: [String: [String]] = [:]
    let pkgNames: Set<String>
    var assigned: Set<Int> = []
    /// Types of variables assigned (`:=`) a term whose type is known, for TypeCheck.
    var slotTypes: [Int: RegoTypes] = [:]
    /// The call a body literal consists of (`print(x)` may only stand there, not be a value).
    var statementCall: Term?
    /// Inside an `every` body OPA's type checker does not check builtin calls (it sees the body
    /// only after rewriting it), so neither does TypeCheck.
    var everyDepth = 0

    init(compiler: Compiler, module: Module) {
        self.compiler = compiler
        self.module = module
        for imp in module.imports where imp.path.first == "data" || imp.path.first == "input" {
            imports[imp.name] = imp.path
        }
        pkgNames = module.package.isEmpty ? [] : (compiler.packageRuleNames[module.package.joined(separator: ".")] ?? [])
    }

    @discardableResult
    func declare(_ n: String, in scope: Scope) -> Int {
        if let s = scope.names[n] { return s }
        let s = slotNames.count
        slotNames.append(n)
        scope.names[n] = s
        return s
    }

    func fresh(_ scope: Scope) -> Int {
        let s = slotNames.count
        slotNames.append("_")
        return s
    }

    func isGlobal(_ n: String) -> Bool {
        n == "input" || n == "data" || imports[n] != nil || pkgNames.contains(n)
    }

    func error(_ code: PolicyError.Code, _ msg: String, _ loc: SourceLocation) {
        compiler.error(code, msg, loc)
    }

    /// Builds a data reference, folding constant strings into the static prefix as far as the rule tree goes.
    func makeDataRef(_ staticPath: [String], _ rest: [CTerm]) -> CTerm {
        var all: [CTerm] = staticPath.map { .const(.string($0)) } + rest
        var node: RuleNode? = compiler.root
        var prefix: [String] = []
        var i = 0
        while i < all.count, case .const(.string(let s)) = all[i] {
            if let n = node {
                if n.ruleSet != nil { break }
                if let c = n.children[s] {
                    node = c
                } else {
                    node = nil
                }
            }
            prefix.append(s)
            i += 1
        }
        if let n = node, n.ruleSet == nil, i < all.count {
            // Stopped at a package node with a dynamic key: keep node for enumeration.
            _ = n
        }
        all.removeFirst(i)
        return .dataRef(node: node, prefix: prefix, rest: all)
    }

    /// Resolves a global name to a term (nil if not global).
    func resolveGlobal(_ n: String, _ loc: SourceLocation) -> CTerm? {
        if let path = imports[n] {
            if path[0] == "input" { return path.count == 1 ? .input : .ref(.input, path.dropFirst().map { .const(.string($0)) }) }
            return makeDataRef(Array(path.dropFirst()), [])
        }
        if pkgNames.contains(n) { return makeDataRef(module.package + [n], []) }
        if n == "input" { return .input }
        if n == "data" { return makeDataRef([], []) }
        return nil
    }

    func compileTerm(_ t: Term, _ scope: Scope) -> CTerm {
        switch t.node {
        case .scalar(let v): return .const(v)
        case .variable(let n):
            if n == "_" { return .slot(fresh(scope)) }
            if let s = scope.lookup(n) { return .slot(s) }
            if let g = resolveGlobal(n, t.loc) { return checkNotFunction(g, t.loc) }
            return .slot(declare(n, in: scope))
        case .ref(let head, let path):
            let cpath = path.map { compileTerm($0, scope) }
            if case .variable(let n) = head.node, n != "_", scope.lookup(n) == nil, let g = resolveGlobal(n, head.loc) {
                switch g {
                case .dataRef(_, let prefix, let rest):
                    return checkNotFunction(makeDataRef(prefix, rest + cpath), t.loc)
                case .ref(let h, let p):
                    return .ref(h, p + cpath)
                default:
                    return .ref(g, cpath)
                }
            }
            let h = compileTerm(head, scope)
            if everyDepth == 0, !cpath.isEmpty, let message = TypeCheck.refError(into: h, slotTypes: slotTypes) { error(.type, message, t.loc) }
            if case .ref(let hh, let hp) = h { return .ref(hh, hp + cpath) }
            return .ref(h, cpath)
        case .array(let a): return foldConst(.array(a.map { compileTerm($0, scope) }))
        case .set(let a): return foldConst(.set(a.map { compileTerm($0, scope) }))
        case .object(let pairs): return foldConst(.object(pairs.map { (compileTerm($0.0, scope), compileTerm($0.1, scope)) }))
        case .call(let name, let args):
            let cargs = args.map { compileTerm($0, scope) }
            guard let callee = resolveCallee(name, t.loc, scope) else { return .const(.null) }
            let arity = calleeArity(callee)
            if arity >= 0 && cargs.count != arity {
                error(.type, "\(displayName(name)): arity mismatch: expected \(arity) argument\(arity == 1 ? "" : "s"), got \(cargs.count)", t.loc)
            } else if case .builtin(let b) = callee, b.name == "print", t !== statementCall {
                error(.type, "print(...) used as value", t.loc)
            } else if everyDepth == 0, case .builtin(let b) = callee, let message = TypeCheck.error(calling: b.name, with: cargs, slotTypes: slotTypes, version: module.version) {
                error(.type, message, t.loc)
            }
            return .call(callee, cargs, t.loc)
        case .refCall(let h, let args):
            _ = h
            _ = args
            error(.parse, "illegal call", t.loc)
            return .const(.null)
        case .arrayCompr(let head, let body):
            return compileCompr(.array, head, nil, body, scope)
        case .setCompr(let head, let body):
            return compileCompr(.set, head, nil, body, scope)
        case .objectCompr(let k, let v, let body):
            return compileCompr(.object, k, v, body, scope)
        }
    }

    func displayName(_ name: [String]) -> String { name.joined(separator: ".") }

    /// A function referred to without a call (`p := f`, `data.t.f`) is a type error in OPA.
    func checkNotFunction(_ t: CTerm, _ loc: SourceLocation) -> CTerm {
        if case .dataRef(let node?, _, _) = t, let rs = node.ruleSet, rs.kind == .function {
            error(.type, "function \(rs.dottedPath) must be called", loc)
        }
        return t
    }

    func calleeArity(_ c: Callee) -> Int {
        switch c {
        case .builtin(let b): return b.arity
        case .function(let rs): return rs.arity
        }
    }

    func resolveCallee(_ name: [String], _ loc: SourceLocation, _ scope: Scope) -> Callee? {
        if name == ["internal", "template_string"] { return .builtin(Builtins.templateString) }
        if scope.lookup(name[0]) != nil {
            error(.compile, "\(displayName(name)) is a variable, not a function", loc)
            return nil
        }
        var path: [String]?
        if name[0] == "data" {
            path = Array(name.dropFirst())
        } else if let imp = imports[name[0]], imp[0] == "data" {
            path = Array(imp.dropFirst()) + name.dropFirst()
        } else if pkgNames.contains(name[0]) {
            path = module.package + name
        }
        if let p = path {
            if let node = compiler.root.find(p[...]), let rs = node.ruleSet, rs.kind == .function {
                return .function(rs)
            }
            if name[0] == "data" || imports[name[0]] != nil || compiler.builtins[displayName(name)] == nil {
                error(.type, "undefined function \(name[0] == "data" ? displayName(name) : "data." + p.joined(separator: "."))", loc)
                return nil
            }
        }
        if let b = compiler.builtins[displayName(name)] { return .builtin(b) }
        error(.type, "undefined function \(displayName(name))", loc)
        return nil
    }

    func foldConst(_ t: CTerm) -> CTerm {
        switch t {
        case .array(let a):
            var vals: [Value] = []
            vals.reserveCapacity(a.count)
            for x in a { guard case .const(let v) = x else { return t }; vals.append(v) }
            return .const(.array(vals))
        case .set(let a):
            var vals = Set<Value>()
            for x in a { guard case .const(let v) = x else { return t }; vals.insert(v) }
            return .const(.set(vals))
        case .object(let pairs):
            var o: [Value: Value] = [:]
            for (k, v) in pairs {
                guard case .const(let kv) = k, case .const(let vv) = v else { return t }
                o[kv] = vv
            }
            return .const(.object(o))
        default: return t
        }
    }

    func compileCompr(_ kind: ComprKind, _ head: Term, _ head2: Term?, _ body: [Literal], _ outer: Scope) -> CTerm {
        let scope = Scope(parent: outer)
        let startSlot = slotNames.count
        var declared: [String] = []
        for lit in body { collectDeclared(lit, into: &declared) }
        var used: [String] = []
        collectVarNames(head, into: &used)
        if let h2 = head2 { collectVarNames(h2, into: &used) }
        for lit in body { collectLiteralVars(lit, into: &used) }
        for n in used where outer.lookup(n) == nil && !isGlobal(n) && !declared.contains(n) { declare(n, in: scope) }
        let cbody = compileBody(body, scope)
        let chead = compileTerm(head, scope)
        let chead2 = head2.map { compileTerm($0, scope) }
        var refs = Set<Int>()
        for e in cbody { slotsIn(e, &refs) }
        slotsIn(chead, &refs)
        if let h2 = chead2 { slotsIn(h2, &refs) }
        let free = refs.filter { $0 < startSlot }
        var heads = [chead]
        if let h2 = chead2 { heads.append(h2) }
        let ordered = compiler.orderBody(cbody, initial: free, head: heads, ctx: self, loc: head.loc)
        return .compr(Compr(kind: kind, head: chead, head2: chead2, body: ordered, free: free))
    }

    /// Compiles literals in order, declaring `some`/`:=` names as they are reached.
    /// `seen`: names already referenced before the body (a function's arguments), which `:=` and
    /// `some` may not declare again.
    func compileBody(_ lits: [Literal], _ scope: Scope, seen initial: [String] = []) -> [CExpr] {
        var out: [CExpr] = []
        out.reserveCapacity(lits.count)
        var seen = Set(initial)
        for lit in lits {
            var d: [String] = []
            collectDeclared(lit, into: &d)
            var seenHere = seen
            if case .assign(_, let rhs) = lit.kind {
                // `x := x[_]`: the right side is read before `x` is declared (OPA: "var x referenced above").
                var names: [String] = []
                collectVarNames(rhs, into: &names)
                seenHere.formUnion(names.filter { $0 != "_" && scope.lookup($0) == nil })
            }
            checkRedeclared(lit, d, seenHere, scope)
            // `:=` declares its names after its right side is compiled (which may read an outer `x` in `x := x`).
            if case .assign = lit.kind {} else {
                for n in d where scope.names[n] == nil { declare(n, in: scope) }
            }
            out.append(compileLiteral(lit, scope))
            var used: [String] = []
            collectLiteralVars(lit, into: &used)
            seen.formUnion(used)
        }
        checkUnusedSome(lits, out, scope)
        return out
    }

    func compileLiteral(_ lit: Literal, _ scope: Scope) -> CExpr {
        var kind: CExprKind
        switch lit.kind {
        case .expr(let t):
            let outer = statementCall
            statementCall = t
            defer { statementCall = outer }
            if case .call(let name, let args) = t.node, let callee = resolveCalleeQuiet(name, scope),
                calleeArity(callee) >= 0, args.count == calleeArity(callee) + 1
            {
                // Output form: f(a, b, out) ≡ f(a, b) = out
                let cargs = args.dropLast().map { compileTerm($0, scope) }
                let out = compileTerm(args.last!, scope)
                kind = .unify(.call(callee, cargs, t.loc), out)
            } else {
                let term = compileTerm(t, scope)
                if everyDepth == 0, case .call(.builtin(let b), let args, _) = term, b.name == "equal", args.count == 2,
                    let message = TypeCheck.comparisonError(args[0], args[1], slotTypes: slotTypes)
                {
                    error(.type, message, t.loc)
                }
                kind = .term(term)
            }
        case .unify(let a, let b):
            let l = compileTerm(a, scope), r = compileTerm(b, scope)
            if everyDepth == 0, let message = TypeCheck.comparisonError(l, r, slotTypes: slotTypes, sameLength: false) { error(.type, message, a.loc) }
            kind = .unify(l, r)
        case .assign(let a, let b):
            kind = compileAssign(lit, a, b, scope)
        case .someDecl:
            kind = .noop
        case .someIn(let k, let v, let c):
            let collection = compileTerm(c, scope)
            if everyDepth == 0, let message = TypeCheck.iterationError(over: collection, slotTypes: slotTypes) { error(.type, message, c.loc) }
            kind = .someIn(key: k.map { compileTerm($0, scope) }, value: compileTerm(v, scope), collection: collection)
        case .every(let k, let v, let d, let body):
            let domain = compileTerm(d, scope)
            let inner = Scope(parent: scope)
            let startSlot = slotNames.count
            var declared: [String] = []
            if let k { collectVarNames(k, into: &declared) }
            collectVarNames(v, into: &declared)
            for n in declared { declare(n, in: inner) }
            var bodyDeclared: [String] = []
            for lit in body { collectDeclared(lit, into: &bodyDeclared) }
            var used: [String] = []
            for lit in body { collectLiteralVars(lit, into: &used) }
            for n in used where scope.lookup(n) == nil && !isGlobal(n) && !bodyDeclared.contains(n) { declare(n, in: inner) }
            let ck = k.map { compileTerm($0, inner) }
            let cv = compileTerm(v, inner)
            everyDepth += 1
            let cbody = compileBody(body, inner)
            everyDepth -= 1
            var refs = Set<Int>()
            for e in cbody { slotsIn(e, &refs) }
            for n in declared where n != "_" {
                if let s = inner.names[n], !refs.contains(s) { error(.compile, "declared var \(n) unused", lit.loc) }
            }
            let free = refs.filter { $0 < startSlot }
            var initial = free
            var tv = TermVars()
            if let ck { analyzePattern(ck, &tv) }
            analyzePattern(cv, &tv)
            initial.formUnion(tv.pats)
            let ordered = compiler.orderBody(cbody, initial: initial, head: [], ctx: self, loc: lit.loc)
            kind = .every(key: ck, value: cv, domain: domain, body: ordered, free: free)
        }
        var withs: [CWith] = []
        for w in lit.with {
            if let cw = compileWith(w, scope) { withs.append(cw) }
        }
        return CExpr(kind: kind, negated: lit.negated, with: withs, loc: lit.loc)
    }

    /// `a := b`: the right side is compiled before the names of the left are declared.
    func compileAssign(_ lit: Literal, _ a: Term, _ b: Term, _ scope: Scope) -> CExprKind {
        let rhs = compileTerm(b, scope)
        var declared: [String] = []
        collectDeclared(lit, into: &declared)
        for n in declared where scope.names[n] == nil { declare(n, in: scope) }
        let lhs = compileTerm(a, scope)
        if case .scalar = a.node { error(.compile, "cannot assign to \(a.node)", a.loc) }
        if case .array(let x) = a.node, case .array(let y) = b.node, x.count != y.count {
            error(.compile, "match error: arrays of different lengths", a.loc)
        }
        checkAssignTarget(lhs, a.loc)
        if case .slot(let s) = lhs { slotTypes[s] = TypeCheck.knownType(rhs, slotTypes) }
        return .unify(lhs, rhs)
    }

    /// A function replaced by another function (`with f as g`) needs one of the same arity.
    func checkMockArity(_ target: Callee, _ mock: Callee?, _ loc: SourceLocation) {
        guard let mock, calleeArity(target) >= 0, calleeArity(mock) >= 0, calleeArity(target) != calleeArity(mock) else { return }
        error(.type, "with keyword: \(mock.name) does not have the arity of \(target.name)", loc)
    }

    func checkAssignTarget(_ t: CTerm, _ loc: SourceLocation) {
        switch t {
        case .slot(let s):
            if assigned.contains(s) {
                error(.compile, "var \(slotNames[s]) assigned above", loc)
            }
            assigned.insert(s)
        case .array(let a): for x in a { checkAssignTarget(x, loc) }
        case .object(let pairs): for (_, v) in pairs { checkAssignTarget(v, loc) }
        case .const: break
        case .dataRef, .input, .ref:
            error(.compile, "cannot assign to ref", loc)
        default:
            error(.compile, "cannot assign to \(t)", loc)
        }
    }

    func resolveCalleeQuiet(_ name: [String], _ scope: Scope) -> Callee? {
        if name == ["internal", "template_string"] { return .builtin(Builtins.templateString) }
        var path: [String]?
        if name[0] == "data" {
            path = Array(name.dropFirst())
        } else if let imp = imports[name[0]], imp[0] == "data" {
            path = Array(imp.dropFirst()) + name.dropFirst()
        } else if pkgNames.contains(name[0]) {
            path = module.package + name
        }
        if let p = path, let node = compiler.root.find(p[...]), let rs = node.ruleSet, rs.kind == .function {
            return .function(rs)
        }
        if let b = compiler.builtins[displayName(name)] { return .builtin(b) }
        return nil
    }

    func compileWith(_ w: WithModifier, _ scope: Scope) -> CWith? {
        var mock: Callee?
        // A value naming a function (builtin or user) makes a function mock.
        switch w.value.node {
        case .variable(let n) where scope.lookup(n) == nil:
            mock = resolveCalleeQuiet([n], scope)
        case .ref(let h, let path):
            if case .variable(let n) = h.node {
                var name = [n]
                var ok = true
                for p in path { if case .scalar(.string(let s)) = p.node { name.append(s) } else { ok = false } }
                if ok { mock = resolveCalleeQuiet(name, scope) }
            }
        default: break
        }
        let value = mock == nil ? compileTerm(w.value, scope) : .const(.null)
        // Target.
        var head: String?
        var path: [String] = []
        switch w.target.node {
        case .variable(let n): head = n
        case .ref(let h, let p):
            if case .variable(let n) = h.node { head = n }
            for x in p {
                guard case .scalar(.string(let s)) = x.node else {
                    error(.type, "with keyword target must reference existing input, data, or a function", w.loc)
                    return nil
                }
                path.append(s)
            }
        default: break
        }
        guard let h = head else {
            error(.type, "with keyword target must reference existing input, data, or a function", w.loc)
            return nil
        }
        if h == "input" { return CWith(target: .input(path), value: value, mockCallee: nil) }
        let full = [h] + path
        if h == "data" {
            if path.isEmpty { error(.compile, "with keyword cannot replace the data document", w.loc) }
            if let node = compiler.root.find(path[...]), let rs = node.ruleSet, rs.kind == .function {
                checkMockArity(.function(rs), mock, w.loc)
                return CWith(target: .function(Callee.function(rs).name), value: value, mockCallee: mock)
            }
            return CWith(target: .data(path), value: value, mockCallee: nil)
        }
        if let callee = resolveCalleeQuiet(full, scope) {
            checkMockArity(callee, mock, w.loc)
            return CWith(target: .function(callee.name), value: value, mockCallee: mock)
        }
        if let imp = imports[h] {
            if imp[0] == "input" { return CWith(target: .input(Array(imp.dropFirst()) + path), value: value, mockCallee: nil) }
            return CWith(target: .data(Array(imp.dropFirst()) + path), value: value, mockCallee: nil)
        }
        if pkgNames.contains(h) {
            return CWith(target: .data(module.package + full), value: value, mockCallee: nil)
        }
        error(.type, "with keyword target must reference existing input, data, or a function", w.loc)
        return nil
    }
}

// MARK: - slot helpers

func slotsIn(_ e: CExpr, _ out: inout Set<Int>) {
    switch e.kind {
    case .term(let t): slotsIn(t, &out)
    case .unify(let a, let b): slotsIn(a, &out); slotsIn(b, &out)
    case .someIn(let k, let v, let c):
        if let k { slotsIn(k, &out) }
        slotsIn(v, &out); slotsIn(c, &out)
    case .every(let k, let v, let d, let body, _):
        if let k { slotsIn(k, &out) }
        slotsIn(v, &out); slotsIn(d, &out)
        for x in body { slotsIn(x, &out) }
    case .noop: break
    }
    for w in e.with { slotsIn(w.value, &out) }
}

func slotsIn(_ t: CTerm, _ out: inout Set<Int>) {
    switch t {
    case .const, .input: break
    case .slot(let s): out.insert(s)
    case .dataRef(_, _, let rest): for x in rest { slotsIn(x, &out) }
    case .ref(let h, let p): slotsIn(h, &out); for x in p { slotsIn(x, &out) }
    case .array(let a), .set(let a): for x in a { slotsIn(x, &out) }
    case .object(let pairs): for (k, v) in pairs { slotsIn(k, &out); slotsIn(v, &out) }
    case .call(_, let args, _): for x in args { slotsIn(x, &out) }
    case .compr(let c):
        slotsIn(c.head, &out)
        if let h2 = c.head2 { slotsIn(h2, &out) }
        for x in c.body { slotsIn(x, &out) }
    }
}
