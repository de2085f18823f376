import Foundation

extension GoLayout {
    struct ParseError: Error { let message: String }

    /// Parsing state: the text left and what has been read.
    private struct Reader {
        var v: [Character]
        var year = 1, month = 1, day = 1, hour = 0, minute = 0, second = 0, nanos = 0, yearDay = -1
        var pm = false, am = false
        var offset: Int?

        mutating func take(_ n: Int) -> String {
            let s = String(v.prefix(n))
            v.removeFirst(min(n, v.count))
            return s
        }

        /// One or two digits (exactly two when `fixed`).
        mutating func num(_ fixed: Bool) throws -> Int {
            guard let a = v.first, a.isASCII, let x = a.wholeNumberValue else { throw ParseError(message: "bad number") }
            if v.count < 2 || !(v[1].isASCII && v[1].isNumber) {
                if fixed { throw ParseError(message: "bad number") }
                v.removeFirst()
                return x
            }
            let y = v[1].wholeNumberValue!
            v.removeFirst(2)
            return x * 10 + y
        }

        mutating func digits(_ n: Int) throws -> Int {
            guard v.count >= n, v.prefix(n).allSatisfy({ $0.isASCII && $0.isNumber }) else { throw ParseError(message: "bad number") }
            return Int(take(n))!
        }

        /// A name from `names` (case-insensitive), full or 3-letter.
        mutating func name(_ names: [String], short: Bool) throws -> Int {
            for (i, n) in names.enumerated() {
                let w = short ? String(n.prefix(3)) : n
                if v.count >= w.count, String(v.prefix(w.count)).lowercased() == w.lowercased() {
                    v.removeFirst(w.count)
                    return i
                }
            }
            throw ParseError(message: "bad name")
        }
    }

    /// Nanoseconds since the epoch of `value` read with `layout` (UTC unless the value has an offset).
    static func parse(layout: String, value: String) throws -> Int {
        var r = Reader(v: Array(value))
        let list = chunks(layout)
        for (idx, ch) in list.enumerated() {
            try parseChunk(ch, &r, next: idx + 1 < list.count ? list[idx + 1] : nil)
        }
        guard r.v.isEmpty else { throw ParseError(message: "extra text: \(String(r.v))") }
        if r.pm && r.hour < 12 { r.hour += 12 } else if r.am && r.hour == 12 { r.hour = 0 }
        if r.yearDay >= 0 {
            let leap = Builtins.daysIn(r.year, 2) == 29
            guard r.yearDay >= 1, r.yearDay <= (leap ? 366 : 365) else { throw ParseError(message: "day-of-year out of range") }
            let (_, m, d) = Builtins.civil(fromDays: Builtins.daysFromCivil(r.year, 1, 1) + r.yearDay - 1)
            r.month = m
            r.day = d
        }
        guard r.day >= 1, r.day <= Builtins.daysIn(r.year, r.month) else { throw ParseError(message: "day out of range") }
        let secs = Builtins.daysFromCivil(r.year, r.month, r.day) * 86400 + r.hour * 3600 + r.minute * 60 + r.second - (r.offset ?? 0)
        let (ns, o1) = secs.multipliedReportingOverflow(by: 1_000_000_000)
        let (total, o2) = ns.addingReportingOverflow(r.nanos)
        guard !o1, !o2 else { throw ParseError(message: "time outside of valid range") }
        return total
    }

    private static func parseChunk(_ ch: Chunk, _ r: inout Reader, next: Chunk?) throws {
        switch ch {
        case .literal(let s):
            for c in s {
                guard let f = r.v.first, f == c else { throw ParseError(message: "cannot parse \(String(r.v)) as \(s)") }
                r.v.removeFirst()
            }
        case .longYear: r.year = try r.digits(4)
        case .year:
            let y = try r.digits(2)
            r.year = y >= 69 ? 1900 + y : 2000 + y
        case .longMonth: r.month = try r.name(months, short: false) + 1
        case .month: r.month = try r.name(months, short: true) + 1
        case .numMonth, .zeroMonth:
            r.month = try r.num(ch == .zeroMonth)
            guard r.month >= 1, r.month <= 12 else { throw ParseError(message: "month out of range") }
        case .longWeekDay: _ = try r.name(days, short: false)
        case .weekDay: _ = try r.name(days, short: true)
        case .day, .underDay, .zeroDay:
            if ch == .underDay, r.v.first == " " { r.v.removeFirst() }
            r.day = try r.num(ch == .zeroDay)
        case .underYearDay, .zeroYearDay:
            if ch == .underYearDay { while r.v.first == " " && r.v.count > 1 { r.v.removeFirst() } }
            r.yearDay = try r.digits(ch == .zeroYearDay ? 3 : min(3, r.v.prefix { $0.isASCII && $0.isNumber }.count))
        case .hour:
            r.hour = try r.num(false)
            guard r.hour < 24 else { throw ParseError(message: "hour out of range") }
        case .hour12, .zeroHour12:
            r.hour = try r.num(ch == .zeroHour12)
            guard r.hour <= 12 else { throw ParseError(message: "hour out of range") }
        case .minute, .zeroMinute:
            r.minute = try r.num(ch == .zeroMinute)
            guard r.minute < 60 else { throw ParseError(message: "minute out of range") }
        case .second, .zeroSecond:
            r.second = try r.num(ch == .zeroSecond)
            guard r.second < 60 else { throw ParseError(message: "second out of range") }
            // Go reads a fraction after the seconds even when the layout has none there.
            if r.v.count >= 2, r.v[0] == "." || r.v[0] == ",", r.v[1].isASCII, r.v[1].isNumber {
                if case .fraction = next { break }
                r.v.removeFirst()
                r.nanos = try fractionValue(&r)
            }
        case .pm, .lowerPM:
            // Go: "PM" in the layout takes PM/AM, "pm" takes pm/am; no other case.
            var s = r.take(2)
            if case .lowerPM = ch { s = s == "pm" ? "PM" : (s == "am" ? "AM" : "") } else if s != "PM" && s != "AM" { s = "" }
            switch s {
            case "PM": r.pm = true
            case "AM": r.am = true
            default: throw ParseError(message: "bad AM/PM")
            }
        case .tz: try parseZoneName(&r)
        case .offset(let iso, let colon, let seconds, let hoursOnly):
            if iso, r.v.first == "Z" { r.v.removeFirst(); r.offset = 0; return }
            guard let sign = r.v.first, sign == "+" || sign == "-" else { throw ParseError(message: "bad offset") }
            r.v.removeFirst()
            let h = try r.digits(2)
            var m = 0, s = 0
            if !hoursOnly {
                if colon { guard r.take(1) == ":" else { throw ParseError(message: "bad offset") } }
                m = try r.digits(2)
            }
            if seconds {
                if colon { guard r.take(1) == ":" else { throw ParseError(message: "bad offset") } }
                s = try r.digits(2)
            }
            r.offset = (sign == "-" ? -1 : 1) * (h * 3600 + m * 60 + s)
        case .fraction(let digits, let trim, _):
            guard let sep = r.v.first, sep == "." || sep == "," else {
                if trim { return }
                throw ParseError(message: "bad fraction")
            }
            if trim {
                guard r.v.count >= 2, r.v[1].isASCII, r.v[1].isNumber else { return }
                r.v.removeFirst()
                r.nanos = try fractionValue(&r)
            } else {
                r.v.removeFirst()
                guard r.v.count >= digits, r.v.prefix(digits).allSatisfy({ $0.isASCII && $0.isNumber }) else { throw ParseError(message: "bad fraction") }
                let d = r.take(digits)
                r.nanos = Int((d + String(repeating: "0", count: max(0, 9 - d.count))).prefix(9))!
            }
        }
    }

    private static func fractionValue(_ r: inout Reader) throws -> Int {
        let d = String(r.v.prefix { $0.isASCII && $0.isNumber })
        r.v.removeFirst(d.count)
        return Int((d + "000000000").prefix(9))!
    }

    /// A zone abbreviation: "UTC", 3 to 5 capitals, or "GMT+h"; its offset is not known (zero), as in
    /// Go's time.Parse with UTC as the location.
    private static func parseZoneName(_ r: inout Reader) throws {
        if r.v.count >= 3, String(r.v.prefix(3)) == "UTC" { r.v.removeFirst(3); return }
        if r.v.count >= 3, String(r.v.prefix(3)) == "GMT" {
            r.v.removeFirst(3)
            if let s = r.v.first, s == "+" || s == "-" {
                var n = 1
                while n < r.v.count, r.v[n].isASCII, r.v[n].isNumber { n += 1 }
                guard n > 1, let h = Int(String(r.v[1..<n])), h <= 24 else { throw ParseError(message: "bad zone") }
                r.v.removeFirst(n)
                r.offset = (s == "-" ? -1 : 1) * h * 3600
            }
            return
        }
        let upper = min(6, r.v.prefix { $0.isASCII && $0.isUppercase }.count)
        let word = String(r.v.prefix(upper))
        var n = 0
        switch upper {
        case 3: n = 3
        case 4: n = word.hasSuffix("T") || word == "WITA" ? 4 : 0
        case 5: n = word.hasSuffix("T") ? 5 : 0
        default: n = 0
        }
        if n == 0, r.v.count >= 4, ["ChST", "MeST"].contains(String(r.v.prefix(4))) { n = 4 }
        if n > 0 { r.v.removeFirst(n); return }
        throw ParseError(message: "bad zone")
    }
}
