import BigInt
import Foundation

extension Builtins {
    static let misc: [Builtin] = [
        // Amounts longer than 400 characters are refused: the exact arithmetic on them was
        // quadratic (100,000 digits from a caller took half a minute).
        Builtin("units.parse_bytes", 1) { a, _ in
            let s = try argString(a, 0)
            guard s.utf8.count <= Number.maxExactDigits else { throw BuiltinError("units.parse_bytes: amount longer than \(Number.maxExactDigits) characters") }
            do { return .number(try unitsParseBytes(s)) } catch let e as UnitsError { throw BuiltinError(e.message) }
        },
        Builtin("units.parse", 1) { a, _ in
            let s = try argString(a, 0)
            guard s.utf8.count <= Number.maxExactDigits else { throw BuiltinError("units.parse: amount longer than \(Number.maxExactDigits) characters") }
            do { return .number(try unitsParse(s)) } catch let e as UnitsError { throw BuiltinError(e.message) }
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
            // OPA caches by the argument's hash: any value is a key, not only strings.
            let k = JSON.serialize(a[0])
            if let u = ctx.uuids[k] { return .string(u) }
            let u = UUID().uuidString.lowercased()
            ctx.uuids[k] = u
            return .string(u)
        },
        Builtin("uuid.parse", 1) { a, _ in
            guard let b = parseGoogleUUID(try argString(a, 0)) else { return nil }
            return uuidFields(b)
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

    /// github.com/google/uuid's Parse: 36 characters with dashes, a "urn:uuid:" prefix (any case),
    /// any two characters around them (meant as braces), or 32 hex digits.
    static func parseGoogleUUID(_ text: String) -> [UInt8]? {
        var s = Array(text.utf8)[...]
        switch s.count {
        case 32:
            var out: [UInt8] = []
            for i in stride(from: 0, to: 32, by: 2) {
                guard let h = hexVal(s[i]), let l = hexVal(s[i + 1]) else { return nil }
                out.append(h << 4 | l)
            }
            return out
        case 36: break
        case 45:
            guard String(decoding: s.prefix(9), as: UTF8.self).lowercased() == "urn:uuid:" else { return nil }
            s = s.dropFirst(9)
        case 38: s = s.dropFirst().dropLast()
        default: return nil
        }
        let t = Array(s)
        guard t[8] == UInt8(ascii: "-"), t[13] == UInt8(ascii: "-"), t[18] == UInt8(ascii: "-"), t[23] == UInt8(ascii: "-") else { return nil }
        var out: [UInt8] = []
        for x in [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34] {
            guard let h = hexVal(t[x]), let l = hexVal(t[x + 1]) else { return nil }
            out.append(h << 4 | l)
        }
        return out
    }

    /// The fields OPA's uuid.parse reports: version and variant, and for versions 1 and 2 the time
    /// (Unix nanoseconds), node id, MAC address kind and clock sequence; for 2 the id and domain.
    static func uuidFields(_ u: [UInt8]) -> Value {
        let version = Int(u[6] >> 4)
        let variant: String
        switch u[8] {
        case let b where b & 0xC0 == 0x80: variant = "RFC4122"
        case let b where b & 0xE0 == 0xC0: variant = "Microsoft"
        case let b where b & 0xE0 == 0xE0: variant = "Future"
        default: variant = "Reserved"
        }
        var out: [Value: Value] = ["version": .int(version), "variant": .string(variant)]
        guard version == 1 || version == 2 else { return .object(out) }
        func be(_ r: Range<Int>) -> Int64 { u[r].reduce(Int64(0)) { $0 << 8 | Int64($1) } }
        let ticks = be(0..<4) | be(4..<6) << 32 | (be(6..<8) & 0xFFF) << 48
        let since1970 = ticks &- 122_192_928_000_000_000  // 100 ns ticks from 1582-10-15; Go wraps on overflow
        out["time"] = .number(Number(Int(since1970 / 10_000_000 &* 1_000_000_000 &+ since1970 % 10_000_000 * 100)))
        out["nodeid"] = .string(u[10..<16].map { hexString([$0]) }.joined(separator: "-"))
        let mac = u[10]
        out["macvariables"] = .string(mac & 3 == 3 ? "local:multicast" : (mac & 1 == 1 ? "global:multicast" : (mac & 2 == 2 ? "local:unicast" : "global:unicast")))
        out["clocksequence"] = .int(Int(be(8..<10) & 0x3FFF))
        if version == 2 {
            out["id"] = .number(Number(Int(be(0..<4))))
            let domain = Int(u[9])
            out["domain"] = .string(domain < 3 ? ["Person", "Group", "Org"][domain] : "Domain\(domain)")
        }
        return .object(out)
    }

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
}

/// A semantic version as OPA's internal/semver reads it: a leading "v" dropped, metadata after
/// the first "+", pre-release after the first "-" (each dot-separated [0-9A-Za-z-]+ identifiers,
/// or empty), then three dot-separated base-10 int64 numbers (leading zeros and a "+" allowed).
struct SemVer {
    let major: Int64, minor: Int64, patch: Int64
    let pre: String

    init?(_ s: String) {
        var version = s.hasPrefix("v") ? String(s.dropFirst()) : s
        let metadata: String
        (version, metadata) = Self.cut(version, "+")
        guard metadata.isEmpty || Self.isIdentifiers(metadata) else { return nil }
        (version, pre) = Self.cut(version, "-")
        guard pre.isEmpty || Self.isIdentifiers(pre) else { return nil }
        let parts = version.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let a = Self.goParseInt(parts[0]), let b = Self.goParseInt(parts[1]), let c = Self.goParseInt(parts[2]) else { return nil }
        (major, minor, patch) = (a, b, c)
    }

    static func cut(_ s: String, _ sep: Character) -> (String, String) {
        guard let i = s.firstIndex(of: sep) else { return (s, "") }
        return (String(s[..<i]), String(s[s.index(after: i)...]))
    }

    /// `^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$`
    static func isIdentifiers(_ s: String) -> Bool {
        s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
            !part.isEmpty && part.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == UInt8(ascii: "-")
            }
        }
    }

    /// strconv.ParseInt(s, 10, 64): an optional sign, then ASCII digits, in range.
    static func goParseInt(_ s: Substring) -> Int64? {
        let digits = s.first == "+" || s.first == "-" ? s.dropFirst() : s
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(s.first == "+" ? digits : s)
    }

    func compare(_ o: SemVer) -> Int {
        for (a, b) in [(major, o.major), (minor, o.minor), (patch, o.patch)] where a != b { return a < b ? -1 : 1 }
        if pre == o.pre { return 0 }
        if pre.isEmpty { return 1 }
        if o.pre.isEmpty { return -1 }
        var (a, afterA) = Self.cut(pre, ".")
        var (b, afterB) = Self.cut(o.pre, ".")
        while true {
            if a.isEmpty && !b.isEmpty { return -1 }
            if !a.isEmpty && b.isEmpty { return 1 }
            let aNum = !a.isEmpty && a.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
            let bNum = !b.isEmpty && b.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
            if aNum != bNum { return aNum ? -1 : 1 }
            if aNum {
                // strconv.Atoi: out of range values clamp to the int64 maximum.
                let x = Int64(a) ?? .max, y = Int64(b) ?? .max
                if x != y { return x < y ? -1 : 1 }
            } else if a != b {
                return Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8)) ? -1 : 1
            }
            if !afterA.isEmpty && afterB.isEmpty { return 1 }
            if afterA.isEmpty && !afterB.isEmpty { return -1 }
            (a, afterA) = Self.cut(afterA, ".")
            (b, afterB) = Self.cut(afterB, ".")
        }
    }
}
