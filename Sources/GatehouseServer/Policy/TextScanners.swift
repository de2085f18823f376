/// Hand-written scanners for the redactor's detectors. Each runs in time linear in the text:
/// every start position does a bounded amount of work, or (emails) every byte is visited a
/// bounded number of times. They replace `NSRegularExpression` patterns whose backtracking made
/// a 40,000-character string cost seconds (`[A-Za-z0-9._%+-]+@...` retried from every start),
/// and whose per-match `String.replaceSubrange` made many matches quadratic.
///
/// The scanners work on UTF-8 bytes. Every character they match is ASCII and every replacement
/// is ASCII, so cutting and joining at match boundaries keeps the text valid UTF-8. A byte of a
/// non-ASCII character counts as a word character (as `\w` treats letters of any script).
enum TextScanners {
    typealias Match = Range<Int>

    @inline(__always) static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    @inline(__always) static func isUpper(_ b: UInt8) -> Bool { b >= 0x41 && b <= 0x5A }
    @inline(__always) static func isLetter(_ b: UInt8) -> Bool { isUpper(b) || (b >= 0x61 && b <= 0x7A) }
    @inline(__always) static func isWord(_ b: UInt8) -> Bool { isLetter(b) || isDigit(b) || b == 0x5F || b >= 0x80 }

    /// `[A-Za-z0-9._%+-]`
    @inline(__always) static func isEmailLocal(_ b: UInt8) -> Bool {
        isLetter(b) || isDigit(b) || b == 0x2E || b == 0x5F || b == 0x25 || b == 0x2B || b == 0x2D
    }

    /// `[A-Za-z0-9.-]`
    @inline(__always) static func isEmailDomain(_ b: UInt8) -> Bool { isLetter(b) || isDigit(b) || b == 0x2E || b == 0x2D }

    /// Emails: `local@domain.tld` with the domain's last dot followed by two or more letters.
    /// The local part reaches left no further than the previous match; the domain ends at the
    /// next `@` at the latest, so each byte is looked at a bounded number of times.
    static func emails(_ b: [UInt8]) -> [Match] {
        var matches: [Match] = []
        var lastEnd = 0
        var at = 0
        while at < b.count {
            guard b[at] == 0x40 else { at += 1; continue }
            var start = at
            while start > lastEnd, isEmailLocal(b[start - 1]) { start -= 1 }
            var runEnd = at + 1
            while runEnd < b.count, isEmailDomain(b[runEnd]) { runEnd += 1 }
            // The last dot (with at least one domain character before it) followed by 2+ letters.
            var end: Int?
            if start < at {
                var dot = runEnd - 1
                while dot > at + 1 {
                    if b[dot] == 0x2E, dot + 2 < runEnd, isLetter(b[dot + 1]), isLetter(b[dot + 2]) {
                        var e = dot + 1
                        while e < runEnd, isLetter(b[e]) { e += 1 }
                        end = e
                        break
                    }
                    dot -= 1
                }
            }
            if let end {
                matches.append(start..<end)
                lastEnd = end
                at = end
            } else {
                at += 1
            }
        }
        return matches
    }

    /// Card numbers: 13 to 19 digits, single spaces or hyphens allowed between digits, not
    /// touching other digits, passing the Luhn check. At most 37 bytes are read per start.
    static func cards(_ b: [UInt8]) -> [Match] {
        var matches: [Match] = []
        var p = 0
        while p < b.count {
            guard isDigit(b[p]), p == 0 || !isDigit(b[p - 1]) else { p += 1; continue }
            var q = p
            var digits = 0
            var best: Int?
            while q < b.count, isDigit(b[q]), digits < 19 {
                digits += 1
                q += 1
                if digits >= 13, q == b.count || !isDigit(b[q]) { best = q }
                if q + 1 < b.count, b[q] == 0x20 || b[q] == 0x2D, isDigit(b[q + 1]) { q += 1 }
            }
            // Like the regular expression this replaces, a candidate that fails the check is
            // skipped whole (its tail is not tried as a shorter number).
            if let best {
                if luhn(b[p..<best]) { matches.append(p..<best) }
                p = best
            } else {
                p += 1
            }
        }
        return matches
    }

    static func luhn(_ bytes: ArraySlice<UInt8>) -> Bool {
        var sum = 0
        var position = 0
        for byte in bytes.reversed() where isDigit(byte) {
            let d = Int(byte - 0x30)
            if position % 2 == 1 {
                let doubled = d * 2
                sum += doubled > 9 ? doubled - 9 : doubled
            } else {
                sum += d
            }
            position += 1
        }
        return position > 0 && sum % 10 == 0
    }

    /// `[0-9 ().-]`
    @inline(__always) static func isPhoneBody(_ b: UInt8) -> Bool {
        isDigit(b) || b == 0x20 || b == 0x28 || b == 0x29 || b == 0x2E || b == 0x2D
    }

    /// Phone numbers: an optional `+` or `(`, then a digit, 7 to 18 characters of digits and
    /// ` ().-`, and a final digit not followed by a digit; not after a word character, `+` or
    /// `(`. Kept when it has 10 to 15 digits and looks written as a phone number (a leading `+`
    /// or `(`, or at least two separators), so dates, timestamps and ids are left alone.
    static func phones(_ b: [UInt8]) -> [Match] {
        var matches: [Match] = []
        var p = 0
        while p < b.count {
            let first = b[p]
            guard isDigit(first) || first == 0x2B || first == 0x28,
                p == 0 || !(isWord(b[p - 1]) || b[p - 1] == 0x2B || b[p - 1] == 0x28)
            else { p += 1; continue }
            var q = p
            if first == 0x2B || first == 0x28 { q += 1 }
            guard q < b.count, isDigit(b[q]) else { p += 1; continue }
            q += 1
            // b[q ..< e-1] is the middle (7...18 characters), b[e-1] the final digit.
            var limit = q
            while limit < b.count, limit - q < 19, isPhoneBody(b[limit]) { limit += 1 }
            var end: Int?
            var e = limit
            while e >= q + 8 {
                if isDigit(b[e - 1]), e == b.count || !isDigit(b[e]) { end = e; break }
                e -= 1
            }
            if let end {
                if acceptPhone(b[p..<end]) { matches.append(p..<end) }
                p = end
            } else {
                p += 1
            }
        }
        return matches
    }

    static func acceptPhone(_ text: ArraySlice<UInt8>) -> Bool {
        var digits = 0
        var separators = 0
        for byte in text {
            if isDigit(byte) { digits += 1 } else if byte != 0x2B { separators += 1 }
        }
        guard (10...15).contains(digits) else { return false }
        let first = text[text.startIndex]
        return first == 0x2B || first == 0x28 || separators >= 2
    }

    /// National identifiers: US SSN (123-45-6789), UK NINO (AB123456C), French NIR (15 digits
    /// starting 1 or 2 with a month), IBAN. Each starts and ends at a word boundary; each start
    /// reads at most about 45 bytes.
    static func nationalIDs(_ b: [UInt8]) -> [Match] {
        var matches: [Match] = []
        var p = 0
        while p < b.count {
            guard p == 0 || !isWord(b[p - 1]), isWord(b[p]) else { p += 1; continue }
            if let end = ssn(b, p) ?? nino(b, p) ?? nir(b, p) ?? iban(b, p) {
                matches.append(p..<end)
                p = end
            } else {
                p += 1
            }
        }
        return matches
    }

    @inline(__always) static func boundaryAfter(_ b: [UInt8], _ end: Int) -> Bool { end == b.count || !isWord(b[end]) }

    static func digits(_ b: [UInt8], _ from: Int, _ count: Int) -> Bool {
        guard from + count <= b.count else { return false }
        for i in from..<(from + count) where !isDigit(b[i]) { return false }
        return true
    }

    static func ssn(_ b: [UInt8], _ p: Int) -> Int? {
        guard digits(b, p, 3), p + 3 < b.count, b[p + 3] == 0x2D, digits(b, p + 4, 2), p + 6 < b.count, b[p + 6] == 0x2D,
            digits(b, p + 7, 4), boundaryAfter(b, p + 11)
        else { return nil }
        return p + 11
    }

    /// `[A-CEGHJ-PR-TW-Z]{2}[0-9]{6}[A-D]`
    static func nino(_ b: [UInt8], _ p: Int) -> Int? {
        func prefixLetter(_ c: UInt8) -> Bool { isUpper(c) && !"DFIQUV".utf8.contains(c) }
        guard p + 9 <= b.count, prefixLetter(b[p]), prefixLetter(b[p + 1]), digits(b, p + 2, 6),
            (0x41...0x44).contains(b[p + 8]), boundaryAfter(b, p + 9)
        else { return nil }
        return p + 9
    }

    /// `[12][0-9]{2}(0[1-9]|1[0-2])[0-9]{10}`
    static func nir(_ b: [UInt8], _ p: Int) -> Int? {
        guard digits(b, p, 15), b[p] == 0x31 || b[p] == 0x32, boundaryAfter(b, p + 15) else { return nil }
        let month = Int(b[p + 3] - 0x30) * 10 + Int(b[p + 4] - 0x30)
        return (1...12).contains(month) ? p + 15 : nil
    }

    /// `[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?` ending at a word boundary;
    /// the longest form that ends at one, as a backtracking engine would find.
    static func iban(_ b: [UInt8], _ p: Int) -> Int? {
        func alnum(_ c: UInt8) -> Bool { isUpper(c) || isDigit(c) }
        guard p + 4 <= b.count, isUpper(b[p]), isUpper(b[p + 1]), isDigit(b[p + 2]), isDigit(b[p + 3]) else { return nil }
        // Ends of 1...7 groups of " ?XXXX".
        var groupEnds: [Int] = []
        var q = p + 4
        while groupEnds.count < 7 {
            var s = q
            if s < b.count, b[s] == 0x20 { s += 1 }
            guard s + 4 <= b.count, alnum(b[s]), alnum(b[s + 1]), alnum(b[s + 2]), alnum(b[s + 3]) else { break }
            q = s + 4
            groupEnds.append(q)
        }
        guard groupEnds.count >= 3 else { return nil }
        for groups in stride(from: groupEnds.count, through: 3, by: -1) {
            let base = groupEnds[groups - 1]
            // The optional tail " ?[A-Z0-9]{1,3}", longest first, then none.
            var s = base
            if s < b.count, b[s] == 0x20 { s += 1 }
            var tail = 0
            while tail < 3, s + tail < b.count, alnum(b[s + tail]) { tail += 1 }
            for length in stride(from: tail, through: 1, by: -1) where boundaryAfter(b, s + length) { return s + length }
            if boundaryAfter(b, base) { return base }
        }
        return nil
    }

    /// The text with every match replaced by `replacement`; matches are sorted and disjoint.
    static func replacing(_ b: [UInt8], _ matches: [Match], with replacement: StaticString) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var last = 0
        let marker = UnsafeBufferPointer(start: replacement.utf8Start, count: replacement.utf8CodeUnitCount)
        for match in matches {
            out.append(contentsOf: b[last..<match.lowerBound])
            out.append(contentsOf: marker)
            last = match.upperBound
        }
        out.append(contentsOf: b[last...])
        return out
    }
}
