/// Recursive-descent parser for Rego modules and queries (v0 and v1 syntax).
struct Parser {
    var toks: [Token]
    var p = 0
    let file: String
    var version: RegoVersion

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
        while isKw("import") {
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
            if root == "future" && path.count >= 2 && path[1] == "keywords" && version == .v1 {
                // `import future.keywords` marks a module written for OPA 0.x with the keywords enabled.
                if !mod.imports.contains(where: { $0.path == ["rego", "v1"] }) { self.version = .v0; mod.version = .v0 }
            }
            if path == ["rego", "v1"] { self.version = .v1; mod.version = .v1 }
            mod.imports.append(ImportDecl(path: path, alias: alias, loc: l))
        }
        while tok.kind != .eof {
            if isKw("import") { throw err("imports must appear before rules") }
            if isKw("package") { throw err("unexpected package keyword") }
            mod.rules.append(contentsOf: try parseRule())
        }
        return mod
    }

    /// Parses `a.b["c"].d` into string components.
    mutating func parseRefPath() throws(PolicyError) -> [String] {
        guard tok.kind == .ident else { throw err("expected reference") }
        var path = [tok.text]
        next()
        while true {
            if isOp("."), !tok.spaceBefore {
                next()
                guard tok.kind == .ident else { throw err("expected identifier after '.'") }
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
        guard tok.kind == .ident, !Parser.keywords.contains(tok.text) || tok.text == "contains" || tok.text == "if" else {
            throw err("unexpected \(describe(tok)) token: expected rule")
        }
        // Head reference.
        var headRef: [Term] = [Term(.scalar(.string(tok.text)), loc(tok))]
        next()
        while true {
            if isOp("."), !tok.spaceBefore {
                next()
                guard tok.kind == .ident else { throw err("expected identifier") }
                headRef.append(Term(.scalar(.string(tok.text)), loc(tok)))
                next()
            } else if isOp("["), !tok.spaceBefore {
                next()
                headRef.append(try parseExpr(noOr: false))
                try expectOp("]")
            } else {
                break
            }
        }
        var args: [Term]?
        if isOp("("), !tok.spaceBefore {
            next()
            var a: [Term] = []
            while !isOp(")") {
                a.append(try parseExpr(noOr: false))
                if isOp(",") { next() } else { break }
            }
            try expectOp(")")
            args = a
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
        // Classify.
        if args != nil {
            rule.kind = .function
        } else if isContains {
            rule.kind = .partialSet
        } else if (version == .v0 || isOp("{")) && headRef.count == 2 && value == nil && !isDefault {
            rule.kind = .partialSet
            rule.key = headRef[1]
            rule.headRef = [headRef[0]]
        } else if let firstVar = headRef.indices.dropFirst().first(where: { idx in
            if case .scalar(.string) = headRef[idx].node { return false }
            return true
        }) {
            rule.kind = .partialObject
            _ = firstVar
        } else {
            rule.kind = .complete
        }
        if isDefault {
            if rule.kind == .partialSet || rule.kind == .partialObject {
                throw PolicyError(.parse, "default rules must not have a key", at: rule.loc)
            }
            if isOp("{") || isKw("if") { throw err("default rules must not have a body") }
            return [rule]
        }
        // Body.
        var rules: [RuleDecl] = [rule]
        if isKw("if") {
            next()
            rule.body = try parseRuleBody()
        } else if isOp("{") {
            rule.body = try parseRuleBody()
        } else {
            rule.hasExplicitBody = false
        }
        // Extra bodies (v0: `p { a } { b }`).
        while isOp("{") {
            let extra = RuleDecl(headRef: rule.headRef, args: rule.args, key: rule.key, value: rule.value, isAssign: rule.isAssign, isDefault: false, body: [], loc: here)
            extra.kind = rule.kind
            extra.body = try parseRuleBody()
            rules.append(extra)
        }
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
                body = try parseRuleBody()
            }
            rule.elses.append((ev, body, el))
        }
        return rules
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
        while true {
            while isOp(";") { next() }
            if let c = close, isOp(c) { break }
            if tok.kind == .eof {
                if close != nil { throw err("unexpected end of file: expected \(close!)") }
                break
            }
            let lit = try parseLiteral()
            lits.append(lit)
            if isOp(";") { next(); continue }
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
        while isKw("in"), !tok.newlineBefore {
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
        while isKw("in"), !tok.newlineBefore {
            next()
            let rhs = try parseRelation(noOr: false)
            lhs = call("internal.member_2", [lhs, rhs], lhs.loc)
        }
        return lhs
    }

    static let relOps: [String: String] = ["==": "equal", "!=": "neq", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"]

    mutating func parseRelation(noOr: Bool) throws(PolicyError) -> Term {
        var lhs = try parseOr(noOr: noOr)
        while tok.kind == .op, let name = Parser.relOps[tok.text], !tok.newlineBefore {
            next()
            let rhs = try parseOr(noOr: noOr)
            lhs = call(name, [lhs, rhs], lhs.loc)
        }
        return lhs
    }

    mutating func parseOr(noOr: Bool) throws(PolicyError) -> Term {
        var lhs = try parseAnd()
        while !noOr, isOp("|"), !tok.newlineBefore {
            next()
            let rhs = try parseAnd()
            lhs = call("or", [lhs, rhs], lhs.loc)
        }
        return lhs
    }

    mutating func parseAnd() throws(PolicyError) -> Term {
        var lhs = try parseArith()
        while isOp("&"), !tok.newlineBefore {
            next()
            let rhs = try parseArith()
            lhs = call("and", [lhs, rhs], lhs.loc)
        }
        return lhs
    }

    mutating func parseArith() throws(PolicyError) -> Term {
        var lhs = try parseFactor()
        while (isOp("+") || isOp("-")), !tok.newlineBefore {
            let name = isOp("+") ? "plus" : "minus"
            next()
            let rhs = try parseFactor()
            lhs = call(name, [lhs, rhs], lhs.loc)
        }
        return lhs
    }

    mutating func parseFactor() throws(PolicyError) -> Term {
        var lhs = try parseTerm()
        while (isOp("*") || isOp("/") || isOp("%")), !tok.newlineBefore {
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
            guard let n = Number(parsing: t.text) else { throw err("invalid number") }
            next()
            term = Term(.scalar(.number(n)), l)
        case .string:
            next()
            term = Term(.scalar(.string(t.text)), l)
        case .ident:
            switch t.text {
            case "true": next(); term = Term(.scalar(.bool(true)), l)
            case "false": next(); term = Term(.scalar(.bool(false)), l)
            case "null": next(); term = Term(.scalar(.null), l)
            default:
                if Parser.keywords.contains(t.text) && t.text != "contains" && t.text != "if" {
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
                    term = Term(.scalar(.number(n.negated)), l)
                } else {
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
                guard tok.kind == .ident else { throw err("unexpected \(describe(tok)) token: expected identifier") }
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

    mutating func parseArrayOrCompr() throws(PolicyError) -> Term {
        let l = here
        next()  // [
        if isOp("]") { next(); return Term(.array([]), l) }
        let first = try parseExpr(noOr: true)
        if isOp("|") {
            next()
            let body = try parseQuery(until: "]")
            try expectOp("]")
            return Term(.arrayCompr(first, body), l)
        }
        var elems = [first]
        while isOp(",") {
            next()
            if isOp("]") { break }
            elems.append(try parseExpr(noOr: false))
        }
        try expectOp("]")
        return Term(.array(elems), l)
    }

    mutating func parseBraced() throws(PolicyError) -> Term {
        let l = here
        next()  // {
        if isOp("}") { next(); return Term(.object([]), l) }
        let first = try parseExpr(noOr: true)
        if isOp(":") {
            next()
            let v = try parseExpr(noOr: true)
            if isOp("|") {
                next()
                let body = try parseQuery(until: "}")
                try expectOp("}")
                return Term(.objectCompr(first, v, body), l)
            }
            var pairs: [(Term, Term)] = [(first, v)]
            while isOp(",") {
                next()
                if isOp("}") { break }
                let k = try parseExpr(noOr: false)
                try expectOp(":")
                let vv = try parseExpr(noOr: false)
                pairs.append((k, vv))
            }
            try expectOp("}")
            return Term(.object(pairs), l)
        }
        if isOp("|") {
            next()
            let body = try parseQuery(until: "}")
            try expectOp("}")
            return Term(.setCompr(first, body), l)
        }
        var elems = [first]
        while isOp(",") {
            next()
            if isOp("}") { break }
            elems.append(try parseExpr(noOr: false))
        }
        try expectOp("}")
        return Term(.set(elems), l)
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
