/// A regular expression with Go `regexp` (RE2) syntax and semantics, matched in linear time by a
/// Pike VM over the Unicode scalars of a string. Immutable and shareable.
struct RE2: Sendable {
    let pattern: String
    let program: RegexProgram
    /// Capture groups, not counting group 0 (the whole match).
    let numberOfGroups: Int
    /// Names of groups 1...numberOfGroups (nil when unnamed).
    let groupNames: [String?]

    /// Matching costs program size × text length, and a pattern may come from a caller
    /// (`regex.match(input.p, ...)`): a 690 KB alternation of 100,000 words took 34 ms per
    /// character of text. Programs over 20,000 instructions are refused ("expression too large"),
    /// far above what policies write; Go's own limit (checked while parsing) is 3.3 million.
    static let maxInstructions = 20_000

    /// Throws `RE2Error` (described as Go describes it: "error parsing regexp: …").
    init(_ pattern: String) throws(RE2Error) {
        let parsed = try RegexParser.parse(pattern)
        self.pattern = pattern
        program = RegexCompiler.compile(parsed.node, numCap: parsed.numCap)
        if program.insts.count > RE2.maxInstructions { throw RE2Error(.large, pattern) }
        numberOfGroups = parsed.numCap
        groupNames = parsed.names
    }

    /// A subject string as scalars, plus the string index of every scalar offset (and the end).
    struct Subject {
        let string: String
        let scalars: [UInt32]
        let indices: [String.Index]

        init(_ s: String) {
            string = s
            scalars = s.unicodeScalars.map(\.value)
            var idx = Array(s.unicodeScalars.indices)
            idx.append(s.endIndex)
            indices = idx
        }

        func range(_ slots: [Int], _ group: Int) -> Range<String.Index>? {
            let a = slots[2 * group], b = slots[2 * group + 1]
            return a < 0 || b < 0 ? nil : indices[a]..<indices[b]
        }

        func substring(_ from: Int, _ to: Int) -> Substring { string[indices[from]..<indices[to]] }
    }

    func matches(_ s: String) -> Bool {
        var vm = PikeVM(program, text: s.unicodeScalars.map(\.value), slots: 0)
        return vm.search(from: 0) != nil
    }

    /// The leftmost-first match: group 0 first; nil for a group that did not participate.
    func firstMatch(in s: String) -> [Range<String.Index>?]? {
        let subject = Subject(s)
        var vm = PikeVM(program, text: subject.scalars, slots: program.numSlots)
        guard let slots = vm.search(from: 0) else { return nil }
        return (0...numberOfGroups).map { subject.range(slots, $0) }
    }

    /// Successive matches as Go's `FindAll…(s, n)` finds them: `limit` < 0 means all; an empty
    /// match right after the previous match is skipped.
    func matches(in s: String, limit: Int) -> [[Range<String.Index>?]] {
        let subject = Subject(s)
        return allMatches(subject.scalars, limit: limit, slots: program.numSlots).map { slots in
            (0...numberOfGroups).map { subject.range(slots, $0) }
        }
    }

    /// Go's `allMatches` over scalar offsets.
    func allMatches(_ text: [UInt32], limit: Int, slots: Int) -> [[Int]] {
        var out: [[Int]] = []
        var vm = PikeVM(program, text: text, slots: max(slots, 2))
        var pos = 0
        var prevMatchEnd = -1
        while limit < 0 || out.count < limit, pos <= text.count {
            guard let m = vm.search(from: pos) else { break }
            var accept = true
            if m[1] == pos {
                if m[0] == prevMatchEnd { accept = false }
                pos += 1
            } else {
                pos = m[1]
            }
            prevMatchEnd = m[1]
            if accept { out.append(m) }
        }
        return out
    }

    /// Go's `QuoteMeta`: the text as a pattern matching itself.
    static func quoteMeta(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            if "\\.+*?()|[]{}^$".unicodeScalars.contains(c) { out.append("\\") }
            out.unicodeScalars.append(c)
        }
        return out
    }
}
