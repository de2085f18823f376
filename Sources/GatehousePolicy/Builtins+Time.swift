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
            let ns = try argNumber(a, 0)
            guard let total = ns.intValue else { throw typeError(1, "number", a[0]) }
            let years = try argInt(a, 1), months = try argInt(a, 2), days = try argInt(a, 3)
            guard abs(years) < 100_000, abs(months) < 1_200_000, abs(days) < 40_000_000 else {
                throw BuiltinError("time outside of valid range")
            }
            let secs = floorDiv(total, 1_000_000_000)
            let frac = total - secs * 1_000_000_000
            let dayIndex = floorDiv(secs, 86400)
            let secOfDay = secs - dayIndex * 86400
            let (y, m, d) = civil(fromDays: dayIndex)
            // Go's AddDate normalizes overflowing months and days.
            var ny = y + years
            var nm = m + months
            ny += floorDiv(nm - 1, 12)
            nm = (nm - 1) - floorDiv(nm - 1, 12) * 12 + 1
            let newDays = daysFromCivil(ny, nm, 1) + (d - 1) + days
            let (r, o) = (newDays * 86400 + secOfDay).multipliedReportingOverflow(by: 1_000_000_000)
            if o { throw BuiltinError("time outside of valid range") }
            let (r2, o2) = r.addingReportingOverflow(frac)
            if o2 { throw BuiltinError("time outside of valid range") }
            return .int(r2)
        },
        Builtin("time.diff", 2) { a, _ in
            let (s1, _) = try timeArg(a, 0)
            let (s2, _) = try timeArg(a, 1)
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
                let pm = m2 == 1 ? 12 : m2 - 1, py = m2 == 1 ? y2 - 1 : y2
                day += daysIn(py, pm)
                month -= 1
            }
            if month < 0 { month += 12; year -= 1 }
            return .array([.int(year), .int(month), .int(day), .int(hour), .int(minute), .int(sec)])
        },
        Builtin("time.format", 1) { a, _ in
            let (secs, nsTotal) = try timeArg(a, 0)
            let (y, m, d) = civil(fromDays: floorDiv(secs, 86400))
            let sod = secs - floorDiv(secs, 86400) * 86400
            let frac = nsTotal - floorDiv(nsTotal, 1_000_000_000) * 1_000_000_000
            var s = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", y, m, d, sod / 3600, (sod % 3600) / 60, sod % 60)
            if frac != 0 {
                var f = String(format: "%09d", frac)
                while f.hasSuffix("0") { f.removeLast() }
                s += "." + f
            }
            return .string(s + "Z")
        },
    ]

    /// (local seconds since epoch, utc nanoseconds) for a time argument: ns number or [ns, tz].
    static func timeArg(_ a: [Value], _ i: Int) throws -> (Int, Int) {
        var nsVal = a[i]
        var tz = "UTC"
        if case .array(let arr) = a[i] {
            guard arr.count == 2, case .string(let z) = arr[1] else { throw typeError(i + 1, "array of (number, string)", a[i]) }
            nsVal = arr[0]
            tz = z
        }
        guard case .number(let n) = nsVal else { throw typeError(i + 1, "number", nsVal) }
        let d = n.doubleValue
        guard let ns = n.intValue ?? (d.isFinite && abs(d) < 9.2e18 ? Int(d) : nil) else {
            throw BuiltinError("timestamp too big")
        }
        var secs = floorDiv(ns, 1_000_000_000)
        if tz != "UTC" && tz != "" {
            let zone: TimeZone?
            if tz == "Local" { zone = TimeZone.current } else { zone = TimeZone(identifier: tz) }
            guard let z = zone else { throw BuiltinError("unknown time zone \(tz)") }
            secs += z.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(secs)))
        }
        return (secs, ns)
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
            let d = num(8, 2), c[10] == UInt8(ascii: "T") || c[10] == UInt8(ascii: "t"), let h = num(11, 2),
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
            for _ in digits..<9 where digits < 9 { frac *= 10 }
        }
        guard i < c.count else { return nil }
        var offset = 0
        if c[i] == UInt8(ascii: "Z") || c[i] == UInt8(ascii: "z") {
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

    static func parseDuration(_ s: String) -> Int? {
        var c = Array(s.unicodeScalars)
        var sign = 1
        if let f = c.first, f == "-" || f == "+" {
            if f == "-" { sign = -1 }
            c.removeFirst()
        }
        if c == ["0"] { return 0 }
        if c.isEmpty { return nil }
        var total = 0.0
        var i = 0
        while i < c.count {
            var numStr = ""
            while i < c.count, c[i] == "." || (c[i] >= "0" && c[i] <= "9") { numStr.unicodeScalars.append(c[i]); i += 1 }
            guard let n = Double(numStr) else { return nil }
            var unit = ""
            while i < c.count, !(c[i] == "." || (c[i] >= "0" && c[i] <= "9")) { unit.unicodeScalars.append(c[i]); i += 1 }
            let mult: Double
            switch unit {
            case "ns": mult = 1
            case "us", "µs", "μs": mult = 1e3
            case "ms": mult = 1e6
            case "s": mult = 1e9
            case "m": mult = 60e9
            case "h": mult = 3600e9
            default: return nil
            }
            total += n * mult
        }
        return sign * Int(total)
    }
}
