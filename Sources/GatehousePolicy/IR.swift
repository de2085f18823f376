/// Compiled (resolved, reordered) representation evaluated by `Evaluator`.
/// All of it is immutable after compilation and safe to share across threads.

typealias BuiltinImpl = @Sendable ([Value], EvalContext) throws -> Value?

final class Builtin: @unchecked Sendable {
    let name: String
    let arity: Int
    let impl: BuiltinImpl
    /// True when errors of this builtin fail the query even when builtin errors are not strict.
    let alwaysStrict: Bool
    /// `print` and `walk` are evaluated by the evaluator itself.
    let isSpecial: Bool
    /// `x in xs` (`internal.member_2`): evaluated inline when both operands are simple (no argument array).
    let isMember2: Bool
    init(_ name: String, _ arity: Int, alwaysStrict: Bool = false, _ impl: @escaping BuiltinImpl) {
        self.isSpecial = name == "print" || name == "walk"
        self.isMember2 = name == "internal.member_2"
        self.name = name
        self.arity = arity
        self.impl = impl
        self.alwaysStrict = alwaysStrict
    }
}

enum Callee {
    case builtin(Builtin)
    case function(RuleSet)

    var name: String {
        switch self {
        case .builtin(let b): return b.name
        case .function(let r): return "data." + r.path.joined(separator: ".")
        }
    }
}

enum ComprKind { case array, set, object }

final class Compr: @unchecked Sendable {
    let kind: ComprKind
    let head: CTerm
    let head2: CTerm?
    let body: [CExpr]
    /// Outer slots referenced by the comprehension (must be bound before it is evaluated).
    let free: Set<Int>
    init(kind: ComprKind, head: CTerm, head2: CTerm?, body: [CExpr], free: Set<Int>) {
        self.kind = kind
        self.head = head
        self.head2 = head2
        self.body = body
        self.free = free
    }
}

/// Only the large and recursive cases are boxed: constants and slots (the hot cases) are stored
/// inline, so matching them costs no retain of a box.
enum CTerm {
    case const(Value)
    case slot(Int)
    case input
    /// `data` reference: `node` is the rule-tree node reached by the static prefix `prefix`; `rest` follows.
    indirect case dataRef(node: RuleNode?, prefix: [String], rest: [CTerm])
    indirect case ref(CTerm, [CTerm])
    case array([CTerm])
    case object([(CTerm, CTerm)])
    case set([CTerm])
    indirect case call(Callee, [CTerm], SourceLocation)
    case compr(Compr)

    var isConst: Bool { if case .const = self { return true }; return false }
}

enum WithTarget {
    case input([String])
    case data([String])
    case function(String)
}

struct CWith {
    let target: WithTarget
    let value: CTerm
    /// For function mocks: the replacement callee when the value names a function.
    let mockCallee: Callee?
}

enum CExprKind {
    case term(CTerm)
    case unify(CTerm, CTerm)
    case someIn(key: CTerm?, value: CTerm, collection: CTerm)
    case every(key: CTerm?, value: CTerm, domain: CTerm, body: [CExpr], free: Set<Int>)
    case noop
}

final class CExpr: @unchecked Sendable {
    let kind: CExprKind
    let negated: Bool
    let with: [CWith]
    /// `!with.isEmpty`, read on every evaluation of the expression.
    let hasWith: Bool
    let loc: SourceLocation
    init(kind: CExprKind, negated: Bool, with: [CWith], loc: SourceLocation) {
        self.kind = kind
        self.negated = negated
        self.with = with
        self.hasWith = !with.isEmpty
        self.loc = loc
    }
}

/// Fields are set by the compiler and read-only afterwards (hence no dynamic exclusivity checks).
final class CRule: @unchecked Sendable {
    @exclusivity(unchecked) var args: [CTerm] = []
    @exclusivity(unchecked) var keys: [CTerm] = []
    @exclusivity(unchecked) var value: CTerm = .const(.true)
    @exclusivity(unchecked) var body: [CExpr] = []
    @exclusivity(unchecked) var elses: [(value: CTerm, body: [CExpr])] = []
    @exclusivity(unchecked) var slotCount = 0
    @exclusivity(unchecked) var dottedPath = ""
    /// Paths into `input` that must exist for the body to be evaluated (InputGuards).
    @exclusivity(unchecked) var inputGuards: [[Value]] = []
    let loc: SourceLocation
    let decl: RuleDecl
    let module: Module
    init(decl: RuleDecl, module: Module) {
        self.decl = decl
        self.module = module
        self.loc = decl.loc
    }
}

enum RuleKind: Equatable {
    case complete, partialSet, partialObject, function
}

/// All definitions of one rule (same path).
final class RuleSet: @unchecked Sendable {
    let id: Int
    let path: [String]
    let kind: RuleKind
    @exclusivity(unchecked) var rules: [CRule] = []
    @exclusivity(unchecked) var defaultRule: CRule?
    @exclusivity(unchecked) var arity: Int = 0
    /// True when every definition's head arguments are plain variables or constants (no array or
    /// object patterns), so calls can bind arguments straight into slots (`callFunctionSimple`).
    @exclusivity(unchecked) var plainHeads = false
    /// `data.a.b.c`, computed once (used in error messages on hot paths).
    let dottedPath: String
    init(id: Int, path: [String], kind: RuleKind) {
        self.id = id
        self.path = path
        self.kind = kind
        self.dottedPath = "data." + path.joined(separator: ".")
    }
}

/// Node of the virtual document tree under `data`.
final class RuleNode: @unchecked Sendable {
    let path: [String]
    @exclusivity(unchecked) var children: [String: RuleNode] = [:]
    @exclusivity(unchecked) var ruleSet: RuleSet?
    init(path: [String]) { self.path = path }

    func child(_ name: String) -> RuleNode {
        if let c = children[name] { return c }
        let c = RuleNode(path: path + [name])
        children[name] = c
        return c
    }

    func find(_ p: ArraySlice<String>) -> RuleNode? {
        var n: RuleNode = self
        for s in p {
            guard let c = n.children[s] else { return nil }
            n = c
        }
        return n
    }

    var hasRules: Bool {
        if ruleSet != nil { return true }
        return children.values.contains { $0.hasRules }
    }
}
