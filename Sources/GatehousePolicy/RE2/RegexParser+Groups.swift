extension RegexParser {
    /// `(`, `(?flags)`, `(?flags:`, `(?P<name>` or `(?<name>`.
    mutating func openGroup() throws(RE2Error) {
        if pos + 1 < n, pat[pos + 1] == ascii("?") {
            try parsePerlGroup()
            return
        }
        numCap += 1
        names.append(nil)
        frames.append(Frame(capture: numCap, savedFlags: flags))
        pos += 1
    }

    private mutating func parsePerlGroup() throws(RE2Error) {
        let start = pos
        let rest = n - start
        let p2 = rest > 2 ? pat[start + 2] : 0
        if (rest > 4 && p2 == ascii("P") && pat[start + 3] == ascii("<")) || (rest > 3 && p2 == ascii("<")) {
            try parseNamedGroup(nameStart: start + (p2 == ascii("<") ? 3 : 4))
            return
        }
        var f = flags
        var negate = false
        var sawFlag = false
        var i = start + 2
        while i < n {
            let c = pat[i]
            i += 1
            switch c {
            case ascii("i"): f = set(f, .foldCase, !negate); sawFlag = true
            case ascii("m"): f = set(f, .oneLine, negate); sawFlag = true
            case ascii("s"): f = set(f, .dotNL, !negate); sawFlag = true
            case ascii("U"): f = set(f, .nonGreedy, !negate); sawFlag = true
            case ascii("-"):
                if negate { throw RE2Error(.invalidPerlOp, text(start, i)) }
                negate = true
                sawFlag = false
            case ascii(":"), ascii(")"):
                if negate && !sawFlag { throw RE2Error(.invalidPerlOp, text(start, i)) }
                if c == ascii(":") { frames.append(Frame(capture: nil, savedFlags: flags)) }
                flags = f
                pos = i
                return
            default:
                throw RE2Error(.invalidPerlOp, text(start, i))
            }
        }
        throw RE2Error(.invalidPerlOp, text(start, i))
    }

    private func set(_ f: RegexFlags, _ flag: RegexFlags, _ on: Bool) -> RegexFlags {
        var f = f
        if on { f.insert(flag) } else { f.remove(flag) }
        return f
    }

    private mutating func parseNamedGroup(nameStart: Int) throws(RE2Error) {
        let start = pos
        guard let end = pat[start...].firstIndex(of: ascii(">")) else {
            throw RE2Error(.invalidNamedCapture, text(start, n))
        }
        let name = text(nameStart, end)
        let valid = nameStart < end && pat[nameStart..<end].allSatisfy { c in
            c == ascii("_") || (c < 0x80 && (isASCIIAlnum(c)))
        }
        guard valid else { throw RE2Error(.invalidNamedCapture, text(start, end + 1)) }
        numCap += 1
        names.append(name)
        frames.append(Frame(capture: numCap, savedFlags: flags))
        pos = end + 1
    }

    /// `|`: the current concatenation becomes one alternative.
    mutating func finishAlternative() throws(RE2Error) {
        let top = frames.count - 1
        let item = try concatItem(frames[top].current)
        frames[top].current = []
        frames[top].alternatives.append(item)
    }

    /// `)`: closes the innermost group.
    mutating func closeGroup() throws(RE2Error) {
        guard frames.count > 1 else { throw RE2Error(.unexpectedParen, whole) }
        let frame = frames.removeLast()
        var item = try finish(frame)
        flags = frame.savedFlags
        if let cap = frame.capture {
            item = Item(node: .capture(cap, item.node), height: item.height + 1, size: item.size + 2)
        }
        try append(item)
    }

    /// The group's alternatives as one item.
    mutating func finish(_ frame: Frame) throws(RE2Error) -> Item {
        var alts = frame.alternatives
        alts.append(try concatItem(frame.current))
        if alts.count == 1 { return alts[0] }
        let item = Item(
            node: .alternate(alts.map(\.node)),
            height: 1 + (alts.map(\.height).max() ?? 0),
            size: alts.reduce(Int64(alts.count - 1)) { $0 + $1.size })
        try checkLimits(item)
        return item
    }

    private func concatItem(_ items: [Item]) throws(RE2Error) -> Item {
        if items.isEmpty { return Item(node: .empty, height: 1, size: 1) }
        if items.count == 1 { return items[0] }
        let item = Item(
            node: .concat(items.map(\.node)),
            height: 1 + (items.map(\.height).max() ?? 0),
            size: items.reduce(0) { $0 + $1.size })
        try checkLimits(item)
        return item
    }
}

@inline(__always) func isASCIIAlnum(_ c: UInt32) -> Bool {
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
}
