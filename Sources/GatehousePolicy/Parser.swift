/// Recursive-descent parser for Rego modules and queries (v0 and v1 syntax).
struct Parser {
    var toks: [Token]
    var p = 0
    let file: String
    var version: RegoVersion
    /// Nesting of template strings being parsed (names their comprehension variables apart).
    var templateDepth = 0

    static let keywords: Set<String> = [
        "not", "with", "as", "some", "every", "in", "if", "contains", "else", "default", "import", "package",
        "true", "false", "null",
    ]

    init(source: String, file: String, version: RegoVersion) throws(PolicyError) {
        var lx = Lexer(source, file: file)
        self.toks = try lx.tokenize()
        self.file = file
        self.version = version
    }

    // MARK: token helpers

    var tok: Token { toks[p] }
    func peek(_ n: Int = 1) -> Token { toks[min(p + n, toks.count - 1)] }
    func loc(_ t: Token) -> SourceLocation { SourceLocation(file: file, line: t.line, column: t.col) }
    var here: SourceLocation { loc(tok) }

    func isOp(_ s: String) -> Bool { tok.kind == .op && tok.text == s }
    func isKw(_ s: String) -> Bool { tok.kind == .ident && tok.text == s }

    mutating func next() { if p < toks.count - 1 { p += 1 } }

    func err(_ m: String, _ t: Token? = nil) -> PolicyError {
        PolicyError(.parse, m, at: loc(t ?? tok))
    }

    func describe(_ t: Token) -> String {
        switch t.kind {
        case .eof: return "end of file"
        case .string: return "string"
        default: return t.text
        }
    }

    mutating func expectOp(_ s: String) throws(PolicyError) {
        guard isOp(s) else { throw err("unexpected \(describe(tok)) token: expected \(s)") }
        next()
    }

    // MARK: module

    mutating func parseModule() throws(PolicyError) -> Module {
        guard isKw("package") else { throw err("package expected") }
        next()
        let pkgTerm = try parseRefPath()
        let mod = Module(file: file, package: pkgTerm, version: version)
        while tok.kind != .eof {
            // OPA accepts imports after rules too; they apply to the whole module.
            if isKw("import") { try parseImport(mod); continue }
            if isKw("package") { throw err("unexpected package keyword") }
            mod.rules.append(contentsOf: try parseRule())
        }
        return mod
    }

    mutating func parseImport(_ mod: Module) throws(PolicyError) {
        let l = here
        next()
        let path = try parseRefPath()
        var alias: String?
        if isKw("as") {
            next()
            guard tok.kind == .ident else { throw err("expected alias name") }
            alias = tok.text
            next()
        }
        guard let root = path.first, ["data", "input", "future", "rego"].contains(root) else {
            throw PolicyError(.parse, "unexpected import path, must begin with one of: {data, future, input, rego}", at: l)
        }
        if root == "future" {
            guard path.count >= 2, path[1] == "keywords", path.count <= 3,
                path.count == 2 || ["in", "every", "if", "contains"].contains(path[2])
            else { throw PolicyError(.parse, "invalid import \(path.joined(separator: ".")), must be a known future keyword", at: l) }
            if version == .v1, mod.rules.isEmpty, !mod.imports.contains(where: { $0.path == ["rego", "v1"] }) {
                // `import future.keywords` marks a module written for OPA 0.x with the keywords enabled
                // (Gatehouse's compatibility choice; OPA 1.x reads such a module as v1).
                self.version = .v0
                mod.version = .v0
            }
        }
        if root == "rego" {
            guard path == ["rego", "v1"] else { throw PolicyError(.parse, "invalid import, only rego.v1 is allowed", at: l) }
            self.version = .v1
            mod.version = .v1
        }
        mod.imports.append(ImportDecl(path: path, alias: alias, loc: l))
    }

    /// Parses `a.b["c"].d` into string components.
    mutating func parseRefPath() throws(PolicyError) -> [String] {
        guard tok.kind == .ident else { throw err("expected reference") }
        var path = [tok.text]
        next()
        while true {
            if isOp("."), !tok.spaceBefore {
                next()
                guard tok.kind == .ident, !tok.spaceBefore else { throw err("expected identifier after '.'") }
                path.append(tok.text)
                next()
            } else if isOp("["), !tok.spaceBefore {
                next()
                guard tok.kind == .string else { throw err("expected string in reference") }
                path.append(tok.text)
                next()
                try expectOp("]")
            } else {
                break
            }
        }
        return path
    }

    // MARK: rules

    mutating func parseRule() throws(PolicyError) -> [RuleDecl] {
        let start = tok
        var isDefault = false
        if isKw("default") {
            isDefault = true
            next()
        }
        guard tok.kind == .ident, !Parser.keywords.contains(tok.text) else {
            throw err("unexpected \(describe(tok)) token: expected rule")
        }
        let headRef = try parseHeadRef()
        var args: [Term]?
        if isOp("("), !tok.spaceBefore {
            next()
            var a: [Term] = []
            while !isOp(")") {
                a.append(try parseExpr(noOr: false))
                if isOp(",") { next() } else { break }
            }
            try expectOp(")")
            // `f() := 5` is a complete rule named f in OPA, not a function of no arguments.
            args = a.isEmpty ? nil : a
        }
        var key: Term?
        var value: Term?
        var isAssign = false
        var isContains = false
        if isKw("contains") {
            next()
            key = try parseExpr(noOr: false)
            isContains = true
        }
        if isOp(":=") || isOp("=") {
            isAssign = isOp(":=")
            next()
            value = try parseExpr(noOr: false)
        }
        let rule = RuleDecl(headRef: headRef, args: args, key: key, value: value, isAssign: isAssign, isDefault: isDefault, body: [], loc: loc(start))
        classify(rule, isContains: isContains)
        if isDefault {
            // `default p[x] := v` is refused by the compiler (as OPA does), a default set rule here.
            if rule.kind == .partialSet { throw PolicyError(.parse, "default rules must not have a key", at: rule.loc) }
            if isOp("{") || isKw("if") { throw err("default rules must not have a body") }
            if let v = value, let what = Parser.nonConstant(v) {
                throw PolicyError(.parse, "illegal default rule (value cannot contain \(what))", at: rule.loc)
            }
            return [rule]
        }
        // Body.
        var rules: [RuleDecl] = [rule]
        if isKw("if") {
            next()
            rule.body = try parseRuleBody()
        } else if isOp("{") {
            if version == .v1 { throw err("`if` keyword is required before rule body") }
            rule.body = try parseRuleBody()
        } else {
            rule.hasExplicitBody = false
            if version == .v1, rule.value == nil, rule.args == nil, !isContains { throw bareHeadError(rule) }
        }
        // Extra bodies (v0: `p { a } { b }`).
        while isOp("{") {
            let extra = RuleDecl(headRef: rule.headRef, args: rule.args, key: rule.key, value: rule.value, isAssign: rule.isAssign, isDefault: false, body: [], loc: here)
            extra.kind = rule.kind
            extra.body = try parseRuleBody()
            rules.append(extra)
        }
        try parseElses(rule)
        return rules
    }

    /// A v1 rule head with neither value nor body (`p`, `p.q`, `p["a"]`): OPA reads it as a query,
    /// which is no rule (so `deny deny` or `q default ...` is a parse error, as in OPA).
    func bareHeadError(_ rule: RuleDecl) -> PolicyError {
        let message: String
        if rule.headRef.count == 1 && rule.key == nil {
            message = "var cannot be used for rule name"
        } else if case .scalar(.string) = rule.headRef.last!.node, rule.key == nil {
            message = "rule must have value assignment and/or body declaration"
        } else {
            message = "`contains` keyword is required for partial set rules"
        }
        return PolicyError(.parse, message, at: rule.loc)
    }

    /// The kind of a rule from its head (`p contains x`, `p[x] := v`, `f(x)`, v0's `p[x] { ... }`).
    func classify(_ rule: RuleDecl, isContains: Bool) {
        if rule.args != nil {
            rule.kind = .function
        } else if isContains {
            rule.kind = .partialSet
        } else if (version == .v0 || isOp("{")) && rule.headRef.count == 2 && rule.value == nil && !rule.isDefault {
            rule.kind = .partialSet
            rule.key = rule.headRef[1]
            rule.headRef = [rule.headRef[0]]
        } else if let firstVar = rule.headRef.indices.dropFirst().first(where: { idx in
            if case .scalar(.string) = rule.headRef[idx].node { return false }
            return true
        }) {
            rule.kind = .partialObject
            _ = firstVar
        } else {
            rule.kind = .complete
        }
    }

    /// The rule name and its reference path (`a.b[x].c`).
    mutating func parseHeadRef() throws(PolicyError) -> [Term] {
        var headRef: [Term] = [Term(.scalar(.string(tok.text)), loc(tok))]
        next()
        while true {
            if isOp("."), !tok.spaceBefore {
                next()
                guard tok.kind == .ident, !tok.spaceBefore else { throw err("unexpected whitespace: expected identifier") }
                headRef.append(Term(.scalar(.string(tok.text)), loc(tok)))
                next()
            } else if isOp("["), !tok.spaceBefore {
                next()
                headRef.append(try parseExpr(noOr: false))
                try expectOp("]")
            } else {
                return headRef
            }
        }
    }

    /// `else [:= v] [if body]` branches of a complete rule or function.
    mutating func parseElses(_ rule: RuleDecl) throws(PolicyError) {
        while isKw("else") {
            let el = here
            if rule.kind != .complete && rule.kind != .function {
                throw err("else keyword cannot be used on multi-value rules")
            }
            next()
            var ev: Term?
            if isOp(":=") || isOp("=") {
                next()
                ev = try parseExpr(noOr: false)
            }
            var body: [Literal] = []
            if isKw("if") {
                next()
                body = try parseRuleBody()
            } else if isOp("{") {
                if version == .v1 { throw err("`if` keyword is required before else body") }
                body = try parseRuleBody()
            } else if ev == nil {
                throw err("unexpected \(describe(tok)) token: expected else value term or rule body")
            }
            rule.elses.append((ev, body, el))
        }
    }

    /// What makes a default rule's value non-constant (a variable, reference or call outside a
    /// comprehension), or nil when it is constant.
    static func nonConstant(_ t: Term) -> String? {
        switch t.node {
        case .scalar, .arrayCompr, .setCompr, .objectCompr: return nil
        case .variable: return "var"
        case .ref: return "ref"
        case .call(name: ["set"], args: let args) where args.isEmpty: return nil  // `set()`, the empty set
        case .call, .refCall: return "call"
        case .array(let a), .set(let a): return a.lazy.compactMap { nonConstant($0) }.first
        case .object(let pairs): return pairs.lazy.compactMap { nonConstant($0.0) ?? nonConstant($0.1) }.first
        }
    }

    /// Either `{ query }` or a single literal (after `if`).
    mutating func parseRuleBody() throws(PolicyError) -> [Literal] {
        if isOp("{") {
            // `if {` usually opens a body, but may start an object/set term (`if {x: 1 | ...}`): backtrack.
            let save = p
            do throws(PolicyError) {
                next()
                let body = try parseQuery(until: "}")
                try expectOp("}")
                if body.isEmpty { throw err("found empty body") }
                return body
            } catch {
                let first = error
                p = save
                if let lit = try? parseLiteral(), tok.newlineBefore || tok.kind == .eof || isOp("}") || isKw("else") {
                    return [lit]
                }
                throw first
            }
        }
        let lit = try parseLiteral()
        return [lit]
    }

    /// Literals separated by ';' or newlines, until the closing operator (not consumed) or EOF.
    mutating func parseQuery(until close: String?) throws(PolicyError) -> [Literal] {
        var lits: [Literal] = []
        var afterSemicolon = false
        while true {
            // A `;` separates two literals: none may be empty (`a; ; b`, `{ ; a }`, `{ a; }` are errors in OPA).
            if isOp(";") || (afterSemicolon && (tok.kind == .eof || close.map { isOp($0) } == true)) {
                throw err("unexpected \(describe(tok)) token")
            }
            if let c = close, isOp(c) { break }
            if tok.kind == .eof {
                if close != nil { throw err("unexpected end of file: expected \(close!)") }
                break
            }
            let lit = try parseLiteral()
            lits.append(lit)
            afterSemicolon = isOp(";")
            if afterSemicolon { next(); continue }
            if let c = close, isOp(c) { break }
            if tok.kind == .eof { continue }
            if !tok.newlineBefore {
                throw err("unexpected \(describe(tok)) token: expected \\n or ; or \(close ?? "end of query")")
            }
        }
        return lits
    }

    // MARK: literals

    mutating func parseLiteral() throws(PolicyError) -> Literal {
        let l = here
        if isKw("some") {
            next()
            var terms: [Term] = [try parseRelation(noOr: false)]
            while isOp(",") {
                next()
                terms.append(try parseRelation(noOr: false))
            }
            if isKw("in") {
                next()
                let coll = try parseRelation(noOr: false)
                guard terms.count <= 2 else { throw PolicyError(.parse, "unexpected , in some declaration", at: l) }
                let lit = Literal(kind: .someIn(key: terms.count == 2 ? terms[0] : nil, value: terms.last!, collection: coll), loc: l)
                try parseWith(lit)
                return lit
            }
            for t in terms {
                guard case .variable = t.node else {
                    throw PolicyError(.parse, "expected var in some declaration", at: t.loc)
                }
            }
            return Literal(kind: .someDecl(terms), loc: l)
        }
        if isKw("every") {
            next()
            let first = try parseRelation(noOr: false)
            var key: Term?
            var value = first
            if isOp(",") {
                next()
                key = first
                value = try parseRelation(noOr: false)
            }
            guard isKw("in") else { throw err("unexpected \(describe(tok)) token: expected in") }
            next()
            let domain = try parseRelation(noOr: false)
            guard isOp("{") else { throw err("unexpected \(describe(tok)) token: expected {") }
            next()
            let body = try parseQuery(until: "}")
            try expectOp("}")
            let lit = Literal(kind: .every(key: key, value: value, domain: domain, body: body), loc: l)
            try parseWith(lit)
            return lit
        }
        var negated = false
        if isKw("not") {
            negated = true
            next()
        }
        let lhs = try parseInExpr(literalLevel: true)
        var kind: LiteralKind = .expr(lhs)
        if isOp(":=") || isOp("=") {
            let assign = isOp(":=")
            next()
            let rhs = try parseInExpr(literalLevel: false)
            kind = assign ? .assign(lhs, rhs) : .unify(lhs, rhs)
        }
        let lit = Literal(kind: kind, negated: negated, loc: l)
        try parseWith(lit)
        return lit
    }

    mutating func parseWith(_ lit: Literal) throws(PolicyError) {
        while isKw("with") {
            let l = here
            next()
            let target = try parseTerm()
            guard isKw("as") else { throw err("expected as") }
            next()
            let value = try parseInExpr(literalLevel: false)
            lit.with.append(WithModifier(target: target, value: value, loc: l))
        }
    }

    // MARK: expressions

    func call(_ name: String, _ args: [Term], _ l: SourceLocation) -> Term {
        Term(.call(name: [name], args: args), l)
    }

    /// The whole expression: comparison and `in` (and at literal level `k, v in xs`).
    mutating func parseExpr(noOr: Bool) throws(PolicyError) -> Term {
        var lhs = try parseRelation(noOr: noOr)
        while isKw("in") {
            next()
            let rhs = try parseRelation(noOr: noOr)
            lhs = call("internal.member_2", [lhs, rhs], lhs.loc)
        }
        return lhs
    }

    mutating func parseInExpr(literalLevel: Bool) throws(PolicyError) -> Term {
        var lhs = try parseRelation(noOr: false)
        if literalLevel, isOp(",") {
            next()
            let v = try parseRelation(noOr: false)
            guard isKw("in") else { throw err("unexpected \(describe(tok)) token: expected in") }
            next()
            let coll = try parseRelation(noOr: false)
            lhs = call("internal.member_3", [lhs, v, coll], lhs.loc)
        }
        while isKw("in") {
            next()
            let rhs = try parseRelation(noOr: false)
            lhs = call("internal.member_2", [lhs, rhs], lhs.loc)
        }
        return lhs
    }

    static let relOps: [String: String] = ["==": "equal", "!=": "neq", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"]

    mutating func parseRelation(noOr: Bool) throws(PolicyError) -> Term {
        var lhs = try parseOr(noOr: noOr)
        while tok.kind == .op, let name = Parser.relOps[tok.text] {
            next()
            let rhs = try parseOr(noOr: noOr)
            lhs = call(name, [lhs, rhs], lhs.loc)
        }
        return lhs
    }

    mutating func parseOr(noOr: Bool) throws(PolicyError) -> Term {
        var lhs = try parseAnd()
        while !noOr, isOp("|") {
            next()
            let rhs = try parseAnd()
            lhs = call("or", [lhs, rhs], lhs.loc)
        }
        return lhs
    }

    mutating func parseAnd() throws(PolicyError) -> Term {
        var lhs = try parseArith()
        while isOp("&") {
            next()
            let rhs = try parseArith()
            lhs = call("and", [lhs, rhs], lhs.loc)
        }
        return lhs
    }

    mutating func parseArith() throws(PolicyError) -> Term {
        var lhs = try parseFactor()
        while isOp("+") || isOp("-") {
            let name = isOp("+") ? "plus" : "minus"
            next()
            let rhs = try parseFactor()
            lhs = call(name, [lhs, rhs], lhs.loc)
        }
        return lhs
    }

    mutating func parseFactor() throws(PolicyError) -> Term {
        var lhs = try parseTerm()
        while isOp("*") || isOp("/") || isOp("%") {
            let name = isOp("*") ? "mul" : (isOp("/") ? "div" : "rem")
            next()
            let rhs = try parseTerm()
            lhs = call(name, [lhs, rhs], lhs.loc)
        }
        return lhs
    }

    // MARK: terms

    mutating func parseTerm() throws(PolicyError) -> Term {
        let t = tok
        let l = loc(t)
        var term: Term
        switch t.kind {
        case .number:
            // Scalars take no reference suffixes (`"abc"[0]` is a parse error in OPA).
            guard let n = Number(parsing: t.text) else { throw err("invalid number") }
            next()
            return Term(.scalar(.number(n)), l)
        case .string:
            next()
            return Term(.scalar(.string(t.text)), l)
        case .template:
            return try parseTemplate()
        case .ident:
            switch t.text {
            case "true": next(); return Term(.scalar(.bool(true)), l)
            case "false": next(); return Term(.scalar(.bool(false)), l)
            case "null": next(); return Term(.scalar(.null), l)
            default:
                // `contains(...)` is the builtin; otherwise keywords are no terms.
                let isCall = (t.text == "contains" || t.text == "if") && peek().kind == .op && peek().text == "(" && !peek().spaceBefore
                if Parser.keywords.contains(t.text) && !isCall {
                    throw err("unexpected \(t.text) keyword")
                }
                next()
                term = Term(.variable(t.text), l)
            }
        case .op:
            switch t.text {
            case "(":
                next()
                let inner = try parseInExpr(literalLevel: true)
                try expectOp(")")
                term = inner
                // keep parenthesized term as-is; refs may follow
            case "[":
                term = try parseArrayOrCompr()
            case "{":
                term = try parseBraced()
            case "-":
                next()
                if tok.kind == .number, !tok.spaceBefore {
                    guard let n = Number(parsing: tok.text) else { throw err("invalid number") }
                    next()
                    return Term(.scalar(.number(n.negated)), l)
                } else {
                    // OPA negates a number or a variable, reference or call (`-x`, `-count(a)`) only.
                    guard tok.kind == .number || (tok.kind == .ident && !["true", "false", "null"].contains(tok.text)) else {
                        throw err("unexpected \(describe(tok)) token: expected number")
                    }
                    let inner = try parseTerm()
                    return call("minus", [Term(.scalar(.int(0)), l), inner], l)
                }
            default:
                throw err("unexpected \(t.text) token")
            }
        case .eof:
            throw err("unexpected eof token")
        }
        return try parseSuffixes(term)
    }

    mutating func parseSuffixes(_ base: Term) throws(PolicyError) -> Term {
        var head = base
        var path: [Term] = []
        func flush() -> Term {
            if path.isEmpty { return head }
            return Term(.ref(head, path), head.loc)
        }
        while true {
            if isOp("."), !tok.spaceBefore {
                next()
                // `x.` then whitespace (a newline, say) is no reference in OPA.
                guard tok.kind == .ident, !tok.spaceBefore else { throw err("unexpected \(describe(tok)) token: expected identifier") }
                path.append(Term(.scalar(.string(tok.text)), loc(tok)))
                next()
            } else if isOp("["), !tok.spaceBefore {
                next()
                path.append(try parseExpr(noOr: false))
                try expectOp("]")
            } else if isOp("("), !tok.spaceBefore {
                // Call: function name must be a var or dotted path.
                var name: [String] = []
                if case .variable(let v) = head.node { name = [v] } else {
                    throw err("illegal call")
                }
                for seg in path {
                    guard case .scalar(.string(let s)) = seg.node else { throw err("illegal call: function name must be a dotted path") }
                    name.append(s)
                }
                next()
                var args: [Term] = []
                while !isOp(")") {
                    args.append(try parseExpr(noOr: false))
                    if isOp(",") { next() } else { break }
                }
                try expectOp(")")
                head = Term(.call(name: name, args: args), head.loc)
                path = []
            } else {
                break
            }
        }
        return flush()
    }

    /// `[...]`: a comprehension when a single term (no infix operators, as in OPA) is followed by `|`.
    mutating func parseArrayOrCompr() throws(PolicyError) -> Term {
        let l = here
        next()  // [
        if isOp("]") { next(); return Term(.array([]), l) }
        if try skipLeadingComma("]") { return Term(.array(try parseElements("]")), l) }
        let save = p
        let head = try parseTerm()
        if isOp("|") {
            next()
            return Term(.arrayCompr(head, try parseComprBody("]")), l)
        }
        p = save
        return Term(.array(try parseElements("]")), l)
    }

    /// OPA's leading comma in a collection literal (`[, 1]`, `{, "a"}`): skipped, once, and the
    /// literal is then no comprehension; `[,]` is an error.
    mutating func skipLeadingComma(_ close: String) throws(PolicyError) -> Bool {
        guard isOp(",") else { return false }
        next()
        if isOp(close) || isOp(",") { throw err("unexpected \(describe(tok)) token") }
        return true
    }

    /// A comprehension body up to `close` (consumed); an empty body is an error.
    mutating func parseComprBody(_ close: String) throws(PolicyError) -> [Literal] {
        let body = try parseQuery(until: close)
        if body.isEmpty { throw err("unexpected \(close) token: expected comprehension body") }
        try expectOp(close)
        return body
    }

    /// Comma-separated expressions up to `close` (consumed); a trailing comma is allowed.
    mutating func parseElements(_ close: String) throws(PolicyError) -> [Term] {
        var elems: [Term] = []
        while !isOp(close) {
            elems.append(try parseExpr(noOr: false))
            if isOp(",") { next() } else { break }
        }
        try expectOp(close)
        return elems
    }

    /// `{...}`: object, set, or their comprehensions (heads are single terms, as in OPA).
    mutating func parseBraced() throws(PolicyError) -> Term {
        let l = here
        next()  // {
        if isOp("}") { next(); return Term(.object([]), l) }
        let noCompr = try skipLeadingComma("}")
        let save = p
        var key = try parseTerm()
        if isOp("|"), !noCompr {
            next()
            return Term(.setCompr(key, try parseComprBody("}")), l)
        }
        if !isOp(":") {
            p = save
            key = try parseExpr(noOr: false)
            if !isOp(":") {
                p = save
                return Term(.set(try parseElements("}")), l)
            }
        }
        next()  // :
        let valueStart = p
        let v = try parseTerm()
        if isOp("|"), !noCompr {
            next()
            return Term(.objectCompr(key, v, try parseComprBody("}")), l)
        }
        p = valueStart
        var pairs: [(Term, Term)] = [(key, try parseExpr(noOr: false))]
        while isOp(",") {
            next()
            if isOp("}") { break }
            let k = try parseExpr(noOr: false)
            try expectOp(":")
            pairs.append((k, try parseExpr(noOr: false)))
        }
        try expectOp("}")
        return Term(.object(pairs), l)
    }

    /// `$"a {x} b"` becomes `internal.template_string(["a ", {v | v = x}, " b"])`: each expression
    /// is a set comprehension, so an undefined one shows as `<undefined>` (OPA's lowering).
    mutating func parseTemplate() throws(PolicyError) -> Term {
        let t = tok
        let l = loc(t)
        next()
        let b = Array(t.text.utf8)
        var parts: [Term] = []
        var lit: [UInt8] = []
        var i = 0
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\\"), !t.isRawString {
                if i + 1 < b.count, b[i + 1] == UInt8(ascii: "{") { lit.append(b[i + 1]) } else { lit.append(contentsOf: b[i..<min(i + 2, b.count)]) }
                i += 2
                continue
            }
            guard c == UInt8(ascii: "{") else {
                lit.append(c)
                i += 1
                continue
            }
            if !lit.isEmpty { parts.append(try templateLiteral(lit, raw: t.isRawString, l)) }
            lit = []
            let end = Parser.closingBrace(b, i)
            guard end < b.count else { throw err("unterminated template expression", t) }
            parts.append(try templateExpression(String(decoding: b[(i + 1)..<end], as: UTF8.self), parts.count, l))
            i = end + 1
        }
        if !lit.isEmpty || parts.isEmpty { parts.append(try templateLiteral(lit, raw: t.isRawString, l)) }
        return Term(.call(name: ["internal", "template_string"], args: [Term(.array(parts), l)]), l)
    }

    func templateLiteral(_ lit: [UInt8], raw: Bool, _ l: SourceLocation) throws(PolicyError) -> Term {
        if raw { return Term(.scalar(.string(String(decoding: lit, as: UTF8.self))), l) }
        let quoted = "\"" + Lexer.escapingControls(lit[...]) + "\""
        guard case .string(let s)? = try? JSON.parse(quoted) else { throw PolicyError(.parse, "invalid template string", at: l) }
        return Term(.scalar(.string(s)), l)
    }

    /// `{v | v = <expr>}` for one template expression.
    func templateExpression(_ text: String, _ index: Int, _ l: SourceLocation) throws(PolicyError) -> Term {
        var sub = try Parser(source: text, file: file, version: version)
        sub.templateDepth = templateDepth + 1
        let e = try sub.parseExpr(noOr: false)
        guard sub.tok.kind == .eof else { throw PolicyError(.parse, "unexpected \(sub.describe(sub.tok)) token in template expression", at: l) }
        let v = Term(.variable("$t\(templateDepth).\(l.line).\(l.column).\(index)"), l)
        return Term(.setCompr(v, [Literal(kind: .unify(v, e), loc: l)]), l)
    }

    /// The index of the `}` closing the `{` at `open` (stepping over nested braces and strings), or `b.count`.
    static func closingBrace(_ b: [UInt8], _ open: Int) -> Int {
        var depth = 0
        var i = open
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\""), depth > 0 {
                i += 1
                while i < b.count, b[i] != c { i += b[i] == UInt8(ascii: "\\") ? 2 : 1 }
            } else if c == UInt8(ascii: "`"), depth > 0 {
                i += 1
                while i < b.count, b[i] != c { i += 1 }
            } else if c == UInt8(ascii: "{") {
                depth += 1
            } else if c == UInt8(ascii: "}") {
                depth -= 1
                if depth == 0 { return i }
            }
            i += 1
        }
        return b.count
    }
}

extension Parser {
    static func parseModule(_ source: String, file: String, version: RegoVersion = .v1) throws(PolicyError) -> Module {
        var p = try Parser(source: source, file: file, version: version)
        return try p.parseModule()
    }

    static func parseQuery(_ source: String, file: String = "query") throws(PolicyError) -> [Literal] {
        var p = try Parser(source: source, file: file, version: .v1)
        let q = try p.parseQuery(until: nil)
        if q.isEmpty { throw PolicyError(.parse, "empty query", at: SourceLocation(file: file, line: 1, column: 1)) }
        return q
    }
}
