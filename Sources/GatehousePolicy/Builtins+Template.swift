import Foundation

/// `strings.render_template`: the part of Go's text/template that policies use — `{{.a.b}}`, `{{.}}`,
/// `{{$v}}`, `{{if}}`/`{{else if}}`/`{{else}}`, `{{range}}` (with `$i, $v :=`), `{{with}}`,
/// `{{/* comments */}}`, `{{-`/`-}}` trimming, and the functions `len`, `index`, `not`, `and`, `or`,
/// `eq`, `ne`, `print`.
enum GoTemplate {
    struct Failure: Error { let message: String }

    indirect enum Node {
        case text(String)
        case action([String])
        case cond(kind: String, pipe: [String], vars: [String], body: [Node], orElse: [Node])
    }

    /// Bounds for templates from input: nesting of if/range/with (deeper crashed the recursive
    /// parser and executor) and the size of the output (nested ranges multiply it).
    static let maxNesting = 100
    static let maxOutputBytes = 1 << 20

    static func render(_ template: String, _ data: Value) throws -> String {
        var tokens = try lex(template)[...]
        let nodes = try parse(&tokens, until: [], depth: 0)
        guard let first = tokens.first else { return try execute(nodes, data) }
        throw Failure(message: "unexpected \(first)")
    }

    static func execute(_ nodes: [Node], _ data: Value) throws -> String {
        var out = ""
        var scope: [String: Value] = ["$": data]
        try exec(nodes, dot: data, scope: &scope, out: &out)
        return out
    }

    enum Token { case text(String), action([String]) }

    /// Text and actions (`{{ … }}` split into words, quoted strings kept whole), with trim markers applied.
    static func lex(_ s: String) throws -> [Token] {
        var tokens: [Token] = []
        var rest = Substring(s)
        var trimNext = false
        while let open = rest.range(of: "{{") {
            var text = String(rest[..<open.lowerBound])
            var inner = rest[open.upperBound...]
            guard let close = inner.range(of: "}}") else { throw Failure(message: "unclosed action") }
            var body = String(inner[..<close.lowerBound])
            if trimNext { text = String(text.drop { $0.isWhitespace }) }
            if body.hasPrefix("- ") || body == "-" { body.removeFirst(); text = String(text.reversed().drop { $0.isWhitespace }.reversed()) }
            trimNext = body.hasSuffix(" -")
            if trimNext { body.removeLast() }
            if !text.isEmpty { tokens.append(.text(text)) }
            inner = inner[close.upperBound...]
            rest = inner
            let t = body.trimmingCharacters(in: .whitespaces)
            if t.hasPrefix("/*") { continue }
            tokens.append(.action(try words(t)))
        }
        let text = trimNext ? String(rest.drop { $0.isWhitespace }) : String(rest)
        if !text.isEmpty { tokens.append(.text(text)) }
        return tokens
    }

    static func words(_ s: String) throws -> [String] {
        var out: [String] = []
        var cur = ""
        var quote: Character?
        for c in s {
            if let q = quote {
                cur.append(c)
                if c == q && !cur.hasSuffix("\\\(q)") { out.append(cur); cur = ""; quote = nil }
            } else if c == "\"" || c == "`" {
                quote = c
                cur.append(c)
            } else if c == " " || c == "\t" || c == "\n" {
                if !cur.isEmpty { out.append(cur); cur = "" }
            } else if c == "," {
                if !cur.isEmpty { out.append(cur); cur = "" }
            } else {
                cur.append(c)
            }
        }
        if quote != nil { throw Failure(message: "unterminated quoted string") }
        if !cur.isEmpty { out.append(cur) }
        if out.isEmpty { throw Failure(message: "missing value for command") }
        return out
    }

    static func parse(_ tokens: inout ArraySlice<Token>, until: Set<String>, depth: Int) throws -> [Node] {
        if depth > maxNesting { throw Failure(message: "template nesting deeper than \(maxNesting) levels") }
        var nodes: [Node] = []
        while let token = tokens.first {
            switch token {
            case .text(let t): tokens.removeFirst(); nodes.append(.text(t))
            case .action(let w):
                if until.contains(w[0]) { return nodes }
                tokens.removeFirst()
                switch w[0] {
                case "if", "range", "with": nodes.append(try parseBlock(w[0], Array(w.dropFirst()), &tokens, depth: depth + 1))
                case "end", "else": throw Failure(message: "unexpected {{\(w[0])}}")
                default: nodes.append(.action(w))
                }
            }
        }
        if !until.isEmpty { throw Failure(message: "unexpected EOF") }
        return nodes
    }

    static func parseBlock(_ kind: String, _ words: [String], _ tokens: inout ArraySlice<Token>, depth: Int) throws -> Node {
        var pipe = words, vars: [String] = []
        if let i = pipe.firstIndex(of: ":=") { vars = Array(pipe[..<i]); pipe = Array(pipe[(i + 1)...]) }
        let body = try parse(&tokens, until: ["else", "end"], depth: depth)
        var orElse: [Node] = []
        guard case .action(let w) = tokens.removeFirst() else { throw Failure(message: "unexpected EOF") }
        if w[0] == "else" {
            if w.count > 1, w[1] == "if" {
                orElse = [try parseBlock("if", Array(w.dropFirst(2)), &tokens, depth: depth + 1)]
                return .cond(kind: kind, pipe: pipe, vars: vars, body: body, orElse: orElse)
            }
            orElse = try parse(&tokens, until: ["end"], depth: depth)
            tokens.removeFirst()
        }
        return .cond(kind: kind, pipe: pipe, vars: vars, body: body, orElse: orElse)
    }
}

extension GoTemplate {
    static func exec(_ nodes: [Node], dot: Value, scope: inout [String: Value], out: inout String) throws {
        for n in nodes {
            if out.utf8.count > maxOutputBytes { throw Failure(message: "output larger than \(maxOutputBytes) bytes") }
            switch n {
            case .text(let t): out += t
            case .action(let w):
                if w.count >= 3, w[0].hasPrefix("$"), w[1] == ":=" || w[1] == "=" {
                    scope[w[0]] = try eval(Array(w.dropFirst(2)), dot: dot, scope: scope)
                } else {
                    out += show(try eval(w, dot: dot, scope: scope))
                }
            case .cond(let kind, let pipe, let vars, let body, let orElse):
                let v = try eval(pipe, dot: dot, scope: scope)
                if kind == "range" {
                    let items = v.map { rangeItems($0) } ?? []
                    if items.isEmpty { try exec(orElse, dot: dot, scope: &scope, out: &out); continue }
                    for (k, e) in items {
                        var inner = scope
                        if vars.count == 1 { inner[vars[0]] = e }
                        if vars.count == 2 { inner[vars[0]] = k; inner[vars[1]] = e }
                        try exec(body, dot: e, scope: &inner, out: &out)
                    }
                    continue
                }
                if truthy(v) {
                    var inner = scope
                    if let name = vars.first { inner[name] = v }
                    try exec(body, dot: kind == "with" ? (v ?? .null) : dot, scope: &inner, out: &out)
                } else {
                    try exec(orElse, dot: dot, scope: &scope, out: &out)
                }
            }
        }
    }

    static func rangeItems(_ v: Value) -> [(Value, Value)] {
        switch v {
        case .array(let a): return a.enumerated().map { (.int($0.offset), $0.element) }
        case .object(let o): return o.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        case .set(let s): return s.sorted().enumerated().map { (.int($0.offset), $0.element) }
        case .number(let n): return (0..<max(0, n.intValue ?? 0)).map { (.int($0), .int($0)) }
        default: return []
        }
    }

    static func truthy(_ v: Value?) -> Bool {
        guard let v else { return false }
        switch v {
        case .null: return false
        case .bool(let b): return b
        case .number: return true  // OPA hands numbers over as json.Number text: never empty
        case .string(let s): return !s.isEmpty
        case .array(let a): return !a.isEmpty
        case .object(let o): return !o.isEmpty
        case .set(let s): return !s.isEmpty
        }
    }

    /// A pipeline of one command: a value, or a function applied to arguments.
    static func eval(_ w: [String], dot: Value, scope: [String: Value]) throws -> Value? {
        guard let head = w.first else { throw Failure(message: "empty pipeline") }
        if w.contains("|") { throw Failure(message: "pipelines are not supported") }
        let args = { () throws -> [Value?] in try w.dropFirst().map { try operand($0, dot: dot, scope: scope) } }
        switch head {
        case "not": return .bool(!truthy(try args().first ?? nil))
        case "and": let a = try args(); return a.first(where: { !truthy($0) }) ?? a.last ?? nil
        case "or": let a = try args(); return a.first(where: { truthy($0) }) ?? a.last ?? nil
        case "len":
            guard let v = try args().first ?? nil else { throw Failure(message: "len of nil") }
            switch v {
            case .string(let s): return .int(s.utf8.count)
            case .array(let a): return .int(a.count)
            case .object(let o): return .int(o.count)
            case .set(let s): return .int(s.count)
            default: throw Failure(message: "len of \(v.typeName)")
            }
        case "index":
            var a = try args()
            guard var v = a.isEmpty ? nil : a.removeFirst() else { throw Failure(message: "index of untyped nil") }
            for k in a {
                guard let k, let next = v.lookup(k) else { throw Failure(message: "error calling index") }
                v = next
            }
            return v
        case "eq", "ne":
            let a = try args()
            guard a.count >= 2 else { throw Failure(message: "missing argument for comparison") }
            let same = a.dropFirst().contains { $0 == a[0] }
            return .bool(head == "eq" ? same : !same)
        case "print": return .string(try args().map { show($0) }.joined())
        default:
            guard w.count == 1 else { throw Failure(message: "function \(head) not defined") }
            return try operand(head, dot: dot, scope: scope)
        }
    }

    static func operand(_ word: String, dot: Value, scope: [String: Value]) throws -> Value? {
        if word.hasPrefix("\"") || word.hasPrefix("`") {
            guard case .string(let s)? = try? JSON.parse("\"" + word.dropFirst().dropLast() + "\"") else { return .string(String(word.dropFirst().dropLast())) }
            return .string(s)
        }
        if word == "true" || word == "false" { return .bool(word == "true") }
        if word == "nil" { throw Failure(message: "nil is not a command") }
        if let n = Number(parsing: word) { return .number(n) }
        var base: Value?
        var path: [Substring]
        if word.hasPrefix(".") {
            base = dot
            path = word.split(separator: ".")
        } else if word.hasPrefix("$") {
            let parts = word.split(separator: ".", omittingEmptySubsequences: false)
            guard let v = scope[String(parts[0])] else { throw Failure(message: "undefined variable: \(parts[0])") }
            base = v
            path = Array(parts.dropFirst())
        } else {
            throw Failure(message: "function \(word) not defined")
        }
        for key in path {
            guard let cur = base else { return nil }
            guard case .object(let o) = cur else { throw Failure(message: "can't evaluate field \(key) in type \(cur.typeName)") }
            base = o[.string(String(key))]
        }
        return base
    }

    /// As Go's fmt %v prints the decoded JSON value; missing values and null as "<undefined>".
    static func show(_ v: Value?, nested: Bool = false) -> String {
        guard let v else { return nested ? "<nil>" : "<undefined>" }
        switch v {
        case .null: return nested ? "<nil>" : "<undefined>"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n.description
        case .string(let s): return s
        case .array(let a): return "[" + a.map { show($0, nested: true) }.joined(separator: " ") + "]"
        case .set(let s): return "[" + s.sorted().map { show($0, nested: true) }.joined(separator: " ") + "]"
        case .object(let o):
            return "map[" + o.sorted { $0.key < $1.key }.map { "\(show($0.key, nested: true)):\(show($0.value, nested: true))" }.joined(separator: " ") + "]"
        }
    }
}

extension Builtins {
    static let template: [Builtin] = [
        Builtin("strings.render_template", 2) { a, _ in
            let t = try argString(a, 0)
            let vars = try argObject(a, 1)
            do {
                return .string(try GoTemplate.render(t, .object(vars)))
            } catch let e as GoTemplate.Failure {
                throw BuiltinError("template: \(e.message)")
            }
        },
    ]
}
