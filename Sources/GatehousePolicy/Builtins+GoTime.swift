import Foundation

/// Go's time layouts (reference time `Mon Jan 2 15:04:05 MST 2006`) for `time.parse_ns` and
/// `time.format`.
enum GoLayout {
    enum Chunk: Equatable {
        case literal(String)
        case longMonth, month, numMonth, zeroMonth, longWeekDay, weekDay
        case day, underDay, zeroDay, underYearDay, zeroYearDay
        case hour, hour12, zeroHour12, minute, zeroMinute, second, zeroSecond
        case longYear, year, pm, lowerPM, tz
        /// Numeric zone: "Z" allowed (iso), colons, seconds, hours only.
        case offset(iso: Bool, colon: Bool, seconds: Bool, hoursOnly: Bool)
        /// Fractional seconds: digits, trailing zeros trimmed (9s), separator.
        case fraction(digits: Int, trim: Bool, sep: Character)
    }

    static let named: [String: String] = [
        "ANSIC": "Mon Jan _2 15:04:05 2006", "UnixDate": "Mon Jan _2 15:04:05 MST 2006",
        "RubyDate": "Mon Jan 02 15:04:05 -0700 2006", "RFC822": "02 Jan 06 15:04 MST",
        "RFC822Z": "02 Jan 06 15:04 -0700", "RFC850": "Monday, 02-Jan-06 15:04:05 MST",
        "RFC1123": "Mon, 02 Jan 2006 15:04:05 MST", "RFC1123Z": "Mon, 02 Jan 2006 15:04:05 -0700",
        "RFC3339": "2006-01-02T15:04:05Z07:00", "RFC3339Nano": "2006-01-02T15:04:05.999999999Z07:00",
    ]
    static let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
    static let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

    /// Splits a layout into literal text and elements, as Go's nextStdChunk does.
    static func chunks(_ layout: String) -> [Chunk] {
        let c = Array(layout)
        var out: [Chunk] = []
        var lit = ""
        var i = 0
        func has(_ s: String, at j: Int) -> Bool {
            let p = Array(s)
            return j + p.count <= c.count && Array(c[j..<(j + p.count)]) == p
        }
        func emit(_ ch: Chunk, _ len: Int) {
            if !lit.isEmpty { out.append(.literal(lit)); lit = "" }
            out.append(ch)
            i += len
        }
        while i < c.count {
            if let (ch, len) = element(c, i, has) { emit(ch, len); continue }
            lit.append(c[i])
            i += 1
        }
        if !lit.isEmpty { out.append(.literal(lit)) }
        return out
    }

    private static func element(_ c: [Character], _ i: Int, _ has: (String, Int) -> Bool) -> (Chunk, Int)? {
        switch c[i] {
        case "J":
            if has("January", i) { return (.longMonth, 7) }
            if has("Jan", i) { return (.month, 3) }
        case "M":
            if has("Monday", i) { return (.longWeekDay, 6) }
            if has("Mon", i) { return (.weekDay, 3) }
            if has("MST", i) { return (.tz, 3) }
        case "0":
            if has("002", i) { return (.zeroYearDay, 3) }
            let table: [Character: Chunk] = ["1": .zeroMonth, "2": .zeroDay, "3": .zeroHour12, "4": .zeroMinute, "5": .zeroSecond, "6": .year]
            if i + 1 < c.count, let ch = table[c[i + 1]] { return (ch, 2) }
        case "1":
            if has("15", i) { return (.hour, 2) }
            return (.numMonth, 1)
        case "2":
            if has("2006", i) { return (.longYear, 4) }
            return (.day, 1)
        case "_":
            if has("_2", i) {
                if has("_2006", i) { return nil }
                return (.underDay, 2)
            }
            if has("__2", i) { return (.underYearDay, 3) }
        case "3": return (.hour12, 1)
        case "4": return (.minute, 1)
        case "5": return (.second, 1)
        case "P": if has("PM", i) { return (.pm, 2) }
        case "p": if has("pm", i) { return (.lowerPM, 2) }
        case "-", "Z":
            let iso = c[i] == "Z"
            if has(iso ? "Z070000" : "-070000", i) { return (.offset(iso: iso, colon: false, seconds: true, hoursOnly: false), 7) }
            if has(iso ? "Z07:00:00" : "-07:00:00", i) { return (.offset(iso: iso, colon: true, seconds: true, hoursOnly: false), 9) }
            if has(iso ? "Z0700" : "-0700", i) { return (.offset(iso: iso, colon: false, seconds: false, hoursOnly: false), 5) }
            if has(iso ? "Z07:00" : "-07:00", i) { return (.offset(iso: iso, colon: true, seconds: false, hoursOnly: false), 6) }
            if has(iso ? "Z07" : "-07", i) { return (.offset(iso: iso, colon: false, seconds: false, hoursOnly: true), 3) }
        case ".", ",":
            if i + 1 < c.count, c[i + 1] == "0" || c[i + 1] == "9" {
                let d = c[i + 1]
                var j = i + 1
                while j < c.count, c[j] == d { j += 1 }
                if j >= c.count || !c[j].isASCII || !c[j].isNumber {
                    return (.fraction(digits: j - i - 1, trim: d == "9", sep: c[i]), j - i)
                }
            }
        default: break
        }
        return nil
    }
}

extension GoLayout {
    /// Broken-down local time.
    struct Fields {
        var year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0, nanos = 0
        var yearDay = 1, weekDay = 0, offset = 0
        var zoneName = "UTC"
    }

    static func fields(ns: Int, zone: TimeZone?) -> Fields {
        var f = Fields()
        var secs = Builtins.floorDiv(ns, 1_000_000_000)
        f.nanos = ns - secs * 1_000_000_000
        if let z = zone {
            let date = Date(timeIntervalSince1970: TimeInterval(secs))
            f.offset = z.secondsFromGMT(for: date)
            f.zoneName = z.abbreviation(for: date) ?? "UTC"
            if let name = TZif.abbreviation(zone: z.identifier, offset: f.offset, dst: z.isDaylightSavingTime(for: date)) {
                f.zoneName = name
            } else if f.zoneName.hasPrefix("GMT"), f.zoneName != "GMT" {
                f.zoneName = goZoneName(f.offset)
            }
            secs += f.offset
        }
        let dayIndex = Builtins.floorDiv(secs, 86400)
        let sod = secs - dayIndex * 86400
        (f.year, f.month, f.day) = Builtins.civil(fromDays: dayIndex)
        f.hour = sod / 3600
        f.minute = (sod % 3600) / 60
        f.second = sod % 60
        f.weekDay = ((dayIndex + 4) % 7 + 7) % 7
        f.yearDay = dayIndex - Builtins.daysFromCivil(f.year, 1, 1) + 1
        return f
    }

    /// Go names zones without an abbreviation by their offset: "+01", "-0330".
    static func goZoneName(_ offset: Int) -> String {
        let sign = offset < 0 ? "-" : "+"
        let m = abs(offset) / 60
        return m % 60 == 0 ? String(format: "%@%02d", sign, m / 60) : String(format: "%@%02d%02d", sign, m / 60, m % 60)
    }

    static func pad(_ v: Int, _ width: Int, _ fill: Character = "0") -> String {
        let s = String(abs(v))
        return (v < 0 ? "-" : "") + String(repeating: fill, count: max(0, width - s.count)) + s
    }

    static func format(_ f: Fields, _ layout: String) -> String {
        var out = ""
        for ch in chunks(layout) { out += formatChunk(ch, f) }
        return out
    }

    private static func formatChunk(_ ch: Chunk, _ f: Fields) -> String {
        let h12 = f.hour % 12 == 0 ? 12 : f.hour % 12
        switch ch {
        case .literal(let s): return s
        case .longMonth: return months[f.month - 1]
        case .month: return String(months[f.month - 1].prefix(3))
        case .numMonth: return String(f.month)
        case .zeroMonth: return pad(f.month, 2)
        case .longWeekDay: return days[f.weekDay]
        case .weekDay: return String(days[f.weekDay].prefix(3))
        case .day: return String(f.day)
        case .underDay: return pad(f.day, 2, " ")
        case .zeroDay: return pad(f.day, 2)
        case .underYearDay: return pad(f.yearDay, 3, " ")
        case .zeroYearDay: return pad(f.yearDay, 3)
        case .hour: return pad(f.hour, 2)
        case .hour12: return String(h12)
        case .zeroHour12: return pad(h12, 2)
        case .minute: return String(f.minute)
        case .zeroMinute: return pad(f.minute, 2)
        case .second: return String(f.second)
        case .zeroSecond: return pad(f.second, 2)
        case .longYear: return pad(f.year, 4)
        case .year: return pad(((f.year % 100) + 100) % 100, 2)
        case .pm: return f.hour >= 12 ? "PM" : "AM"
        case .lowerPM: return f.hour >= 12 ? "pm" : "am"
        case .tz: return f.zoneName
        case .offset(let iso, let colon, let seconds, let hoursOnly):
            if iso && f.offset == 0 { return "Z" }
            let a = abs(f.offset)
            var s = (f.offset < 0 ? "-" : "+") + pad(a / 3600, 2)
            if !hoursOnly { s += (colon ? ":" : "") + pad((a % 3600) / 60, 2) }
            if seconds { s += (colon ? ":" : "") + pad(a % 60, 2) }
            return s
        case .fraction(let digits, let trim, let sep):
            var d = String(pad(f.nanos, 9).prefix(digits))
            if trim {
                while d.hasSuffix("0") { d.removeLast() }
                return d.isEmpty ? "" : String(sep) + d
            }
            return String(sep) + d
        }
    }
}
