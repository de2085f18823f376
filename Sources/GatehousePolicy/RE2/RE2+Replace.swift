extension RE2 {
    /// Go's `ReplaceAllString`: `$1`, `${1}`, `$name`, `${name}` expand to the group's text (empty
    /// if there is no such group or it did not participate); `$$` is `$`. As in Go, a name is the
    /// longest run of letters, digits and `_`, so `$1x` refers to a group named `1x`.
    func replacingAll(in s: String, template: String) -> String {
        let subject = Subject(s)
        let text = subject.scalars
        let tmpl = Array(template.unicodeScalars)
        let expands = tmpl.contains("$")
        var vm = PikeVM(program, text: text, slots: expands ? program.numSlots : 2)
        var out = ""
        var lastMatchEnd = 0
        var searchPos = 0
        while searchPos <= text.count {
            guard let m = vm.search(from: searchPos) else { break }
            out += subject.substring(lastMatchEnd, m[0])
            if m[1] > lastMatchEnd || m[0] == 0 {
                if expands { expand(tmpl, subject, m, into: &out) } else { out += template }
            }
            lastMatchEnd = m[1]
            searchPos = searchPos + 1 > m[1] ? searchPos + 1 : m[1]
        }
        out += subject.substring(lastMatchEnd, text.count)
        return out
    }

    private func expand(_ t: [Unicode.Scalar], _ subject: Subject, _ m: [Int], into out: inout String) {
        var i = 0
        while i < t.count {
            guard t[i] == "$" else {
                out.unicodeScalars.append(t[i])
                i += 1
                continue
            }
            i += 1
            if i < t.count, t[i] == "$" {
                out += "$"
                i += 1
                continue
            }
            guard let (name, next) = RE2.templateName(t, at: i) else {
                out += "$"
                continue
            }
            i = next
            if let g = groupIndex(name) {
                if 2 * g + 1 < m.count, m[2 * g] >= 0 { out += subject.substring(m[2 * g], m[2 * g + 1]) }
            } else if let g = groupNames.indices.first(where: { groupNames[$0] == name && m[2 * ($0 + 1)] >= 0 }) {
                out += subject.substring(m[2 * (g + 1)], m[2 * (g + 1) + 1])
            }
        }
    }

    /// A decimal group number as Go reads one (no leading zeros, below 1e8), else nil (a name).
    private func groupIndex(_ name: String) -> Int? {
        guard name.unicodeScalars.allSatisfy({ $0.value >= 0x30 && $0.value <= 0x39 }) else { return nil }
        if name.count > 1 && name.hasPrefix("0") { return nil }
        guard name.count <= 9 else { return nil }
        return Int(name)
    }

    /// `name` or `{name}` at `i`: the name (letters, digits, `_`) and the index after it.
    static func templateName(_ t: [Unicode.Scalar], at start: Int) -> (String, Int)? {
        var i = start
        let brace = i < t.count && t[i] == "{"
        if brace { i += 1 }
        let nameStart = i
        while i < t.count, isNameScalar(t[i]) { i += 1 }
        guard i > nameStart else { return nil }
        var name = String.UnicodeScalarView()
        name.append(contentsOf: t[nameStart..<i])
        if brace {
            guard i < t.count, t[i] == "}" else { return nil }
            i += 1
        }
        return (String(name), i)
    }

    private static func isNameScalar(_ c: Unicode.Scalar) -> Bool {
        if c == "_" { return true }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter, .decimalNumber:
            return true
        default:
            return false
        }
    }

    /// Go's `Regexp.Split(s, n)`: `limit` < 0 means all pieces.
    func split(_ s: String, limit: Int) -> [String] {
        if limit == 0 { return [] }
        if !pattern.isEmpty && s.isEmpty { return [""] }
        let subject = Subject(s)
        let matches = allMatches(subject.scalars, limit: limit, slots: 2)
        var out: [String] = []
        var beg = 0, end = 0
        for m in matches {
            if limit > 0 && out.count == limit - 1 { break }
            end = m[0]
            if m[1] != 0 { out.append(String(subject.substring(beg, end))) }
            beg = m[1]
        }
        if end != subject.scalars.count { out.append(String(subject.substring(beg, subject.scalars.count))) }
        return out
    }
}
