import Foundation

extension Builtins {
    static let aggregates: [Builtin] = [
        Builtin("count", 1) { a, _ in
            switch a[0] {
            case .array(let x): return .int(x.count)
            case .set(let x): return .int(x.count)
            case .object(let x): return .int(x.count)
            case .string(let s): return .int(s.unicodeScalars.count)
            default: throw typeError(1, "any of {array, object, set, string}", a[0])
            }
        },
        Builtin("sum", 1) { a, _ in
            var total = Number.int(0)
            for e in try argArrayOrSet(a, 0) {
                guard case .number(let n) = e else { throw typeError(1, "any of {array, set} of numbers", a[0]) }
                total = total + n
            }
            return .number(total)
        },
        Builtin("product", 1) { a, _ in
            var total = Number.int(1)
            for e in try argArrayOrSet(a, 0) {
                guard case .number(let n) = e else { throw typeError(1, "any of {array, set} of numbers", a[0]) }
                total = total.isIntegral && n.isIntegral ? total * n : Number.productStep(total, n)
            }
            return .number(total)
        },
        Builtin("max", 1) { a, _ in try argArrayOrSet(a, 0).max() },
        Builtin("min", 1) { a, _ in try argArrayOrSet(a, 0).min() },
        Builtin("sort", 1) { a, _ in .array(try argArrayOrSet(a, 0).sorted()) },
        Builtin("all", 1) { a, _ in .bool(try argArrayOrSet(a, 0).allSatisfy { $0 == .true }) },
        Builtin("any", 1) { a, _ in .bool(try argArrayOrSet(a, 0).contains { $0 == .true }) },
    ]

    static let collections: [Builtin] = [
        Builtin("array.concat", 2) { a, _ in .array(try argArray(a, 0) + argArray(a, 1)) },
        Builtin("array.slice", 3) { a, _ in
            let x = try argArray(a, 0)
            var lo = try argInt(a, 1), hi = try argInt(a, 2)
            lo = max(0, lo)
            hi = min(x.count, hi)
            if lo >= hi { return .array([]) }
            return .array(Array(x[lo..<hi]))
        },
        Builtin("array.flatten", 1) { a, _ in
            var out: [Value] = []
            for e in try argArray(a, 0) {
                if case .array(let inner) = e { out.append(contentsOf: inner) } else { out.append(e) }
            }
            return .array(out)
        },
        Builtin("array.reverse", 1) { a, _ in .array(try argArray(a, 0).reversed()) },
        Builtin("object.get", 3) { a, _ in
            let o = a[0]
            switch o {
            case .object, .array, .set: break
            default: throw typeError(1, "object", o)
            }
            if case .array(let path) = a[1] {
                var cur = o
                for p in path {
                    if case .set(let members) = cur {
                        guard members.contains(p) else { return a[2] }
                        cur = p
                        continue
                    }
                    guard let n = cur.lookup(p) else { return a[2] }
                    cur = n
                }
                return cur
            }
            guard case .object(let obj) = o else { throw typeError(1, "object", o) }
            return obj[a[1]] ?? a[2]
        },
        Builtin("object.keys", 1) { a, _ in .set(Set(try argObject(a, 0).keys)) },
        Builtin("object.union", 2) { a, _ in .object(mergeObjects(try argObject(a, 0), try argObject(a, 1))) },
        Builtin("object.union_n", 1) { a, _ in
            var out: [Value: Value] = [:]
            for e in try argArray(a, 0) {
                guard case .object(let o) = e else { throw typeError(1, "array of objects", a[0]) }
                out = mergeObjects(out, o)
            }
            return .object(out)
        },
        Builtin("object.remove", 2) { a, _ in
            var o = try argObject(a, 0)
            for k in try keysOf(a, 1) { o[k] = nil }
            return .object(o)
        },
        Builtin("object.filter", 2) { a, _ in
            let o = try argObject(a, 0)
            let keep = Set(try keysOf(a, 1))
            return .object(o.filter { keep.contains($0.key) })
        },
        Builtin("object.subset", 2) { a, _ in
            switch (a[0], a[1]) {
            case (.object, .object), (.set, .set), (.array, .array): return .bool(isSubset(a[1], of: a[0]))
            case (.object, _), (.set, _), (.array, _): throw BuiltinError("both arguments must be objects, sets or arrays of the same type")
            default: throw typeError(1, "any of {object, set, array}", a[0])
            }
        },
        Builtin("json.filter", 2) { a, _ in
            let o = try argObject(a, 0)
            let paths = try jsonPaths(a, 1)
            return filterPaths(.object(o), paths) ?? .emptyObject
        },
        Builtin("json.remove", 2) { a, _ in
            let o = try argObject(a, 0)
            var v = Value.object(o)
            for p in try jsonPaths(a, 1) { v = removePath(v, p[...]) }
            return v
        },
        Builtin("json.patch", 2) { a, _ in try jsonPatch(a[0], try argArray(a, 1)) },
    ]

    static func keysOf(_ a: [Value], _ i: Int) throws -> [Value] {
        switch a[i] {
        case .array(let x): return x
        case .set(let s): return Array(s)
        case .object(let o): return Array(o.keys)
        default: throw typeError(i + 1, "any of {array, object, set}", a[i])
        }
    }

    static func mergeObjects(_ x: [Value: Value], _ y: [Value: Value]) -> [Value: Value] {
        var out = x
        for (k, v) in y {
            if case .object(let xo)? = out[k], case .object(let yo) = v {
                out[k] = .object(mergeObjects(xo, yo))
            } else {
                out[k] = v
            }
        }
        return out
    }

    static func isSubset(_ sub: Value, of sup: Value) -> Bool {
        switch (sub, sup) {
        case (.object(let s), .object(let p)):
            for (k, v) in s {
                guard let pv = p[k], isSubset(v, of: pv) else { return false }
            }
            return true
        case (.set(let s), .set(let p)): return s.isSubset(of: p)
        case (.array(let s), .array(let p)):
            // Contiguous subsequence.
            if s.isEmpty { return true }
            if s.count > p.count { return false }
            for start in 0...(p.count - s.count) where Array(p[start..<(start + s.count)]) == s { return true }
            return false
        default: return sub == sup
        }
    }

    static func jsonPaths(_ a: [Value], _ i: Int) throws -> [[Value]] {
        var out: [[Value]] = []
        for p in try keysOf(a, i) {
            switch p {
            case .string(let s):
                out.append(s.split(separator: "/", omittingEmptySubsequences: true).map {
                    .string($0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~"))
                })
            case .array(let parts): out.append(parts)
            default: throw typeError(i + 1, "set or array of strings or arrays", a[i])
            }
        }
        return out
    }

    static func filterPaths(_ v: Value, _ paths: [[Value]]) -> Value? {
        if paths.contains(where: { $0.isEmpty }) { return v }
        switch v {
        case .object(let o):
            var out: [Value: Value] = [:]
            for (k, child) in o {
                let sub = paths.filter { keyMatches($0[0], k) }.map { Array($0.dropFirst()) }
                if sub.isEmpty { continue }
                if let f = filterPaths(child, sub) { out[k] = f }
            }
            return .object(out)
        case .array(let arr):
            var out: [Value] = []
            for (i, child) in arr.enumerated() {
                let sub = paths.filter { keyMatches($0[0], .int(i)) }.map { Array($0.dropFirst()) }
                if sub.isEmpty { continue }
                if let f = filterPaths(child, sub) { out.append(f) }
            }
            return .array(out)
        case .set(let s):
            var out = Set<Value>()
            for e in s {
                let sub = paths.filter { keyMatches($0[0], e) }.map { Array($0.dropFirst()) }
                if !sub.isEmpty, let f = filterPaths(e, sub) { out.insert(f) }
            }
            return .set(out)
        default:
            return nil
        }
    }

    static func keyMatches(_ p: Value, _ k: Value) -> Bool {
        if p == k { return true }
        if case .string(let s) = p, case .number(let n) = k, let i = Int(s) { return n == .int(i) }
        return false
    }

    static func removePath(_ v: Value, _ path: ArraySlice<Value>) -> Value {
        guard let first = path.first else { return v }
        switch v {
        case .object(var o):
            for k in o.keys where keyMatches(first, k) {
                if path.count == 1 { o[k] = nil } else { o[k] = removePath(o[k]!, path.dropFirst()) }
            }
            return .object(o)
        case .array(var arr):
            for i in arr.indices.reversed() where keyMatches(first, .int(i)) {
                if path.count == 1 { arr.remove(at: i) } else { arr[i] = removePath(arr[i], path.dropFirst()) }
            }
            return .array(arr)
        case .set(var s):
            if path.count == 1 { s.remove(first) }
            return .set(s)
        default:
            return v
        }
    }

    static func jsonPatch(_ doc: Value, _ ops: [Value]) throws -> Value {
        var d = doc
        for op in ops {
            guard case .object(let o) = op, case .string(let kind)? = o["op"], let path = patchPath(o["path"]) else {
                throw BuiltinError("invalid patch operation")
            }
            switch kind {
            case "add": guard let v = o["value"] else { throw BuiltinError("missing value") }
                guard let r = patchAdd(d, path[...], v) else { throw BuiltinError("path not found") }
                d = r
            case "remove":
                guard lookupPath(d, path) != nil else { throw BuiltinError("path not found") }
                d = removePath(d, path.map { $0 }[...])
            case "replace":
                guard let v = o["value"], lookupPath(d, path) != nil else { throw BuiltinError("path not found") }
                d = removePath(d, path[...])
                guard let r = patchAdd(d, path[...], v) else { throw BuiltinError("path not found") }
                d = r
            case "copy", "move":
                guard let from = patchPath(o["from"]), let v = lookupPath(d, from) else { throw BuiltinError("path not found") }
                if kind == "move" { d = removePath(d, from[...]) }
                guard let r = patchAdd(d, path[...], v) else { throw BuiltinError("path not found") }
                d = r
            case "test":
                guard let v = o["value"], lookupPath(d, path) == v else { throw BuiltinError("test failed") }
            default: throw BuiltinError("unknown op \(kind)")
            }
        }
        return d
    }

    /// A patch operation's `path` or `from`: a JSON pointer (`/a/0`) or, as OPA also takes, an
    /// array of keys and indices (`["a", 0]`, what `walk` yields).
    static func patchPath(_ v: Value?) -> [Value]? {
        switch v {
        case .string(let s)?: return pointer(s)
        case .array(let parts)?:
            var out: [Value] = []
            for p in parts {
                switch p {
                case .string: out.append(p)
                case .number(let n) where n.isInteger: out.append(.string(n.description))
                default: return nil
                }
            }
            return out
        default: return nil
        }
    }

    static func pointer(_ s: String) -> [Value] {
        s.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map {
            .string($0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~"))
        }
    }

    static func lookupPath(_ v: Value, _ path: [Value]) -> Value? {
        var cur = v
        for p in path {
            if case .array = cur, case .string(let s) = p, let i = Int(s) {
                guard let n = cur.lookup(.int(i)) else { return nil }
                cur = n
            } else {
                guard let n = cur.lookup(p) else { return nil }
                cur = n
            }
        }
        return cur
    }

    static func patchAdd(_ v: Value, _ path: ArraySlice<Value>, _ newValue: Value) -> Value? {
        guard let first = path.first else { return newValue }
        switch v {
        case .object(var o):
            if path.count == 1 { o[first] = newValue; return .object(o) }
            guard let child = o[first], let r = patchAdd(child, path.dropFirst(), newValue) else { return nil }
            o[first] = r
            return .object(o)
        case .array(var arr):
            guard case .string(let s) = first else { return nil }
            let idx = s == "-" ? arr.count : (Int(s) ?? -1)
            guard idx >= 0, idx <= arr.count else { return nil }
            if path.count == 1 { arr.insert(newValue, at: idx); return .array(arr) }
            guard idx < arr.count, let r = patchAdd(arr[idx], path.dropFirst(), newValue) else { return nil }
            arr[idx] = r
            return .array(arr)
        case .set(var s):
            // OPA: a set member is added under its own key only ("/tags/x" with value "x").
            if path.count == 1, first == newValue { s.insert(newValue); return .set(s) }
            return nil
        default:
            return nil
        }
    }
}
