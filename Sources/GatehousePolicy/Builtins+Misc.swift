import BigInt
import Foundation

extension Builtins {
    static let misc: [Builtin] = [
        Builtin("units.parse_bytes", 1) { a, _ in
            let s = try argString(a, 0)
            guard let n = parseUnits(s, bytes: true) else { throw BuiltinError("could not parse byte amount \(JSON.serialize(.string(s)))") }
            return .number(n)
        },
        Builtin("units.parse", 1) { a, _ in
            let s = try argString(a, 0)
            guard let n = parseUnits(s, bytes: false) else { throw BuiltinError("could not parse amount \(JSON.serialize(.string(s)))") }
            return .number(n)
        },
        Builtin("semver.is_valid", 1) { a, _ in
            guard case .string(let s) = a[0] else { return .false }
            return .bool(SemVer(s) != nil)
        },
        Builtin("semver.compare", 2) { a, _ in
            let x = try argString(a, 0), y = try argString(a, 1)
            guard let v1 = SemVer(x) else { throw BuiltinError("operand 1: string \(JSON.serialize(.string(x))) is not a valid SemVer") }
            guard let v2 = SemVer(y) else { throw BuiltinError("operand 2: string \(JSON.serialize(.string(y))) is not a valid SemVer") }
            return .int(v1.compare(v2))
        },
        Builtin("uuid.rfc4122", 1) { a, ctx in
            let k = try argString(a, 0)
            if let u = ctx.uuids[k] { return .string(u) }
            let u = UUID().uuidString.lowercased()
            ctx.uuids[k] = u
            return .string(u)
        },
        Builtin("uuid.parse", 1) { a, _ in
            let s = try argString(a, 0)
            guard let u = UUID(uuidString: s) else { return nil }
            let b = withUnsafeBytes(of: u.uuid) { Array($0) }
            let version = Int(b[6] >> 4)
            let variant: String
            switch b[8] >> 5 {
            case 0b110: variant = "Microsoft"
            case 0b111: variant = "Future"
            default: variant = (b[8] >> 6) == 0b10 ? "RFC4122" : "Reserved"
            }
            return ["version": .int(version), "variant": .string(variant)]
        },
        Builtin("trace", 1) { a, ctx in
            let s = try argString(a, 0)
            ctx.printHook?("trace: \(s)")
            return .true
        },
        Builtin("graph.reachable", 2) { a, _ in
            let g = try argObject(a, 0)
            var frontier = try argArrayOrSet(a, 1)
            var seen = Set<Value>()
            while let n = frontier.popLast() {
                if seen.contains(n) { continue }
                guard let edges = g[n] else { continue }
                seen.insert(n)
                switch edges {
                case .array(let x): frontier.append(contentsOf: x)
                case .set(let x): frontier.append(contentsOf: x)
                default: break
                }
            }
            return .set(seen)
        },
        Builtin("graph.reachable_paths", 2) { a, _ in
            let g = try argObject(a, 0)
            var out = Set<Value>()
            for node in try argArrayOrSet(a, 1) {
                guard let edges = g[node] else { continue }
                let next = graphEdges(edges)
                if next.isEmpty { out.insert(.array([node])); continue }
                for n in next { reachablePaths(g, n, [node], [node], &out) }
            }
            return .set(out)
        },
        Builtin("opa.runtime", 0) { _, _ in .emptyObject },
        // A relation: evaluated by the evaluator, which yields every [path, value] pair.
        Builtin("walk", 1) { _, _ in throw BuiltinError("walk must be called as a relation") },
        // Present so policies that call it compile and can be tested with `with http.send as mock`;
        // the engine does no networking, so a real call fails the query.
        Builtin("http.send", 1, alwaysStrict: true) { _, _ in
            throw BuiltinError("http.send is not supported by the Gatehouse policy engine (no network access); mock it with `with`")
        },
    ]

    static func graphEdges(_ v: Value) -> [Value] {
        switch v {
        case .array(let x): return x
        case .set(let x): return x.sorted()
        default: return []
        }
    }

    /// Every path from `root` that ends at a node without edges, at a cycle, or before an unknown node.
    static func reachablePaths(_ g: [Value: Value], _ root: Value, _ path: [Value], _ reached: Set<Value>, _ out: inout Set<Value>) {
        guard let edges = g[root] else { out.insert(.array(path)); return }
        let path = path + [root]
        let next = graphEdges(edges)
        if next.isEmpty { out.insert(.array(path)); return }
        var reached = reached
        reached.insert(root)
        for n in next {
            if reached.contains(n) { out.insert(.array(path)) } else { reachablePaths(g, n, path, reached, &out) }
        }
    }

    static func parseUnits(_ raw: String, bytes: Bool) -> Number? {
        var s = raw.trimmingCharacters(in: .whitespaces)
        if s.hasPrefix("\"") && s.hasSuffix("\"") && s.count >= 2 { s = String(s.dropFirst().dropLast()) }
        var numPart = ""
        var idx = s.startIndex
        while idx < s.endIndex, s[idx].isNumber || s[idx] == "." || (idx == s.startIndex && s[idx] == "-") {
            numPart.append(s[idx])
            idx = s.index(after: idx)
        }
        let unit = String(s[idx...]).trimmingCharacters(in: .whitespaces)
        guard !numPart.isEmpty, let n = Number(parsing: numPart) else { return nil }
        let mult: BigInt
        if bytes {
            switch unit.lowercased() {
            case "", "b": mult = 1
            case "k", "kb": mult = 1000
            case "ki", "kib": mult = 1024
            case "m", "mb": mult = BigInt(1000).power(2)
            case "mi", "mib": mult = BigInt(1024).power(2)
            case "g", "gb": mult = BigInt(1000).power(3)
            case "gi", "gib": mult = BigInt(1024).power(3)
            case "t", "tb": mult = BigInt(1000).power(4)
            case "ti", "tib": mult = BigInt(1024).power(4)
            case "p", "pb": mult = BigInt(1000).power(5)
            case "pi", "pib": mult = BigInt(1024).power(5)
            case "e", "eb": mult = BigInt(1000).power(6)
            case "ei", "eib": mult = BigInt(1024).power(6)
            default: return nil
            }
            let r = n * Number(mult)
            // Byte amounts are whole numbers.
            if case .float(let d) = r { return Number(d.rounded(.down)) }
            return r
        }
        switch unit {
        case "": return n
        case "m": return Number.divide(n, .int(1000))
        case "k", "K": mult = 1000
        case "ki", "Ki": mult = 1024
        case "M": mult = BigInt(1000).power(2)
        case "Mi": mult = BigInt(1024).power(2)
        case "G": mult = BigInt(1000).power(3)
        case "Gi": mult = BigInt(1024).power(3)
        case "T": mult = BigInt(1000).power(4)
        case "Ti": mult = BigInt(1024).power(4)
        case "P": mult = BigInt(1000).power(5)
        case "Pi": mult = BigInt(1024).power(5)
        case "E": mult = BigInt(1000).power(6)
        case "Ei": mult = BigInt(1024).power(6)
        default: return nil
        }
        return n * Number(mult)
    }
}

/// Semantic version 2.0.0.
struct SemVer {
    let major: BigInt, minor: BigInt, patch: BigInt
    let pre: [String]

    init?(_ s: String) {
        var core = s
        if let plus = core.firstIndex(of: "+") {
            let build = core[core.index(after: plus)...]
            if build.isEmpty || build.split(separator: ".", omittingEmptySubsequences: false).contains(where: { $0.isEmpty || !$0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" } }) { return nil }
            core = String(core[..<plus])
        }
        var preParts: [String] = []
        if let dash = core.firstIndex(of: "-") {
            let p = core[core.index(after: dash)...]
            preParts = p.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            if p.isEmpty || preParts.contains(where: { $0.isEmpty || !$0.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") } }) { return nil }
            if preParts.contains(where: { $0.allSatisfy(\.isNumber) && $0.count > 1 && $0.hasPrefix("0") }) { return nil }
            core = String(core[..<dash])
        }
        let nums = core.split(separator: ".", omittingEmptySubsequences: false)
        guard nums.count == 3 else { return nil }
        var vals: [BigInt] = []
        for n in nums {
            guard !n.isEmpty, n.allSatisfy({ $0.isASCII && $0.isNumber }), !(n.count > 1 && n.hasPrefix("0")), let v = BigInt(String(n)) else { return nil }
            vals.append(v)
        }
        major = vals[0]
        minor = vals[1]
        patch = vals[2]
        pre = preParts
    }

    func compare(_ o: SemVer) -> Int {
        for (a, b) in [(major, o.major), (minor, o.minor), (patch, o.patch)] where a != b { return a < b ? -1 : 1 }
        if pre.isEmpty && o.pre.isEmpty { return 0 }
        if pre.isEmpty { return 1 }
        if o.pre.isEmpty { return -1 }
        for i in 0..<min(pre.count, o.pre.count) {
            let a = pre[i], b = o.pre[i]
            if a == b { continue }
            let an = BigInt(a), bn = BigInt(b)
            switch (an, bn) {
            case (let x?, let y?): return x < y ? -1 : 1
            case (_?, nil): return -1
            case (nil, _?): return 1
            default: return Value.compareStrings(a, b) < 0 ? -1 : 1
            }
        }
        return pre.count == o.pre.count ? 0 : (pre.count < o.pre.count ? -1 : 1)
    }
}
