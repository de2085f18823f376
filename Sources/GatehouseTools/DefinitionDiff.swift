/// A line diff of two definitions' pretty texts, for a person deciding whether to approve a
/// change. Common leading and trailing lines are matched first; the rest by a longest common
/// subsequence when it is small, else shown as all removed then all added (bounded work for a
/// definition an attacker made huge).
public enum DefinitionDiff {
    public enum Line: Sendable, Equatable {
        case same(String)
        case removed(String)
        case added(String)

        /// `  text`, `- text`, `+ text`.
        public var rendered: String {
            switch self {
            case .same(let text): "  " + text
            case .removed(let text): "- " + text
            case .added(let text): "+ " + text
            }
        }
    }

    /// Above this many cells (old lines × new lines) the middle is not aligned line by line.
    static let maxTableCells = 1_000_000

    public static func lines(old: String, new: String) -> [Line] {
        let a = old.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let b = new.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var prefix = 0
        while prefix < a.count, prefix < b.count, a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix, suffix < b.count - prefix, a[a.count - 1 - suffix] == b[b.count - 1 - suffix] { suffix += 1 }
        let middleA = Array(a[prefix..<(a.count - suffix)])
        let middleB = Array(b[prefix..<(b.count - suffix)])
        var out = a[..<prefix].map(Line.same)
        out += middle(middleA, middleB)
        out += a[(a.count - suffix)...].map(Line.same)
        return out
    }

    /// The rendered diff with unchanged runs longer than `context` lines on each side elided.
    public static func render(_ lines: [Line], context: Int = 3) -> String {
        var keep = [Bool](repeating: false, count: lines.count)
        for (index, line) in lines.enumerated() {
            if case .same = line { continue }
            for i in max(0, index - context)...min(lines.count - 1, index + context) { keep[i] = true }
        }
        var out: [String] = []
        var skipped = false
        for (index, line) in lines.enumerated() {
            if keep[index] {
                out.append(line.rendered)
                skipped = false
            } else if !skipped {
                out.append("  …")
                skipped = true
            }
        }
        return out.joined(separator: "\n")
    }

    private static func middle(_ a: [String], _ b: [String]) -> [Line] {
        if a.isEmpty { return b.map(Line.added) }
        if b.isEmpty { return a.map(Line.removed) }
        guard a.count * b.count <= maxTableCells else { return a.map(Line.removed) + b.map(Line.added) }
        // lengths[i][j]: the longest common subsequence of a[i...] and b[j...].
        let width = b.count + 1
        var lengths = [Int32](repeating: 0, count: (a.count + 1) * width)
        for i in stride(from: a.count - 1, through: 0, by: -1) {
            for j in stride(from: b.count - 1, through: 0, by: -1) {
                lengths[i * width + j] = a[i] == b[j] ? lengths[(i + 1) * width + j + 1] + 1
                    : max(lengths[(i + 1) * width + j], lengths[i * width + j + 1])
            }
        }
        var out: [Line] = []
        var i = 0, j = 0
        while i < a.count, j < b.count {
            if a[i] == b[j] {
                out.append(.same(a[i])); i += 1; j += 1
            } else if lengths[(i + 1) * width + j] >= lengths[i * width + j + 1] {
                out.append(.removed(a[i])); i += 1
            } else {
                out.append(.added(b[j])); j += 1
            }
        }
        out += a[i...].map(Line.removed)
        out += b[j...].map(Line.added)
        return out
    }
}
