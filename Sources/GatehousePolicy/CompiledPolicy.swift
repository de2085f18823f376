import Foundation
import Synchronization

/// One Rego source file.
public struct PolicyModule: Sendable {
    public var name: String
    public var source: String
    /// Syntax version; nil means v1 unless the module imports `future.keywords`.
    public var version: RegoVersion?
    public init(name: String, source: String, version: RegoVersion? = nil) {
        self.name = name
        self.source = source
        self.version = version
    }
}

/// Options for one evaluation.
public struct EvalOptions: Sendable {
    public var input: Value?
    /// Replaces the policy's base data for this evaluation when set.
    public var data: Value?
    /// When true (the default), an error in a builtin (type error, division by zero, bad regex, ...)
    /// fails the query. When false, the failing expression is undefined, as in OPA's default mode.
    public var strictBuiltinErrors: Bool
    /// Receives the output of `print`.
    public var print: (@Sendable (String) -> Void)?
    /// Clock for `time.now_ns` (read once per query).
    public var clock: @Sendable () -> Date
    /// Networking the policy may do (`net.lookup_ip_addr`); none by default.
    public var networking: Networking

    public init(
        input: Value? = nil, data: Value? = nil, strictBuiltinErrors: Bool = true,
        print: (@Sendable (String) -> Void)? = nil, clock: @escaping @Sendable () -> Date = { Date() },
        networking: Networking = .none
    ) {
        self.networking = networking
        self.input = input
        self.data = data
        self.strictBuiltinErrors = strictBuiltinErrors
        self.print = print
        self.clock = clock
    }
}

/// A compiled, immutable set of Rego modules (plus base data). Safe to share across threads;
/// each evaluation creates its own small state.
public final class CompiledPolicy: @unchecked Sendable {
    let root: RuleNode
    let ruleSets: [RuleSet]
    let builtins: [String: Builtin]
    public let baseData: Value
    let packageRuleNames: [String: Set<String>]
    /// Evaluation contexts kept for reuse (see `withContext`).
    private let contexts = Mutex<[EvalContext]>([])
    /// Paths (without `data.`) of every rule, e.g. `["authz", "allow"]`.
    public var rulePaths: [[String]] { ruleSets.map(\.path) }

    init(compiler: Compiler, data: Value) {
        self.root = compiler.root
        self.ruleSets = compiler.ruleSets
        self.builtins = compiler.builtins
        self.baseData = data
        self.packageRuleNames = compiler.packageRuleNames
    }

    /// Parses and compiles modules. Throws every error found (parse errors stop at the first per file).
    public static func compile(
        modules: [PolicyModule], data: Value = .emptyObject, defaultVersion: RegoVersion = .v1
    ) throws(PolicyErrors) -> CompiledPolicy {
        let c = Compiler()
        var errors: [PolicyError] = []
        var parsed: [Module] = []
        for m in modules {
            do {
                parsed.append(try Parser.parseModule(m.source, file: m.name, version: m.version ?? defaultVersion))
            } catch {
                errors.append(error)
            }
        }
        if !errors.isEmpty { throw PolicyErrors(errors) }
        for m in parsed { c.register(m) }
        if c.errors.isEmpty { c.compileAll() }
        if !c.errors.isEmpty {
            // A recursive policy (refused) leaves rule sets whose rules call themselves: break
            // those cycles, or every refused compile leaks them (found by FuzzRego).
            for ruleSet in c.ruleSets {
                ruleSet.rules = []
                ruleSet.defaultRule = nil
            }
            throw PolicyErrors(c.errors)
        }
        let conflicts = c.ruleSets.filter { conflictsWithData($0.path, data) }.map {
            PolicyError(.compile, "conflicting rule for data path \($0.path.joined(separator: "/")) found")
        }
        if !conflicts.isEmpty { throw PolicyErrors(conflicts) }
        return CompiledPolicy(compiler: c, data: data)
    }

    /// OPA refuses a rule at a path where the base data already has a value, or where the data
    /// has a non-object on the way (`data.t = 2` and a rule `t.p`): one of them would be hidden.
    static func conflictsWithData(_ path: [String], _ data: Value) -> Bool {
        var current = data
        for key in path {
            guard case .object(let o) = current else { return true }
            guard let next = o[.string(key)] else { return false }
            current = next
        }
        return true
    }

    /// Compiles a query such as `data.authz.allow` or `x := data.a[_]; x > 1`.
    public func prepare(query: String) throws(PolicyErrors) -> CompiledQuery {
        let lits: [Literal]
        do {
            lits = try Parser.parseQuery(query)
        } catch {
            throw PolicyErrors([error])
        }
        let c = Compiler(builtins: builtins, root: root, ruleSets: ruleSets, packageRuleNames: packageRuleNames)
        let q = c.compileQuery(lits, file: "query")
        if !c.errors.isEmpty { throw PolicyErrors(c.errors) }
        return q
    }

    /// Runs `body` with an evaluation context: a pooled one when available (its slot and rule-cache
    /// arrays are already allocated), returned cleared afterwards. At most 64 are kept.
    func withContext<R>(_ options: EvalOptions, _ body: (EvalContext) throws(PolicyError) -> R) throws(PolicyError) -> R {
        let ctx = contexts.withLock { $0.popLast() } ?? EvalContext(ruleSetCount: ruleSets.count)
        ctx.begin(
            input: options.input, data: options.data ?? baseData, strict: options.strictBuiltinErrors,
            print: options.print, clock: options.clock)
        defer {
            ctx.end()
            contexts.withLock { if $0.count < 64 { $0.append(ctx) } }
        }
        if options.networking.isNone { return try body(ctx) }
        let result: Result<R, PolicyError> = Networking.$current.withValue(options.networking) {
            do throws(PolicyError) { return .success(try body(ctx)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Evaluates a query; returns one binding set per solution (variables starting with `_` omitted).
    /// A query without variables that succeeds returns one empty binding set.
    public func eval(_ query: CompiledQuery, options: EvalOptions = EvalOptions()) throws(PolicyError) -> [[String: Value]] {
        try withContext(options) { ctx throws(PolicyError) in try eval(query, ctx) }
    }

    private func eval(_ query: CompiledQuery, _ ctx: EvalContext) throws(PolicyError) -> [[String: Value]] {
        let f = ctx.pushFrame(query.slotCount)
        var results: [[String: Value]] = []
        do {
            _ = try ctx.evalBody(query.body, 0, f) {
                var r: [String: Value] = [:]
                for (name, slot) in query.vars {
                    if let v = ctx.slots[f.base + slot] { r[name] = v }
                }
                results.append(r)
                return false
            }
        } catch let e as PolicyError {
            throw e
        } catch {
            throw PolicyError(.internalError, "\(error)")
        }
        return results
    }

    /// Evaluates a single-expression query (e.g. `data.authz.allow`) and returns its value,
    /// or nil when undefined. For a query made of one term, the value of that term.
    public func evalValue(_ query: CompiledQuery, options: EvalOptions = EvalOptions()) throws(PolicyError) -> Value? {
        try withContext(options) { ctx throws(PolicyError) in try evalValue(query, ctx) }
    }

    private func evalValue(_ query: CompiledQuery, _ ctx: EvalContext) throws(PolicyError) -> Value? {
        let f = ctx.pushFrame(query.slotCount)
        var out: Value?
        do {
            if query.body.count == 1, case .term(let t) = query.body[0].kind, !query.body[0].negated, query.body[0].with.isEmpty {
                _ = try ctx.evalTerm(t, f) { v in out = v; return true }
            } else {
                _ = try ctx.evalBody(query.body, 0, f) { out = .true; return true }
            }
        } catch let e as PolicyError {
            throw e
        } catch {
            throw PolicyError(.internalError, "\(error)")
        }
        return out
    }

    /// Fast path: the value of the rule (or document) at `path` under `data` (e.g. ["authz", "allow"]).
    public func evalRule(_ path: [String], options: EvalOptions = EvalOptions()) throws(PolicyError) -> Value? {
        try withContext(options) { ctx throws(PolicyError) in try evalRule(path, ctx) }
    }

    private func evalRule(_ path: [String], _ ctx: EvalContext) throws(PolicyError) -> Value? {
        do {
            if let node = root.find(path[...]), let rs = node.ruleSet, node.children.isEmpty {
                return try ctx.evalRuleSet(rs)
            }
            var out: Value?
            let f = ctx.pushFrame(0)
            let term = RuleContext(compiler: Compiler(builtins: builtins, root: root, ruleSets: ruleSets, packageRuleNames: packageRuleNames), module: Module(file: "", package: [], version: .v1)).makeDataRef(path, [])
            _ = try ctx.evalTerm(term, f) { v in out = v; return true }
            return out
        } catch let e as PolicyError {
            throw e
        } catch {
            throw PolicyError(.internalError, "\(error)")
        }
    }
}

extension Compiler {
    convenience init(builtins: [String: Builtin], root: RuleNode, ruleSets: [RuleSet], packageRuleNames: [String: Set<String>]) {
        self.init(builtins: builtins, root: root)
        self.ruleSets = ruleSets
        self.packageRuleNames = packageRuleNames
    }
}
