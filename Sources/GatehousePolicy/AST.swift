/// A position in a policy source file.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }
    public var description: String { "\(file):\(line):\(column)" }
}

/// Syntax version of a module.
public enum RegoVersion: Sendable, Hashable {
    case v0
    case v1
}

// MARK: - Parsed syntax tree

final class Term: @unchecked Sendable {
    var node: TermNode
    let loc: SourceLocation
    init(_ node: TermNode, _ loc: SourceLocation) {
        self.node = node
        self.loc = loc
    }
}

indirect enum TermNode {
    case scalar(Value)
    case variable(String)
    /// A reference: head term followed by path terms (`a.b[c]` → head `a`, path ["b", c]).
    case ref(Term, [Term])
    case array([Term])
    case object([(Term, Term)])
    case set([Term])
    case call(name: [String], args: [Term])
    case arrayCompr(Term, [Literal])
    case setCompr(Term, [Literal])
    case objectCompr(Term, Term, [Literal])
    /// A call whose function is given by a `data.` reference or import alias (resolved by the compiler).
    case refCall(Term, [Term])
}

struct WithModifier {
    let target: Term
    let value: Term
    let loc: SourceLocation
}

enum LiteralKind {
    case expr(Term)
    case unify(Term, Term)
    case assign(Term, Term)
    case someDecl([Term])
    case someIn(key: Term?, value: Term, collection: Term)
    case every(key: Term?, value: Term, domain: Term, body: [Literal])
}

final class Literal: @unchecked Sendable {
    var kind: LiteralKind
    var negated: Bool
    var with: [WithModifier]
    let loc: SourceLocation
    init(kind: LiteralKind, negated: Bool = false, with: [WithModifier] = [], loc: SourceLocation) {
        self.kind = kind
        self.negated = negated
        self.with = with
        self.loc = loc
    }
}

enum RuleHeadKind {
    case complete
    case partialSet
    /// Ref-head rule with variable keys (`p[k] := v`, `p[a][b] := v`).
    case partialObject
    case function
}

final class RuleDecl: @unchecked Sendable {
    /// The head reference path terms (first is the rule name as a string scalar).
    var headRef: [Term]
    var args: [Term]?
    var key: Term?
    var value: Term?
    var isAssign: Bool
    var isDefault: Bool
    var kind: RuleHeadKind = .complete
    var body: [Literal]
    var elses: [(value: Term?, body: [Literal], loc: SourceLocation)] = []
    let loc: SourceLocation
    var hasExplicitBody: Bool = true

    init(headRef: [Term], args: [Term]?, key: Term?, value: Term?, isAssign: Bool, isDefault: Bool, body: [Literal], loc: SourceLocation) {
        self.headRef = headRef
        self.args = args
        self.key = key
        self.value = value
        self.isAssign = isAssign
        self.isDefault = isDefault
        self.body = body
        self.loc = loc
    }
}

struct ImportDecl {
    /// The imported path: first element is "data" or "input" (or "future"/"rego").
    let path: [String]
    let alias: String?
    let loc: SourceLocation
    var name: String { alias ?? path.last ?? "" }
}

final class Module: @unchecked Sendable {
    let file: String
    var package: [String]
    var imports: [ImportDecl] = []
    var rules: [RuleDecl] = []
    var version: RegoVersion
    init(file: String, package: [String], version: RegoVersion) {
        self.file = file
        self.package = package
        self.version = version
    }
}

extension TermNode {
    var stringName: String? {
        if case .scalar(.string(let s)) = self { return s }
        return nil
    }
}
