import BigInt
import Foundation

/// units.parse and units.parse_bytes as OPA computes them: the amount is split from the unit as
/// OPA's extractNumAndUnit does (digits, '.', signs and an exponent), parse_bytes multiplies in
/// 64-bit-mantissa binary floating point (Go's big.Float) and truncates, parse multiplies exact
/// rationals (Go's big.Rat, "m" being the double 0.001) and rounds a fraction to 10 places.
extension Builtins {
    struct UnitsError: Error { let message: String }

    static let byteUnits: [String: BigInt] = {
        var m: [String: BigInt] = ["": 1]
        for (i, p) in ["k", "m", "g", "t", "p", "e"].enumerated() {
            m[p] = BigInt(1000).power(i + 1); m[p + "b"] = m[p]
            m[p + "i"] = BigInt(1024).power(i + 1); m[p + "ib"] = m[p + "i"]
        }
        return m
    }()

    static let siUnits: [String: BigInt] = {
        var m: [String: BigInt] = ["": 1]
        for (i, p) in ["k", "M", "g", "t", "p", "e"].enumerated() {
            m[p] = BigInt(1000).power(i + 1)
            m[p.lowercased() + "i"] = BigInt(1024).power(i + 1)
            m[p.uppercased() + "i"] = BigInt(1024).power(i + 1)
        }
        for p in ["K", "G", "T", "P", "E"] { m[p] = m[p.lowercased()] }
        return m
    }()

    /// OPA's extractNumAndUnit: the amount runs over digits, '.', '+', '-' and an 'e' followed by
    /// a digit or sign (an exponent of at most 6 digits); the rest is the unit.
    static func splitAmount(_ s: String, builtin: String) throws -> (num: String, unit: String) {
        let b = Array(s.utf8)
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        var idx = 0
        while idx < b.count {
            let c = b[idx]
            if !isDigit(c) && c != UInt8(ascii: ".") && c != UInt8(ascii: "e") && c != UInt8(ascii: "E") && c != UInt8(ascii: "+") && c != UInt8(ascii: "-") { break }
            if c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                guard idx + 1 < b.count, isDigit(b[idx + 1]) || b[idx + 1] == UInt8(ascii: "+") || b[idx + 1] == UInt8(ascii: "-") else { break }
                if b[idx + 1] == UInt8(ascii: "+") || b[idx + 1] == UInt8(ascii: "-") { idx += 1 }
                var end = idx + 1
                while end < b.count, isDigit(b[end]) { end += 1 }
                if end - (idx + 1) > 6 { throw UnitsError(message: "\(builtin): exponent too large") }
            }
            idx += 1
        }
        return (String(decoding: b[..<idx], as: UTF8.self), String(decoding: b[idx...], as: UTF8.self))
    }

    /// A decimal amount (sign, digits with an optional point, optional exponent) as an exact
    /// fraction, as Go's big.Rat / big.Float SetString read it; nil when malformed.
    static func exactDecimal(_ s: String) -> (num: BigInt, den: BigInt)? {
        var t = Substring(s)
        var neg = false
        if let c = t.first, c == "+" || c == "-" { neg = c == "-"; t = t.dropFirst() }
        var exp = 0
        if let e = t.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            let et = t[t.index(after: e)...]
            let digits = et.first == "+" || et.first == "-" ? et.dropFirst() : et
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let v = Int(et.first == "+" ? digits : et) else { return nil }
            exp = v
            t = t[..<e]
        }
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }) else { return nil }
        let intPart = parts[0], frac = parts.count == 2 ? parts[1] : ""
        guard !(intPart.isEmpty && frac.isEmpty) else { return nil }
        exp -= frac.count
        // Gatehouse bound: OPA allows 6 exponent digits, but 10^999999 is too big to compute here.
        guard exp < 4000 else { return nil }
        var n = BigInt(String(intPart) + String(frac)) ?? 0
        if neg { n.negate() }
        if exp >= 0 { return (n * BigInt(10).power(exp), 1) }
        return (n, BigInt(10).power(min(-exp, 4000)))
    }

    /// p/q rounded to a 64-bit mantissa (nearest even), as mantissa * 2^exponent.
    static func roundToMantissa64(_ p: BigInt, _ q: BigInt) -> (mant: BigInt, exp: Int) {
        if p.isZero { return (0, 0) }
        let neg = p.sign == .minus
        let a = p.magnitude, b = q.magnitude
        var e = (a.bitWidth - b.bitWidth) - 64
        var quotient: BigUInt = 0, remainder: BigUInt = 0, divisor: BigUInt = 1
        while true {
            let num = e < 0 ? a << -e : a
            divisor = e > 0 ? b << e : b
            (quotient, remainder) = num.quotientAndRemainder(dividingBy: divisor)
            if quotient.bitWidth > 64 { e += 1 } else if quotient.bitWidth < 64 { e -= 1 } else { break }
        }
        let twice = remainder << 1
        if twice > divisor || (twice == divisor && quotient[bitAt: 0]) { quotient += 1 }
        if quotient.bitWidth > 64 { quotient >>= 1; e += 1 }
        return (neg ? -BigInt(quotient) : BigInt(quotient), e)
    }

    static func unitsParseBytes(_ raw: String) throws -> Number {
        let s = raw.lowercased().replacingOccurrences(of: "\"", with: "")
        if s.contains(" ") { throw UnitsError(message: "units.parse_bytes: spaces not allowed in resource strings") }
        let (num, unit) = try splitAmount(s, builtin: "units.parse_bytes")
        if num.isEmpty { throw UnitsError(message: "units.parse_bytes: no byte amount provided") }
        guard let mult = byteUnits[unit] else { throw UnitsError(message: "units.parse_bytes: byte unit \(unit) not recognized") }
        guard let (p, q) = exactDecimal(num) else { throw UnitsError(message: "units.parse_bytes: could not parse byte amount to a number") }
        let amount = roundToMantissa64(p, q)
        let product = roundToMantissa64(amount.mant * mult, 1)
        let e = product.exp + amount.exp
        let whole = e >= 0 ? product.mant << e : (product.mant.sign == .minus ? -((-product.mant) >> -e) : product.mant >> -e)
        return Number(whole)
    }

    static func unitsParse(_ raw: String) throws -> Number {
        let s = raw.replacingOccurrences(of: "\"", with: "")
        if s.contains(" ") { throw UnitsError(message: "units.parse: spaces not allowed in resource strings") }
        var (num, unit) = try splitAmount(s, builtin: "units.parse")
        if num.isEmpty { throw UnitsError(message: "units.parse: no amount provided") }
        if unit.utf8.count > 1 { unit = String(unit.prefix(1)) + unit.dropFirst().lowercased() }
        var mp: BigInt, mq: BigInt = 1
        if unit == "m" {
            // Go's big.Rat SetFloat64(0.001): the double nearest 0.001, exactly.
            let d = 0.001
            mp = BigInt(d.significandBitPattern | (1 << 52))
            mq = BigInt(1) << (52 - Int(d.exponent))
        } else {
            guard let m = siUnits[unit] else { throw UnitsError(message: "units.parse: unit \(unit) not recognized") }
            mp = m
        }
        guard let (p, q) = exactDecimal(num) else { throw UnitsError(message: "units.parse: could not parse amount to a number") }
        let n = p * mp, d = q * mq
        let (whole, rest) = n.quotientAndRemainder(dividingBy: d)
        if rest.isZero { return Number(whole) }
        // big.Rat FloatString(10): ten decimals, the last rounded half away from zero.
        let scale = BigInt(10).power(10)
        let (scaled, r) = (n.magnitude * scale.magnitude).quotientAndRemainder(dividingBy: d.magnitude)
        let rounded = r << 1 >= d.magnitude ? scaled + 1 : scaled
        let frac = String(rounded % scale.magnitude)
        let text = String(rounded / scale.magnitude) + "." + String(repeating: "0", count: 10 - frac.count) + frac
        return Number(parsing: (n.sign == .minus ? "-" : "") + text) ?? Number(0)
    }
}
