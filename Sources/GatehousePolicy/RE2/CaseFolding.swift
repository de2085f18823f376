/// Simple case folding orbits, the equivalence classes Go's `unicode.SimpleFold` walks
/// (e.g. `K`, `k` and KELVIN SIGN U+212A). Derived once from the single-scalar lower/upper/title
/// mappings in `Unicode.Scalar.Properties`; the Turkic dotted/dotless i (U+0130, U+0131) fold only
/// to themselves, as in Unicode's CaseFolding.txt (C+S).
enum CaseFolding {
    /// Go folds nothing outside this range (`minFold`, `maxFold` in regexp/syntax).
    static let minFold: UInt32 = 0x41
    static let maxFold: UInt32 = 0x1E943

    private struct Tables: Sendable {
        var orbits: [UInt32: [UInt32]] = [:]
        var foldable: [UInt32] = []
    }

    private static let tables: Tables = build()

    /// The other members of `v`'s orbit (empty when `v` has no case variants).
    static func orbit(of v: UInt32) -> [UInt32] {
        tables.orbits[v] ?? []
    }

    /// Scalars in `r` with a non-trivial orbit, ascending.
    static func foldable(in r: ClosedRange<UInt32>) -> ArraySlice<UInt32> {
        let f = tables.foldable
        var lo = 0, hi = f.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if f[mid] < r.lowerBound { lo = mid + 1 } else { hi = mid }
        }
        var end = lo
        while end < f.count, f[end] <= r.upperBound { end += 1 }
        return f[lo..<end]
    }

    private static func build() -> Tables {
        var parent: [UInt32: UInt32] = [:]
        func find(_ x: UInt32) -> UInt32 {
            var x = x
            while let p = parent[x], p != x { x = p }
            return x
        }
        func union(_ a: UInt32, _ b: UInt32) {
            if parent[a] == nil { parent[a] = a }
            if parent[b] == nil { parent[b] = b }
            let ra = find(a), rb = find(b)
            if ra != rb { parent[max(ra, rb)] = min(ra, rb) }
        }
        for v in minFold...maxFold {
            guard v != 0x130, v != 0x131, let s = Unicode.Scalar(v), s.properties.changesWhenCaseMapped else { continue }
            let p = s.properties
            for m in [p.lowercaseMapping, p.uppercaseMapping, p.titlecaseMapping] {
                let u = m.unicodeScalars
                guard u.count == 1, let t = u.first?.value, t != v, t != 0x130, t != 0x131 else { continue }
                union(v, t)
            }
        }
        var groups: [UInt32: [UInt32]] = [:]
        for v in parent.keys { groups[find(v), default: []].append(v) }
        var t = Tables()
        for members in groups.values where members.count > 1 {
            for m in members { t.orbits[m] = members.filter { $0 != m }.sorted() }
        }
        t.foldable = t.orbits.keys.sorted()
        return t
    }
}
