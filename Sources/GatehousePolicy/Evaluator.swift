import Foundation

/// A rule's variables: a window of `EvalContext.slots` starting at `base` (frames are strictly nested).
struct Frame {
    let base: Int
}

enum CacheEntry {
    case undefined
    case value(Value)
    case inProgress
}

enum Mock {
    case value(Value)
    case callee(Callee)
}

enum Simple {
    case value(Value)
    case undefined
    case complex
}

/// Rule results of one query, indexed by rule-set id (one entry per rule set of the policy, kept
/// when the context is reused); `touched` lists the ids set since the last `clear()`, so clearing
/// costs what the query used, not the size of the policy.
struct RuleCache {
    var entries: [CacheEntry?]
    var touched: [Int] = []

    init(size: Int) {
        entries = Array(repeating: nil, count: size)
    }

    @inline(__always)
    func get(_ id: Int) -> CacheEntry? { entries[id] }

    @inline(__always)
    mutating func set(_ id: Int, _ e: CacheEntry) {
        if case .none = entries[id] { touched.append(id) }
        entries[id] = e
    }

    mutating func clear() {
        for id in touched { entries[id] = nil }
        touched.removeAll(keepingCapacity: true)
    }
}

/// State of one query evaluation, used by one thread at a time. `CompiledPolicy` keeps a few of
/// them for reuse (their slot and cache arrays stay allocated), which is why it is `Sendable`:
/// the pool hands a context to one evaluation at a time and takes it back cleared. A context holds
/// no reference to its policy, so the pool is no cycle.
public final class EvalContext: @unchecked Sendable {
    let ruleSetCount: Int
    @exclusivity(unchecked) var input: Value?
    @exclusivity(unchecked) var data: Value = .null
    // The evaluator is single-threaded and never holds overlapping accesses to its own state, so the
    // hot fields skip dynamic exclusivity checks (swift_beginAccess was ~5% of a client_authz decision).
    /// Rule results of this query, indexed by rule-set id (nil: not evaluated yet); `.inProgress` while
    /// a rule is being evaluated.
    @exclusivity(unchecked) var cache: RuleCache
    /// Variable slots of all active frames.
    @exclusivity(unchecked) var slots: [Value?] = []
    @exclusivity(unchecked) var top = 0
    @exclusivity(unchecked) var mocks: [String: Mock] = [:]
    @exclusivity(unchecked) var dataOverrides: [([String], Value)] = []
    var strict = true
    @exclusivity(unchecked) var callDepth = 0
    var uuids: [String: String] = [:]
    var printHook: (@Sendable (String) -> Void)?
    private var fixedNow: Int64?
    var clock: @Sendable () -> Date = { Date() }

    /// An empty context for a policy with `ruleSetCount` rule sets; `begin` sets up each query.
    init(ruleSetCount: Int) {
        self.ruleSetCount = ruleSetCount
        self.cache = RuleCache(size: ruleSetCount)
        self.slots.reserveCapacity(32)
    }

    /// Prepares the context for a query.
    func begin(input: Value?, data: Value, strict: Bool, print: (@Sendable (String) -> Void)?, clock: @escaping @Sendable () -> Date) {
        self.input = input
        self.data = data
        self.strict = strict
        self.printHook = print
        self.clock = clock
    }

    /// Drops everything a query left (also after an error), so a pooled context holds no values.
    func end() {
        cache.clear()
        var i = 0
        while i < slots.count {
            if slots[i] != nil { slots[i] = nil }
            i &+= 1
        }
        top = 0
        input = nil
        if !mocks.isEmpty { mocks = [:] }
        if !dataOverrides.isEmpty { dataOverrides = [] }
        if !uuids.isEmpty { uuids = [:] }
        callDepth = 0
        fixedNow = nil
        printHook = nil
    }

    /// `time.now_ns()`: fixed once per query.
    public var nowNs: Int64 {
        if let n = fixedNow { return n }
        let n = Int64(clock().timeIntervalSince1970 * 1_000_000_000)
        fixedNow = n
        return n
    }

    @inline(__always)
    func pushFrame(_ n: Int) -> Frame {
        let f = Frame(base: top)
        top &+= n
        if slots.count < top { slots.append(contentsOf: repeatElement(nil, count: top - slots.count)) }
        return f
    }

    @inline(__always)
    func popFrame(_ f: Frame) {
        // Bindings are undone on backtracking; clear anyway so an error path cannot leak values.
        var i = f.base
        while i < top {
            if slots[i] != nil { slots[i] = nil }
            i &+= 1
        }
        top = f.base
    }

    func unsafeError(_ s: Int) -> PolicyError {
        PolicyError(.internalError, "unbound variable at evaluation (slot \(s))")
    }

    // MARK: bodies and expressions

    func evalBody(_ body: [CExpr], _ i: Int, _ f: Frame, _ k: () throws -> Bool) throws -> Bool {
        if i == body.count { return try k() }
        return try evalExpr(body[i], f) { try evalBody(body, i + 1, f, k) }
    }

    func evalExpr(_ e: CExpr, _ f: Frame, _ k: () throws -> Bool) throws -> Bool {
        if e.hasWith { return try evalWith(e, f, k) }
        return try evalExprNoWith(e, f, k)
    }

    func evalExprNoWith(_ e: CExpr, _ f: Frame, _ k: () throws -> Bool) throws -> Bool {
        if e.negated {
            let found = try evalExprInner(e, f) { true }
            return found ? false : try k()
        }
        return try evalExprInner(e, f, k)
    }

    func evalExprInner(_ e: CExpr, _ f: Frame, _ k: () throws -> Bool) throws -> Bool {
        switch e.kind {
        case .noop:
            return try k()
        case .term(let t):
            // Most body expressions are references or calls with one value: test it without a closure.
            switch try singleValue(t, f) {
            case .value(let v):
                if case .bool(false) = v { return false }
                return try k()
            case .undefined: return false
            case .complex: break
            }
            return try evalTerm(t, f) { v in
                if case .bool(false) = v { return false }
                return try k()
            }
        case .unify(let a, let b):
            // `x := <one value>` (the usual assignment): bind without continuation closures.
            if case .slot(let s) = a, slots[f.base &+ s] == nil {
                switch try simple(b, f) {
                case .value(let v):
                    slots[f.base &+ s] = v
                    let r = try k()
                    slots[f.base &+ s] = nil
                    return r
                case .undefined: return false
                case .complex: break
                }
            }
            return try unify(a, b, f, k)
        case .someIn(let key, let value, let coll):
            // `some x in xs` over an array with a fresh variable: bind each element, no closures.
            if case .none = key, case .slot(let s) = value, slots[f.base &+ s] == nil {
                switch try simple(coll, f) {
                case .value(.array(let a)):
                    let at = f.base &+ s
                    for e in a {
                        slots[at] = e
                        if try k() {
                            slots[at] = nil
                            return true
                        }
                    }
                    slots[at] = nil
                    return false
                case .undefined: return false
                default: break
                }
            }
            return try evalTerm(coll, f) { c in
                try iterate(c) { kk, vv in
                    if let key {
                        return try unifyValue(key, kk, f) { try unifyValue(value, vv, f, k) }
                    }
                    return try unifyValue(value, vv, f, k)
                }
            }
        case .every(let key, let value, let domain, let body, _):
            var domains: [Value] = []
            _ = try evalTerm(domain, f) { d in domains.append(d); return true }
            guard let d = domains.first else { return false }
            switch d {
            case .array, .object, .set: break
            default: return false  // `every` over a scalar is undefined, as in OPA
            }
            var allOK = true
            _ = try iterate(d) { kk, vv in
                let sat: Bool
                if let key {
                    sat = try unifyValue(key, kk, f) { try unifyValue(value, vv, f) { try evalBody(body, 0, f) { true } } }
                } else {
                    sat = try unifyValue(value, vv, f) { try evalBody(body, 0, f) { true } }
                }
                if !sat { allOK = false; return true }
                return false
            }
            return allOK ? try k() : false
        }
    }

    // MARK: with

    func evalWith(_ e: CExpr, _ f: Frame, _ k: () throws -> Bool) throws -> Bool {
        var values: [Value] = []
        for w in e.with {
            if w.mockCallee != nil { values.append(.null); continue }
            var got: Value?
            _ = try evalTerm(w.value, f) { v in got = v; return true }
            guard let v = got else { return false }
            values.append(v)
        }
        let savedInput = input, savedOverrides = dataOverrides, savedMocks = mocks
        var outerCache = cache
        for (w, v) in zip(e.with, values) {
            switch w.target {
            case .input(let path):
                input = path.isEmpty ? v : upsert(input ?? .emptyObject, path[...], v)
            case .data(let path):
                dataOverrides.append((path, v))
            case .function(let name):
                if let c = w.mockCallee { mocks[name] = .callee(c) } else { mocks[name] = .value(v) }
            }
        }
        var innerInput = input, innerOverrides = dataOverrides, innerMocks = mocks
        var innerCache = RuleCache(size: ruleSetCount)
        cache = innerCache
        defer {
            input = savedInput
            dataOverrides = savedOverrides
            mocks = savedMocks
            cache = outerCache
        }
        return try evalExprNoWith(e, f) {
            innerInput = input; innerOverrides = dataOverrides; innerMocks = mocks
            innerCache = cache
            input = savedInput; dataOverrides = savedOverrides; mocks = savedMocks
            cache = outerCache
            let r = try k()
            outerCache = cache
            input = innerInput; dataOverrides = innerOverrides; mocks = innerMocks
            cache = innerCache
            return r
        }
    }

    func upsert(_ doc: Value, _ path: ArraySlice<String>, _ v: Value) -> Value {
        guard let first = path.first else { return v }
        var o: [Value: Value]
        if case .object(let existing) = doc { o = existing } else { o = [:] }
        let key = Value.string(first)
        o[key] = upsert(o[key] ?? .emptyObject, path.dropFirst(), v)
        return .object(o)
    }

    // MARK: terms

    /// Evaluates without enumeration when possible.
    func simple(_ t: CTerm, _ f: Frame) throws -> Simple {
        switch t {
        case .const(let v): return .value(v)
        case .slot(let s):
            if let v = slots[f.base &+ s] { return .value(v) }
            return .complex
        case .input:
            if let i = input { return .value(i) }
            return .undefined
        case .ref(let head, let path):
            var cur: Value
            switch try simple(head, f) {
            case .value(let v): cur = v
            case .undefined: return .undefined
            case .complex: return .complex
            }
            for p in path {
                let key: Value
                switch p {
                case .const(let v): key = v
                case .slot(let s):
                    guard let v = slots[f.base &+ s] else { return .complex }
                    key = v
                default: return .complex
                }
                guard let n = cur.lookup(key) else { return .undefined }
                cur = n
            }
            return .value(cur)
        case .dataRef(let node, let prefix, let rest):
            guard dataOverrides.isEmpty else { return .complex }
            var cur: Value
            if let node {
                guard let rs = node.ruleSet, node.children.isEmpty, rs.kind != .function else { return .complex }
                guard let v = try evalRuleSet(rs) else { return .undefined }
                cur = v
            } else {
                guard let b = lookupBase(prefix) else { return .undefined }
                cur = b
            }
            for p in rest {
                let key: Value
                switch p {
                case .const(let v): key = v
                case .slot(let s):
                    guard let v = slots[f.base &+ s] else { return .complex }
                    key = v
                default: return .complex
                }
                guard let n = cur.lookup(key) else { return .undefined }
                cur = n
            }
            return .value(cur)
        default:
            return .complex
        }
    }

    /// The value of a test term with at most one value (a reference, or a call whose arguments each
    /// have one value), without enumeration; `.complex` otherwise.
    @inline(never)
    func singleValue(_ t: CTerm, _ f: Frame) throws -> Simple {
        switch t {
        case .ref, .dataRef, .input, .const:
            return try simple(t, f)
        case .call(let callee, let args, let loc):
            return mocks.isEmpty ? try simpleCall(callee, args, f, loc) : .complex
        default:
            return .complex
        }
    }

    /// A call whose arguments each have one value, evaluated without continuation closures.
    /// `.complex` (before anything is evaluated) when an argument needs enumeration or the callee
    /// is evaluated by the evaluator itself (`print`, `walk`).
    @inline(never)
    func simpleCall(_ callee: Callee, _ args: [CTerm], _ f: Frame, _ loc: SourceLocation) throws -> Simple {
        switch callee {
        case .builtin(let b):
            if b.isSpecial { return .complex }
            if b.isMember2 {
                // `x in xs`, the most common call in policies: no argument array.
                let x: Value, xs: Value
                switch try simple(args[0], f) {
                case .value(let v): x = v
                case .undefined: return .undefined
                case .complex: return .complex
                }
                switch try simple(args[1], f) {
                case .value(let v): xs = v
                case .undefined: return .undefined
                case .complex: return .complex
                }
                return .value(.bool(Builtins.member(x, xs)))
            }
            var vals: [Value] = []
            vals.reserveCapacity(args.count)
            for a in args {
                switch try simple(a, f) {
                case .value(let v): vals.append(v)
                case .undefined: return .undefined
                case .complex: return .complex
                }
            }
            guard let r = try call(callee, vals, loc) else { return .undefined }
            return .value(r)
        case .function(let rs):
            return try callFunctionSimple(rs, args, f, loc)
        }
    }

    func evalTerm(_ t: CTerm, _ f: Frame, _ k: (Value) throws -> Bool) throws -> Bool {
        switch t {
        case .const(let v): return try k(v)
        case .slot(let s):
            guard let v = slots[f.base &+ s] else { throw unsafeError(s) }
            return try k(v)
        case .input:
            guard let i = input else { return false }
            return try k(i)
        case .ref(let head, let path):
            switch try simple(t, f) {
            case .value(let v): return try k(v)
            case .undefined: return false
            case .complex: break
            }
            return try evalTerm(head, f) { hv in try walk(hv, path, 0, f, k) }
        case .dataRef(let node, let prefix, let rest):
            switch try simple(t, f) {
            case .value(let v): return try k(v)
            case .undefined: return false
            case .complex: break
            }
            if !dataOverrides.isEmpty { return try evalDataRefOverridden(node, prefix, rest, f, k) }
            return try evalDataRef(node, prefix, rest, f, k)
        case .array(let elems):
            return try evalList(elems, 0, f, []) { vals in try k(.array(vals)) }
        case .set(let elems):
            return try evalList(elems, 0, f, []) { vals in try k(.set(Set(vals))) }
        case .object(let pairs):
            var flat: [CTerm] = []
            flat.reserveCapacity(pairs.count * 2)
            for (a, b) in pairs {
                flat.append(a)
                flat.append(b)
            }
            return try evalList(flat, 0, f, []) { vals in
                var o: [Value: Value] = [:]
                var i = 0
                while i < vals.count {
                    o[vals[i]] = vals[i + 1]
                    i += 2
                }
                return try k(.object(o))
            }
        case .call(let callee, let args, let loc):
            if case .builtin(let b) = callee, b.isSpecial {
                if b.name == "print" { return try evalPrint(args, f, loc, k) }
                if mocks.isEmpty || mocks["walk"] == nil {
                    return try evalTerm(args[0], f) { v in try walkRelation(v, [], k) }
                }
            } else if mocks.isEmpty {
                switch try simpleCall(callee, args, f, loc) {
                case .value(let v): return try k(v)
                case .undefined: return false
                case .complex: break
                }
            }
            return try evalList(args, 0, f, []) { vals in
                guard let r = try call(callee, vals, loc) else { return false }
                return try k(r)
            }
        case .compr(let c):
            return try k(try evalCompr(c, f))
        }
    }

    func evalList(_ ts: [CTerm], _ i: Int, _ f: Frame, _ acc: [Value], _ k: ([Value]) throws -> Bool) throws -> Bool {
        // Fast path: all simple.
        if i == 0 {
            var vals: [Value] = []
            vals.reserveCapacity(ts.count)
            var allSimple = true
            for t in ts {
                switch try simple(t, f) {
                case .value(let v): vals.append(v)
                case .undefined: return false
                case .complex: allSimple = false
                }
                if !allSimple { break }
            }
            if allSimple { return try k(vals) }
        }
        if i == ts.count { return try k(acc) }
        return try evalTerm(ts[i], f) { v in
            var a = acc
            a.append(v)
            return try evalList(ts, i + 1, f, a, k)
        }
    }

    func evalCompr(_ c: Compr, _ f: Frame) throws -> Value {
        switch c.kind {
        case .array:
            var out: [Value] = []
            _ = try evalBody(c.body, 0, f) {
                try evalTerm(c.head, f) { v in out.append(v); return false }
            }
            return .array(out)
        case .set:
            var out = Set<Value>()
            _ = try evalBody(c.body, 0, f) {
                try evalTerm(c.head, f) { v in out.insert(v); return false }
            }
            return .set(out)
        case .object:
            var out: [Value: Value] = [:]
            _ = try evalBody(c.body, 0, f) {
                try evalTerm(c.head, f) { key in
                    try evalTerm(c.head2!, f) { v in
                        if let e = out[key], e != v {
                            throw PolicyError(.conflict, "object keys must be unique")
                        }
                        out[key] = v
                        return false
                    }
                }
            }
            return .object(out)
        }
    }

    func evalPrint(_ args: [CTerm], _ f: Frame, _ loc: SourceLocation, _ k: (Value) throws -> Bool) throws -> Bool {
        var parts: [String] = []
        for a in args {
            var vals: [Value] = []
            _ = try evalTerm(a, f) { v in vals.append(v); return false }
            if vals.isEmpty {
                parts.append("<undefined>")
            } else if vals.count == 1 {
                if case .string(let s) = vals[0] { parts.append(s) } else { parts.append(vals[0].description) }
            } else {
                parts.append(Value.set(Set(vals)).description)
            }
        }
        let line = parts.joined(separator: " ")
        if let h = printHook { h("\(loc): \(line)") }
        return try k(.true)
    }

    /// `walk(x)`: every [path, value] pair in x, root first, keys in sorted order.
    func walkRelation(_ v: Value, _ path: [Value], _ k: (Value) throws -> Bool) throws -> Bool {
        if try k(.array([.array(path), v])) { return true }
        switch v {
        case .array, .object, .set:
            return try iterate(v) { key, child in try walkRelation(child, path + [key], k) }
        default:
            return false
        }
    }

    // MARK: references

    /// Walks a value along path terms, iterating where keys are unbound.
    func walk(_ v: Value, _ path: [CTerm], _ i: Int, _ f: Frame, _ k: (Value) throws -> Bool) throws -> Bool {
        if i == path.count { return try k(v) }
        let p = path[i]
        switch try simple(p, f) {
        case .value(let key):
            guard let n = v.lookup(key) else { return false }
            return try walk(n, path, i + 1, f, k)
        case .undefined:
            return false
        case .complex:
            if hasUnboundPattern(p, f) {
                return try iterate(v) { key, elem in
                    try unifyValue(p, key, f) { try walk(elem, path, i + 1, f, k) }
                }
            }
            return try evalTerm(p, f) { key in
                guard let n = v.lookup(key) else { return false }
                return try walk(n, path, i + 1, f, k)
            }
        }
    }

    /// Calls `k(key, value)` for each element of a collection in sorted order. Scalars have no elements.
    func iterate(_ v: Value, _ k: (Value, Value) throws -> Bool) throws -> Bool {
        switch v {
        case .array(let a):
            for (i, e) in a.enumerated() where try k(.int(i), e) { return true }
        case .object(let o):
            if o.count == 1, let (key, val) = o.first { return try k(key, val) }
            for key in o.keys.sorted() where try k(key, o[key]!) { return true }
        case .set(let s):
            for e in s.sorted() where try k(e, e) { return true }
        default: break
        }
        return false
    }

    func hasUnboundPattern(_ t: CTerm, _ f: Frame) -> Bool {
        switch t {
        case .slot(let s): return slots[f.base &+ s] == nil
        case .array(let a): return a.contains { hasUnboundPattern($0, f) }
        case .object(let pairs): return pairs.contains { hasUnboundPattern($0.1, f) }
        default: return false
        }
    }

    func lookupBase(_ path: [String]) -> Value? {
        var cur = data
        for s in path {
            guard case .object(let o) = cur, let n = o[.string(s)] else { return nil }
            cur = n
        }
        return cur
    }

    func evalDataRef(_ node: RuleNode?, _ prefix: [String], _ rest: [CTerm], _ f: Frame, _ k: (Value) throws -> Bool) throws -> Bool {
        if let node {
            return try walkNode(node, lookupBase(prefix), rest, 0, f, k)
        }
        guard let base = lookupBase(prefix) else { return false }
        return try walk(base, rest, 0, f, k)
    }

    func walkNode(_ node: RuleNode, _ base: Value?, _ rest: [CTerm], _ i: Int, _ f: Frame, _ k: (Value) throws -> Bool) throws -> Bool {
        if let rs = node.ruleSet {
            if rs.kind == .function { return false }
            guard var v = try evalRuleSet(rs) else {
                if !node.children.isEmpty, case .object(let o) = try buildDoc(node, nil, skipSelf: true), !o.isEmpty {
                    return try walk(.object(o), rest, i, f, k)
                }
                return false
            }
            if !node.children.isEmpty, case .object(var o) = v {
                if case .object(let extra) = try buildDoc(node, nil, skipSelf: true) {
                    try mergeRulesBelow(&o, extra, rs)
                }
                v = .object(o)
            }
            return try walk(v, rest, i, f, k)
        }
        if i == rest.count { return try k(try buildDoc(node, base, skipSelf: false)) }
        let p = rest[i]
        func descend(_ key: Value) throws -> Bool {
            if case .string(let s) = key, let child = node.children[s] {
                return try walkNode(child, base?.lookup(key), rest, i + 1, f, k)
            }
            guard let b = base?.lookup(key) else { return false }
            return try walk(b, rest, i + 1, f, k)
        }
        switch try simple(p, f) {
        case .value(let key): return try descend(key)
        case .undefined: return false
        case .complex:
            if hasUnboundPattern(p, f) {
                var keys = Set<Value>()
                for c in node.children.keys { keys.insert(.string(c)) }
                if case .object(let o)? = base { for kk in o.keys { keys.insert(kk) } }
                for key in keys.sorted() {
                    if try unifyValue(p, key, f, { try descend(key) }) { return true }
                }
                return false
            }
            return try evalTerm(p, f) { key in try descend(key) }
        }
    }

    /// An object rule's value with the values of the rules below its path (`q[k] := 1` and
    /// `q.a := 2`): a key both give with different values is a conflict, as in OPA.
    func mergeRulesBelow(_ o: inout [Value: Value], _ extra: [Value: Value], _ rs: RuleSet) throws {
        for (a, b) in extra {
            if let e = o[a], e != b {
                throw PolicyError(.conflict, "object keys must be unique", at: rs.rules.first?.loc)
            }
            o[a] = b
        }
    }

    /// The document at a package node: base data merged with the values of all rules below.
    func buildDoc(_ node: RuleNode, _ base: Value?, skipSelf: Bool) throws -> Value {
        var o: [Value: Value] = [:]
        if case .object(let b)? = base { o = b }
        for (name, child) in node.children {
            let key = Value.string(name)
            if let rs = child.ruleSet {
                if rs.kind == .function { continue }
                if var v = try evalRuleSet(rs) {
                    if !child.children.isEmpty, case .object(var vo) = v,
                        case .object(let extra) = try buildDoc(child, nil, skipSelf: true)
                    {
                        try mergeRulesBelow(&vo, extra, rs)
                        v = .object(vo)
                    }
                    o[key] = v
                }
            } else {
                if !child.hasRules, o[key] != nil { continue }
                let sub = try buildDoc(child, o[key], skipSelf: false)
                if case .object(let so) = sub, so.isEmpty, o[key] == nil, child.hasRules {
                    // Packages with only undefined rules still appear as empty objects in OPA.
                    o[key] = sub
                } else {
                    o[key] = sub
                }
            }
        }
        return .object(o)
    }

    func evalDataRefOverridden(_ node: RuleNode?, _ prefix: [String], _ rest: [CTerm], _ f: Frame, _ k: (Value) throws -> Bool) throws -> Bool {
        // An override at or above the static prefix replaces the document.
        for (p, v) in dataOverrides.reversed() where prefix.starts(with: p) {
            let remaining = prefix.dropFirst(p.count).map { CTerm.const(.string($0)) }
            return try walk(v, remaining + rest, 0, f, k)
        }
        let below = dataOverrides.filter { $0.0.starts(with: prefix) }
        if below.isEmpty { return try evalDataRef(node, prefix, rest, f, k) }
        // Overrides below the prefix: materialize the document at the prefix, then patch.
        var doc: Value
        if let node {
            var got: Value?
            let saved = dataOverrides
            dataOverrides = dataOverrides.filter { !$0.0.starts(with: prefix) || $0.0.count == prefix.count }
            defer { dataOverrides = saved }
            _ = try walkNode(node, lookupBase(prefix), [], 0, f) { v in got = v; return true }
            doc = got ?? .emptyObject
        } else {
            doc = lookupBase(prefix) ?? .emptyObject
        }
        for (p, v) in below {
            doc = upsert(doc, p.dropFirst(prefix.count), v)
        }
        return try walk(doc, rest, 0, f, k)
    }

    // MARK: unification

    func unify(_ a: CTerm, _ b: CTerm, _ f: Frame, _ k: () throws -> Bool) throws -> Bool {
        if !hasUnboundPattern(b, f) {
            return try evalTerm(b, f) { v in try unifyValue(a, v, f, k) }
        }
        if !hasUnboundPattern(a, f) {
            return try evalTerm(a, f) { v in try unifyValue(b, v, f, k) }
        }
        switch (a, b) {
        case (.array(let x), .array(let y)):
            guard x.count == y.count else { return false }
            return try unifyPairs(Array(zip(x, y)), 0, f, k)
        case (.object(let x), .object(let y)):
            guard x.count == y.count else { return false }
            var pairs: [(CTerm, CTerm)] = []
            for (kx, vx) in x {
                guard case .simple = SimpleTag.of(kx) else { throw PolicyError(.internalError, "object key must be ground") }
                guard let match = y.first(where: { keyEqual($0.0, kx, f) }) else { return false }
                pairs.append((vx, match.1))
            }
            return try unifyPairs(pairs, 0, f, k)
        default:
            throw PolicyError(.internalError, "cannot unify two unbound terms")
        }
    }

    func keyEqual(_ a: CTerm, _ b: CTerm, _ f: Frame) -> Bool {
        guard case .value(let x)? = try? simple(a, f), case .value(let y)? = try? simple(b, f) else { return false }
        return x == y
    }

    func unifyPairs(_ pairs: [(CTerm, CTerm)], _ i: Int, _ f: Frame, _ k: () throws -> Bool) throws -> Bool {
        if i == pairs.count { return try k() }
        // Prefer a pair that can be evaluated now.
        return try unify(pairs[i].0, pairs[i].1, f) { try unifyPairs(pairs, i + 1, f, k) }
    }

    func unifyValue(_ p: CTerm, _ v: Value, _ f: Frame, _ k: () throws -> Bool) throws -> Bool {
        switch p {
        case .slot(let s):
            if let b = slots[f.base &+ s] { return b == v ? try k() : false }
            slots[f.base &+ s] = v
            let r = try k()
            slots[f.base &+ s] = nil
            return r
        case .const(let c):
            return c == v ? try k() : false
        case .array(let ps):
            guard case .array(let vs) = v, vs.count == ps.count else { return false }
            return try unifyArray(ps, vs, 0, f, k)
        case .object(let pairs):
            guard case .object(let o) = v, o.count == pairs.count else { return false }
            return try unifyObject(pairs, o, 0, f, k)
        default:
            return try evalTerm(p, f) { pv in pv == v ? try k() : false }
        }
    }

    func unifyArray(_ ps: [CTerm], _ vs: [Value], _ i: Int, _ f: Frame, _ k: () throws -> Bool) throws -> Bool {
        if i == ps.count { return try k() }
        return try unifyValue(ps[i], vs[i], f) { try unifyArray(ps, vs, i + 1, f, k) }
    }

    func unifyObject(_ ps: [(CTerm, CTerm)], _ o: [Value: Value], _ i: Int, _ f: Frame, _ k: () throws -> Bool) throws -> Bool {
        if i == ps.count { return try k() }
        return try evalTerm(ps[i].0, f) { key in
            guard let vv = o[key] else { return false }
            return try unifyValue(ps[i].1, vv, f) { try unifyObject(ps, o, i + 1, f, k) }
        }
    }

    // MARK: rules

    func evalRuleSet(_ rs: RuleSet) throws -> Value? {
        if let c = cache.get(rs.id) {
            switch c {
            case .undefined: return nil
            case .value(let v): return v
            case .inProgress:
                throw PolicyError(.recursion, "rule \(rs.dottedPath) is recursive", at: rs.rules.first?.loc)
            }
        }
        cache.set(rs.id, .inProgress)
        var result: Value?
        switch rs.kind {
        case .complete:
            for r in rs.rules {
                if let v = try evalComplete(r) {
                    if let prev = result, prev != v {
                        throw PolicyError(.conflict, "rule \(rs.dottedPath) produced conflicting values", at: r.loc)
                    }
                    result = v
                }
            }
            if result == nil, let d = rs.defaultRule {
                result = try evalConst(d.value)
            }
        case .partialSet:
            if rs.rules.allSatisfy({ $0.keys.count == 1 }) {
                var s = Set<Value>()
                for r in rs.rules {
                    let f = pushFrame(r.slotCount)
                    defer { popFrame(f) }
                    try guarded(r) {
                        _ = try evalBody(r.body, 0, f) {
                            try evalTerm(r.keys[0], f) { v in s.insert(v); return false }
                        }
                    }
                }
                result = .set(s)
            } else {
                // `a[x] contains y`: an object whose leaves are sets.
                var o: [Value: Value] = [:]
                for r in rs.rules {
                    let f = pushFrame(r.slotCount)
                    defer { popFrame(f) }
                    try guarded(r) {
                        _ = try evalBody(r.body, 0, f) {
                            try evalList(r.keys, 0, f, []) { keys in
                                try insertNestedSet(&o, keys.dropLast(), keys[keys.count - 1], r.loc)
                                return false
                            }
                        }
                    }
                }
                result = .object(o)
            }
        case .partialObject:
            var o: [Value: Value] = [:]
            for r in rs.rules {
                let f = pushFrame(r.slotCount)
                defer { popFrame(f) }
                try guarded(r) {
                    _ = try evalBody(r.body, 0, f) {
                        try evalList(r.keys, 0, f, []) { keys in
                            try evalTerm(r.value, f) { v in
                                try insertNested(&o, keys[...], v, r.loc)
                                return false
                            }
                        }
                    }
                }
            }
            result = .object(o)
        case .function:
            result = nil
        }
        cache.set(rs.id, result.map { CacheEntry.value($0) } ?? .undefined)
        return result
    }

    func insertNestedSet(_ o: inout [Value: Value], _ keys: ArraySlice<Value>, _ elem: Value, _ loc: SourceLocation) throws {
        guard let k0 = keys.first else { return }
        if keys.count == 1 {
            var set: Set<Value> = []
            if let e = o[k0] {
                guard case .set(let es) = e else { throw PolicyError(.conflict, "object keys must be unique", at: loc) }
                set = es
            }
            set.insert(elem)
            o[k0] = .set(set)
            return
        }
        var inner: [Value: Value] = [:]
        if let e = o[k0] {
            guard case .object(let eo) = e else { throw PolicyError(.conflict, "object keys must be unique", at: loc) }
            inner = eo
        }
        try insertNestedSet(&inner, keys.dropFirst(), elem, loc)
        o[k0] = .object(inner)
    }

    func insertNested(_ o: inout [Value: Value], _ keys: ArraySlice<Value>, _ v: Value, _ loc: SourceLocation) throws {
        let k0 = keys.first!
        if keys.count == 1 {
            if let e = o[k0], e != v {
                throw PolicyError(.conflict, "object keys must be unique", at: loc)
            }
            o[k0] = v
            return
        }
        var inner: [Value: Value] = [:]
        if let e = o[k0] {
            guard case .object(let eo) = e else { throw PolicyError(.conflict, "object keys must be unique", at: loc) }
            inner = eo
        }
        try insertNested(&inner, keys.dropFirst(), v, loc)
        o[k0] = .object(inner)
    }

    func evalConst(_ t: CTerm) throws -> Value? {
        if case .const(let v) = t { return v }
        var out: Value?
        _ = try evalTerm(t, Frame(base: top)) { v in out = v; return true }
        return out
    }

    /// Evaluates a rule's body; an error it raises is dropped when one of the rule's input
    /// guards does not hold (OPA would not have evaluated that body: InputGuards). Checking after
    /// an error rather than before every body keeps the guards off the path that succeeds.
    @inline(__always)
    func guarded(_ r: CRule, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            if r.inputGuards.isEmpty || InputGuards.hold(r.inputGuards, input) { throw error }
        }
    }

    func evalComplete(_ r: CRule) throws -> Value? {
        var out: Value?
        try guarded(r) { out = try evalCompleteBody(r) }
        return out
    }

    func evalCompleteBody(_ r: CRule) throws -> Value? {
        let f = pushFrame(r.slotCount)
        defer { popFrame(f) }
        if let v = try evalBodyValue(r.body, r.value, f, r) { return v }
        for el in r.elses {
            if let v = try evalBodyValue(el.body, el.value, f, r) { return v }
        }
        return nil
    }

    func evalBodyValue(_ body: [CExpr], _ value: CTerm, _ f: Frame, _ rule: CRule, isFunction: Bool = false) throws -> Value? {
        var out: Value?
        if body.isEmpty {
            // `x := <expression>` without a body (e.g. `roles := data.roles`): no closures.
            switch try simple(value, f) {
            case .value(let v): return v
            case .undefined: return nil
            case .complex: break
            }
        }
        if case .const(let c) = value {
            // A constant value (`allow if ...`): the first solution of the body decides.
            // (Not `? c : nil`: Value is ExpressibleByNilLiteral, so that would yield `.null`.)
            if try evalBody(body, 0, f, { true }) { return c }
            return nil
        }
        _ = try evalBody(body, 0, f) {
            try evalTerm(value, f) { v in
                if let o = out, o != v {
                    let name = rule.dottedPath
                    throw PolicyError(.conflict, isFunction ? "function \(name) produced conflicting values for the same inputs" : "rule \(name) produced conflicting values", at: rule.loc)
                }
                out = v
                return false
            }
        }
        return out
    }

    func callFunction(_ rs: RuleSet, _ args: [Value], _ loc: SourceLocation) throws -> Value? {
        try enterFunction(rs, loc)
        defer { callDepth -= 1 }
        var out: Value?
        for r in rs.rules {
            let f = pushFrame(r.slotCount)
            defer { popFrame(f) }
            var found: Value?
            _ = try unifyArray(r.args, args, 0, f) {
                found = try evalDefinition(r, f)
                return found != nil
            }
            try merge(found, into: &out, rs, loc)
        }
        return try functionResult(out, rs)
    }

    /// Calls a function whose arguments all have one value (no enumeration) and whose definitions
    /// take plain variables or constants (no array/object patterns), without building an argument
    /// array or a chain of unification closures: the argument values are written into a scratch
    /// frame and bound straight into each definition's slots. `.complex`, before anything is
    /// evaluated, when the general path (`callFunction`) is needed.
    @inline(never)
    func callFunctionSimple(_ rs: RuleSet, _ args: [CTerm], _ f: Frame, _ loc: SourceLocation) throws -> Simple {
        if !rs.plainHeads { return .complex }
        let n = args.count
        let argFrame = pushFrame(n)
        defer { popFrame(argFrame) }
        var i = 0
        while i < n {
            switch try simple(args[i], f) {
            case .value(let v): slots[argFrame.base &+ i] = v
            case .undefined: return .undefined
            case .complex: return .complex
            }
            i &+= 1
        }
        try enterFunction(rs, loc)
        defer { callDepth -= 1 }
        var out: Value?
        let rules = rs.rules
        var d = 0
        definitions: while d < rules.count {
            let r = rules[d]
            d &+= 1
            let rf = pushFrame(r.slotCount)
            defer { popFrame(rf) }
            var j = 0
            while j < n {
                let v = slots[argFrame.base &+ j].unsafelyUnwrapped
                switch r.args[j] {
                case .slot(let s):
                    // Bound already when a variable appears twice in the head (`f(x, x)`).
                    if let b = slots[rf.base &+ s] {
                        if b != v { continue definitions }
                    } else {
                        slots[rf.base &+ s] = v
                    }
                case .const(let c):
                    if c != v { continue definitions }
                default:
                    preconditionFailure("plainHeads checked at compile time")
                }
                j &+= 1
            }
            try merge(try evalDefinition(r, rf), into: &out, rs, loc)
        }
        return try functionResult(out, rs).map { .value($0) } ?? .undefined
    }

    @inline(__always)
    func enterFunction(_ rs: RuleSet, _ loc: SourceLocation) throws {
        callDepth += 1
        if callDepth > 256 {
            callDepth -= 1
            throw PolicyError(.recursion, "function \(rs.dottedPath): call depth exceeded", at: loc)
        }
    }

    /// The value of one function definition (its body, then its `else` branches) with arguments bound.
    func evalDefinition(_ r: CRule, _ rf: Frame) throws -> Value? {
        if let v = try evalBodyValue(r.body, r.value, rf, r, isFunction: true) { return v }
        for el in r.elses {
            if let v = try evalBodyValue(el.body, el.value, rf, r, isFunction: true) { return v }
        }
        return nil
    }

    /// Adds one definition's value to a function's result: definitions that apply must agree.
    @inline(__always)
    func merge(_ found: Value?, into out: inout Value?, _ rs: RuleSet, _ loc: SourceLocation) throws {
        guard let v = found else { return }
        if let o = out, o != v {
            throw PolicyError(.conflict, "function \(rs.dottedPath) produced conflicting values for the same inputs", at: loc)
        }
        out = v
    }

    /// A function's value: the definitions' common value, else its default.
    func functionResult(_ out: Value?, _ rs: RuleSet) throws -> Value? {
        if out == nil, let d = rs.defaultRule { return try evalConst(d.value) }
        return out
    }

    func call(_ callee: Callee, _ args: [Value], _ loc: SourceLocation) throws -> Value? {
        if !mocks.isEmpty, let m = mocks[callee.name] {
            switch m {
            case .value(let v): return v
            case .callee(let c):
                // Mocks do not apply inside a mock function.
                let saved = mocks
                mocks = [:]
                defer { mocks = saved }
                return try call(c, args, loc)
            }
        }
        switch callee {
        case .builtin(let b):
            do {
                return try b.impl(args, self)
            } catch let e as BuiltinError {
                if strict || b.alwaysStrict {
                    throw PolicyError(e.isType ? .evalType : .builtin, "\(b.name): \(e.message)", at: loc)
                }
                return nil
            }
        case .function(let rs):
            return try callFunction(rs, args, loc)
        }
    }
}

enum SimpleTag {
    case simple, other
    static func of(_ t: CTerm) -> SimpleTag {
        switch t {
        case .const, .slot: return .simple
        default: return .other
        }
    }
}
