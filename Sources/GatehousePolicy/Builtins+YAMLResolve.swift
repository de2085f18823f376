import BigInt
import Foundation

/// go-yaml v2's scalar resolution (YAML 1.1) and its decoding into the values sigs.k8s.io/yaml
/// turns into JSON, which is what OPA's yaml.unmarshal returns.
extension GoYAML {
    static let boolWords: [String: Bool] = {
        var m: [String: Bool] = [:]
        for w in ["y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"] { m[w] = true }
        for w in ["n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"] { m[w] = false }
        return m
    }()

    static let specialFloats: [String: Double] = {
        var m: [String: Double] = [:]
        for w in [".nan", ".NaN", ".NAN"] { m[w] = .nan }
        for w in [".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"] { m[w] = .infinity }
        for w in ["-.inf", "-.Inf", "-.INF"] { m[w] = -.infinity }
        return m
    }()

    static let resolvableTags: Set<String> = ["", "!!str", "!!bool", "!!int", "!!float", "!!null", "!!timestamp"]

    /// The tag a scalar resolves to and its value. A tag the text does not fit is an error
    /// (except an integer under !!float), as in go-yaml v2.
    static func resolve(_ tag: String, _ text: String) throws -> (tag: String, value: Scalar) {
        guard resolvableTags.contains(tag) else { return (tag, .string(text)) }
        var (rtag, value) = tag == "!!str" ? ("!!str", Scalar.string(text)) : resolvePlain(text, tag: tag)
        if tag == "!!float", rtag == "!!int", case .int(let i) = value { rtag = "!!float"; value = .float(Double(i)) }
        guard tag == "" || tag == rtag || tag == "!!str" else {
            throw Failure(message: "yaml: cannot decode \(rtag) `\(text)` as a \(tag)")
        }
        return (rtag, value)
    }

    static func resolvePlain(_ text: String, tag: String) -> (String, Scalar) {
        guard let first = text.utf8.first else { return ("!!null", .null) }
        switch first {
        case UInt8(ascii: "~"), UInt8(ascii: "n"), UInt8(ascii: "N"):
            if ["~", "null", "Null", "NULL"].contains(text) { return ("!!null", .null) }
        case UInt8(ascii: "<"):
            if text == "<<" { return ("!!merge", .string(text)) }
        default: break
        }
        if let b = boolWords[text] { return ("!!bool", .bool(b)) }
        if let f = specialFloats[text] { return ("!!float", .float(f)) }
        switch first {
        case UInt8(ascii: "."):
            if isYAMLFloat(text), let d = Double(text), d.isFinite { return ("!!float", .float(d)) }
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "-"):
            if tag == "" || tag == "!!timestamp", isTimestamp(text) { return ("!!timestamp", .string(text)) }
            let plain = text.replacingOccurrences(of: "_", with: "")
            if let n = goParseInteger(plain) {
                if let i = n.int { return ("!!int", .int(i)) }
                if let u = n.uint { return ("!!int", .uint(u)) }
            }
            if isYAMLFloat(plain), let d = Double(plain), d.isFinite { return ("!!float", .float(d)) }
        default: break
        }
        return ("!!str", .string(text))
    }

    /// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
    static func isYAMLFloat(_ s: String) -> Bool {
        var u = Substring(s).utf8[...]
        func digits() -> Int {
            var n = 0
            while let c = u.first, c >= 0x30, c <= 0x39 { u = u.dropFirst(); n += 1 }
            return n
        }
        if let c = u.first, c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { u = u.dropFirst() }
        if u.first == UInt8(ascii: ".") {
            u = u.dropFirst()
            guard digits() > 0 else { return false }
        } else {
            guard digits() > 0 else { return false }
            if u.first == UInt8(ascii: ".") { u = u.dropFirst(); _ = digits() }
        }
        if let c = u.first, c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            u = u.dropFirst()
            if let c = u.first, c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { u = u.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return u.isEmpty
    }

    /// Go's strconv.ParseInt/ParseUint with base 0 (0x, 0o, 0b and 0 prefixes): the value as an
    /// int64 and as a uint64 (ParseUint takes no sign), nil where out of range; nil on bad syntax.
    static func goParseInteger(_ s: String) -> (int: Int64?, uint: UInt64?)? {
        var u = Array(s.utf8)[...]
        var neg = false, signed = false
        if let c = u.first, c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { neg = c == UInt8(ascii: "-"); signed = true; u = u.dropFirst() }
        guard !u.isEmpty else { return nil }
        var base: UInt64 = 10
        if u.first == UInt8(ascii: "0") {
            let p = u.count >= 3 ? u[u.startIndex + 1] | 0x20 : 0
            switch p {
            case UInt8(ascii: "b"): base = 2; u = u.dropFirst(2)
            case UInt8(ascii: "o"): base = 8; u = u.dropFirst(2)
            case UInt8(ascii: "x"): base = 16; u = u.dropFirst(2)
            default: base = 8; u = u.dropFirst()
            }
        }
        var mag: UInt64 = 0
        var overflow = false
        for c in u {
            guard let d = Builtins.hexVal(c).map(UInt64.init), d < base else { return nil }
            let (m, o1) = mag.multipliedReportingOverflow(by: base)
            let (a, o2) = m.addingReportingOverflow(d)
            overflow = overflow || o1 || o2
            mag = a
        }
        if overflow { return (nil, nil) }
        let i: Int64? = neg ? (mag <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- mag) : nil) : (mag <= UInt64(Int64.max) ? Int64(mag) : nil)
        return (i, signed ? nil : mag)
    }

    /// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`: quoted on output, as go-yaml v2 does.
    static func isBase60Float(_ s: String) -> Bool {
        var u = Array(s.utf8)[...]
        func isDigit(_ c: UInt8?) -> Bool { c.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
        if let c = u.first, c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { u = u.dropFirst() }
        guard isDigit(u.first) else { return false }
        while isDigit(u.first) || u.first == UInt8(ascii: "_") { u = u.dropFirst() }
        var groups = 0
        while u.first == UInt8(ascii: ":") {
            u = u.dropFirst()
            var n = 0, first: UInt8 = 0
            while isDigit(u.first), n < 2 { if n == 0 { first = u.first! }; u = u.dropFirst(); n += 1 }
            guard n >= 1, n == 1 || first <= UInt8(ascii: "5") else { return false }
            groups += 1
        }
        guard groups > 0 else { return false }
        if u.first == UInt8(ascii: ".") {
            u = u.dropFirst()
            while isDigit(u.first) || u.first == UInt8(ascii: "_") { u = u.dropFirst() }
        }
        return u.isEmpty
    }

    /// go-yaml v2's timestamps: Go's time.Parse with 2006-1-2T15:4:5.999999999Z07:00 (or a
    /// lowercase t), "2006-1-2 15:4:5.999999999" and "2006-1-2".
    static func isTimestamp(_ s: String) -> Bool {
        var u = Array(s.utf8)[...]
        func num(_ maxDigits: Int) -> Int? {
            var n = 0, v = 0
            while n < maxDigits, let c = u.first, c >= 0x30, c <= 0x39 { v = v * 10 + Int(c - 0x30); u = u.dropFirst(); n += 1 }
            return n == 0 ? nil : v
        }
        func eat(_ c: Character) -> Bool {
            guard u.first == c.asciiValue else { return false }
            u = u.dropFirst()
            return true
        }
        guard u.count >= 5, u.prefix(4).allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let year = num(4), eat("-"),
              let month = num(2), (1...12).contains(month), eat("-"), let day = num(2), day >= 1 else { return false }
        let days = [31, year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day <= days[month - 1] else { return false }
        if u.isEmpty { return true }
        let zoned = u.first == UInt8(ascii: "T") || u.first == UInt8(ascii: "t")
        if zoned { u = u.dropFirst() } else {
            guard u.first == UInt8(ascii: " ") else { return false }
            while u.first == UInt8(ascii: " ") { u = u.dropFirst() }
        }
        guard let h = num(2), h < 24, eat(":"), let m = num(2), m < 60, eat(":"), let sec = num(2), sec < 60 else { return false }
        if let c = u.first, c == UInt8(ascii: ".") || c == UInt8(ascii: ","), u.count >= 2, u[u.startIndex + 1] >= 0x30, u[u.startIndex + 1] <= 0x39 {
            u = u.dropFirst()
            _ = num(Int.max)
        }
        if !zoned { return u.isEmpty }
        if eat("Z") { return u.isEmpty }
        guard let c = u.first, c == UInt8(ascii: "+") || c == UInt8(ascii: "-") else { return false }
        u = u.dropFirst()
        let rest = Array(u)
        return rest.count == 5 && rest[2] == UInt8(ascii: ":") && [0, 1, 3, 4].allSatisfy { rest[$0] >= 0x30 && rest[$0] <= 0x39 }
    }
}
