/// A set of Unicode scalar values as sorted, non-overlapping, non-adjacent closed ranges.
struct CharClass: Sendable, Equatable {
    static let maxScalar: UInt32 = 0x10FFFF

    private(set) var ranges: [ClosedRange<UInt32>]

    init() { ranges = [] }

    init(_ ranges: [ClosedRange<UInt32>]) {
        self.ranges = ranges
        normalize()
    }

    static let any = CharClass([0...maxScalar])

    var isEmpty: Bool { ranges.isEmpty }

    mutating func add(_ lo: UInt32, _ hi: UInt32) {
        ranges.append(lo...hi)
    }

    mutating func add(_ other: CharClass) {
        ranges.append(contentsOf: other.ranges)
    }

    /// Sorts and merges overlapping or adjacent ranges.
    mutating func normalize() {
        guard ranges.count > 1 else { return }
        ranges.sort { $0.lowerBound < $1.lowerBound }
        var out: [ClosedRange<UInt32>] = []
        out.reserveCapacity(ranges.count)
        for r in ranges {
            if let last = out.last, r.lowerBound <= last.upperBound &+ 1 {
                if r.upperBound > last.upperBound { out[out.count - 1] = last.lowerBound...r.upperBound }
            } else {
                out.append(r)
            }
        }
        ranges = out
    }

    /// The complement within 0...U+10FFFF (the receiver must be normalized).
    func negated() -> CharClass {
        var out: [ClosedRange<UInt32>] = []
        var next: UInt32 = 0
        for r in ranges {
            if r.lowerBound > next { out.append(next...(r.lowerBound - 1)) }
            next = r.upperBound &+ 1
        }
        if next <= CharClass.maxScalar, !(ranges.last?.upperBound == CharClass.maxScalar) {
            out.append(next...CharClass.maxScalar)
        }
        var c = CharClass()
        c.ranges = out
        return c
    }

    /// Binary search (the receiver must be normalized).
    func contains(_ v: UInt32) -> Bool {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let r = ranges[mid]
            if v < r.lowerBound { hi = mid } else if v > r.upperBound { lo = mid + 1 } else { return true }
        }
        return false
    }

    /// The class closed under simple case folding (Go's appendFoldedClass).
    func caseFolded() -> CharClass {
        var out = self
        for r in ranges {
            for v in CaseFolding.foldable(in: r) {
                for f in CaseFolding.orbit(of: v) { out.add(f, f) }
            }
        }
        out.normalize()
        return out
    }

    /// A single scalar, if the class is exactly one.
    var singleScalar: UInt32? {
        if ranges.count == 1, ranges[0].lowerBound == ranges[0].upperBound { return ranges[0].lowerBound }
        return nil
    }
}
