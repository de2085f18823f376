import Foundation

extension Builtins {
    static let time: [Builtin] = [
        Builtin("time.now_ns", 0) { _, ctx in .int(Int(ctx.nowNs)) },
        Builtin("time.parse_rfc3339_ns", 1) { a, _ in
            let s = try argString(a, 0)
            guard let (secs, frac) = parseRFC3339(s) else {
                throw BuiltinError("parsing time \(JSON.serialize(.string(s))) as \"2006-01-02T15:04:05Z07:00\": cannot parse")
            }
            // Like OPA, times must fit in int64 nanoseconds (1677-09-21 to 2262-04-11).
            let (s1, f1) = frac > 0 && secs < 0 ? (secs + 1, frac - 1_000_000_000) : (secs, frac)
            let (ns, o1) = s1.multipliedReportingOverflow(by: 1_000_000_000)
            let (total, o2) = ns.addingReportingOverflow(f1)
            if o1 || o2 { throw BuiltinError("time outside of valid range") }
            return .int(total)
        },
        Builtin("time.parse_ns", 2) { a, _ in
            let layout = try argString(a, 0), value = try argString(a, 1)
            do {
                let ns = try GoLayout.parse(layout: layout, value: value)
                guard ns >= minTimeNs else { throw BuiltinError("time outside of valid range") }
                return .int(ns)
            } catch let e as GoLayout.ParseError {
                throw BuiltinError("parsing time \(JSON.serialize(.string(value))) as \(JSON.serialize(.string(layout))): \(e.message)")
            }
        },
        Builtin("time.parse_duration_ns", 1) { a, _ in
            let s = try argString(a, 0)
            guard let ns = parseDuration(s) else { throw BuiltinError("time: invalid duration \(JSON.serialize(.string(s)))") }
            return .int(ns)
        },
        Builtin("time.date", 1) { a, _ in
            let (secs, _) = try timeArg(a, 0)
            let (y, m, d) = civil(fromDays: floorDiv(secs, 86400))
            return .array([.int(y), .int(m), .int(d)])
        },
        Builtin("time.clock", 1) { a, _ in
            let (secs, _) = try timeArg(a, 0)
            let s = secs - floorDiv(secs, 86400) * 86400
            return .array([.int(s / 3600), .int((s % 3600) / 60), .int(s % 60)])
        },
        Builtin("time.weekday", 1) { a, _ in
            let (secs, _) = try timeArg(a, 0)
            let days = floorDiv(secs, 86400)
            let names = ["Thursday", "Friday", "Saturday", "Sunday", "Monday", "Tuesday", "Wednesday"]
            return .string(names[((days % 7) + 7) % 7])
        },
        Builtin("time.add_date", 4) { a, _ in
            let t = try tzTime(a, 0)
            let total = t.ns
            let years = try argInt(a, 1), months = try argInt(a, 2), days = try argInt(a, 3)
            guard abs(years) < 100_000, abs(months) < 1_200_000, abs(days) < 40_000_000 else {
                throw BuiltinError("time outside of valid range")
            }
            let utcSecs = floorDiv(total, 1_000_000_000)
            let frac = total - utcSecs * 1_000_000_000
            let offset = t.zone?.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(utcSecs))) ?? 0
            let secs = utcSecs + offset
            let dayIndex = floorDiv(secs, 86400)
            let secOfDay = secs - dayIndex * 86400
            let (y, m, d) = civil(fromDays: dayIndex)
            // Go's AddDate normalizes overflowing months and days.
            var ny = y + years
            var nm = m + months
            ny += floorDiv(nm - 1, 12)
            nm = (nm - 1) - floorDiv(nm - 1, 12) * 12 + 1
            let newDays = daysFromCivil(ny, nm, 1) + (d - 1) + days
            let newLocal = newDays * 86400 + secOfDay
            let newOffset = t.zone?.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(newLocal - offset))) ?? 0
            let (r, o) = (newLocal - newOffset).multipliedReportingOverflow(by: 1_000_000_000)
            if o { throw BuiltinError("time outside of valid range") }
            let (r2, o2) = r.addingReportingOverflow(frac)
            if o2 { throw BuiltinError("time outside of valid range") }
            return .int(r2)
        },
        Builtin("time.diff", 2) { a, _ in
            let t1 = try tzTime(a, 0), t2 = try tzTime(a, 1)
            // Both in the first time's zone, as OPA does.
            func local(_ ns: Int) -> Int {
                let secs = floorDiv(ns, 1_000_000_000)
                return secs + (t1.zone?.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(secs))) ?? 0)
            }
            let s1 = local(t1.ns), s2 = local(t2.ns)
            var (lo, hi) = s1 <= s2 ? (s1, s2) : (s2, s1)
            let (y1, m1, d1) = civil(fromDays: floorDiv(lo, 86400))
            let (y2, m2, d2) = civil(fromDays: floorDiv(hi, 86400))
            lo -= floorDiv(lo, 86400) * 86400
            hi -= floorDiv(hi, 86400) * 86400
            var year = y2 - y1, month = m2 - m1, day = d2 - d1
            var hour = hi / 3600 - lo / 3600, minute = (hi % 3600) / 60 - (lo % 3600) / 60, sec = hi % 60 - lo % 60
            if sec < 0 { sec += 60; minute -= 1 }
            if minute < 0 { minute += 60; hour -= 1 }
            if hour < 0 { hour += 24; day -= 1 }
            if day < 0 {
                day += daysIn(y1, m1)
                month -= 1
            }
            if month < 0 { month += 12; year -= 1 }
            return .array([.int(year), .int(month), .int(day), .int(hour), .int(minute), .int(sec)])
        },
        Builtin("time.format", 1) { a, _ in
            let t = try tzTime(a, 0)
            var layout = t.layout.isEmpty ? "RFC3339Nano" : t.layout
            layout = GoLayout.named[layout] ?? layout
            return .string(GoLayout.format(GoLayout.fields(ns: t.ns, zone: t.zone), layout))
        },
    ]

    /// The smallest time OPA accepts from a parse (int64 nanoseconds; 1677-09-21T00:12:43.145224192Z).
    static let minTimeNs = Int.min

    /// (utc nanoseconds, zone or nil for UTC, layout) of a time argument: ns, [ns], [ns, tz] or [ns, tz, layout].
    static func tzTime(_ a: [Value], _ i: Int) throws -> (ns: Int, zone: TimeZone?, layout: String) {
        let expected = "either number (ns) or [number (ns), string (tz)]"
        var nsVal = a[i]
        var tz = "UTC", layout = ""
        if case .array(let arr) = a[i] {
            guard let first = arr.first else { throw typeError(i + 1, expected, a[i]) }
            nsVal = first
            guard case .number = first else { throw typeError(1, "number", first) }
            if arr.count > 1 {
                guard case .string(let z) = arr[1] else { throw typeError(1, "string", arr[1]) }
                tz = z
            }
            if arr.count > 2 {
                guard case .string(let l) = arr[2] else { throw typeError(1, "string", arr[2]) }
                layout = l
            }
        }
        guard case .number(let n) = nsVal else { throw typeError(i + 1, expected, nsVal) }
        let d = n.doubleValue
        guard let ns = n.intValue ?? (d.isFinite && d == d.rounded() && abs(d) < 9.2e18 ? Int(d) : nil) else {
            throw BuiltinError("timestamp too big")
        }
        switch tz {
        case "", "UTC": return (ns, nil, layout)
        case "Local": return (ns, TimeZone.current, layout)
        default:
            guard let z = TimeZone(identifier: tz) else { throw BuiltinError("unknown time zone \(tz)") }
            return (ns, z, layout)
        }
    }

    /// (local seconds since epoch, utc nanoseconds) for a time argument.
    static func timeArg(_ a: [Value], _ i: Int) throws -> (Int, Int) {
        let t = try tzTime(a, i)
        var secs = floorDiv(t.ns, 1_000_000_000)
        if let z = t.zone { secs += z.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(secs))) }
        return (secs, t.ns)
    }

    static func floorDiv(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    static func daysIn(_ y: Int, _ m: Int) -> Int {
        daysFromCivil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) - daysFromCivil(y, m, 1)
    }

    /// Days since 1970-01-01 for a proleptic Gregorian date.
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let mp = (m + 9) % 12
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civil(fromDays z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719468
        let era = floorDiv(z, 146097)
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    /// Parses RFC 3339 (with optional fractional seconds) to nanoseconds since the epoch.
    /// (seconds since the epoch, nanoseconds) of an RFC 3339 timestamp.
    static func parseRFC3339(_ s: String) -> (Int, Int)? {
        let c = Array(s.utf8)
        func num(_ from: Int, _ len: Int) -> Int? {
            guard from + len <= c.count else { return nil }
            var v = 0
            for i in from..<(from + len) {
                guard c[i] >= 0x30 && c[i] <= 0x39 else { return nil }
                v = v * 10 + Int(c[i] - 0x30)
            }
            return v
        }
        guard c.count >= 20, let y = num(0, 4), c[4] == UInt8(ascii: "-"), let mo = num(5, 2), c[7] == UInt8(ascii: "-"),
            let d = num(8, 2), c[10] == UInt8(ascii: "T"), let h = num(11, 2),
            c[13] == UInt8(ascii: ":"), let mi = num(14, 2), c[16] == UInt8(ascii: ":"), let se = num(17, 2)
        else { return nil }
        guard mo >= 1, mo <= 12, d >= 1, d <= daysIn(y, mo), h < 24, mi < 60, se < 60 else { return nil }
        var i = 19
        var frac = 0
        if i < c.count, c[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < c.count, c[i] >= 0x30, c[i] <= 0x39 {
                if digits < 9 { frac = frac * 10 + Int(c[i] - 0x30) }
                digits += 1
                i += 1
            }
            if digits == 0 { return nil }
            if digits < 9 { for _ in digits..<9 { frac *= 10 } }
        }
        guard i < c.count else { return nil }
        var offset = 0
        if c[i] == UInt8(ascii: "Z") {
            i += 1
        } else if c[i] == UInt8(ascii: "+") || c[i] == UInt8(ascii: "-") {
            let sign = c[i] == UInt8(ascii: "-") ? -1 : 1
            guard let oh = num(i + 1, 2), i + 3 < c.count, c[i + 3] == UInt8(ascii: ":"), let om = num(i + 4, 2) else { return nil }
            offset = sign * (oh * 3600 + om * 60)
            i += 6
        } else {
            return nil
        }
        guard i == c.count else { return nil }
        let secs = daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset
        return (secs, frac)
    }

    /// Go's time.ParseDuration (integer nanoseconds, fractions scaled as Go does, overflow refused)
    /// with OPA's extra units d (24h), w (7d) and y (365d).
    static func parseDuration(_ text: String) -> Int? {
        let units: [String: UInt64] = [
            "ns": 1, "us": 1_000, "\u{00B5}s": 1_000, "\u{03BC}s": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000, "w": 604_800_000_000_000,
            "y": 31_536_000_000_000_000,
        ]
        let limit: UInt64 = 1 << 63
        var s = Array(text.utf8)[...]
        var neg = false
        if let c = s.first, c == UInt8(ascii: "-") || c == UInt8(ascii: "+") { neg = c == UInt8(ascii: "-"); s = s.dropFirst() }
        if s.elementsEqual([UInt8(ascii: "0")]) { return 0 }
        if s.isEmpty { return nil }
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        var total: UInt64 = 0
        while let first = s.first {
            guard first == UInt8(ascii: ".") || isDigit(first) else { return nil }
            var v: UInt64 = 0
            let before = s.count
            while let c = s.first, isDigit(c) {
                guard v <= limit / 10 else { return nil }
                v = v * 10 + UInt64(c - 0x30)
                guard v <= limit else { return nil }
                s = s.dropFirst()
            }
            let pre = s.count != before
            var f: UInt64 = 0, scale = 1.0, post = false
            if s.first == UInt8(ascii: ".") {
                s = s.dropFirst()
                let start = s.count
                var overflow = false
                while let c = s.first, isDigit(c) {
                    s = s.dropFirst()
                    if overflow { continue }
                    if f > (limit - 1) / 10 { overflow = true; continue }
                    let y = f * 10 + UInt64(c - 0x30)
                    if y > limit { overflow = true; continue }
                    f = y
                    scale *= 10
                }
                post = s.count != start
            }
            guard pre || post else { return nil }
            let unitText = s.prefix { !($0 == UInt8(ascii: ".") || isDigit($0)) }
            s = s.dropFirst(unitText.count)
            guard let unit = units[String(decoding: unitText, as: UTF8.self)], v <= limit / unit else { return nil }
            v *= unit
            if f > 0 {
                v += UInt64(Double(f) * (Double(unit) / scale))
                guard v <= limit else { return nil }
            }
            total += v
            guard total <= limit else { return nil }
        }
        if neg { return total == limit ? Int.min : -Int(total) }
        return total < limit ? Int(total) : nil
    }
}
