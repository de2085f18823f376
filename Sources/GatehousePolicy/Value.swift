import BigInt
import Foundation

/// A Rego number: arbitrary-precision integer or a binary floating-point value.
///
/// Numbers are kept normalized: an integral float that fits in `Int` is stored as `.int`,
/// and a big integer that fits in `Int` is stored as `.int`. That makes `1 == 1.0` and
/// hashing consistent, as in OPA where numbers compare by value.
public enum Number: Sendable, Hashable, Comparable, CustomStringConvertible {
    case int(Int)
    indirect case big(BigInt)
    case float(Double)

    public init(_ i: Int) { self = .int(i) }

    public init(_ b: BigInt) {
        if let i = Int(exactly: b) { self = .int(i) } else { self = .big(b) }
    }

    public init(_ d: Double) {
        if d.isFinite, d == d.rounded(), abs(d) < 9.0e15 {
            self = .int(Int(d))
        } else {
            self = .float(d)
        }
    }

    /// Integers up to this many digits are kept exact; longer ones become doubles. Decimal to
    /// binary conversion is quadratic in the digits: a caller's 1,000,000-digit argument held an
    /// event loop for minutes while the policy input was built, and 780 numbers of 5,000 digits
    /// for seconds. 400 covers every finite double written out (309 digits) with room to spare.
    public static let maxExactDigits = 400

    /// Parses a JSON/Rego number literal, keeping integers exact (up to `maxExactDigits`).
    public init?(parsing text: String) {
        if !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) {
            if let i = Int(text) { self = .int(i); return }
            if text.utf8.count > Self.maxExactDigits + 1 {
                guard let d = Double(text) else { return nil }
                self = Number(d)
                return
            }
            if let b = BigInt(text, radix: 10) { self = Number(b); return }
            return nil
        }
        // Integral values written with an exponent or fraction (e.g. 1e3, 2.0) stay exact when possible.
        if let d = Double(text) {
            if !d.isFinite || (d == d.rounded() && abs(d) >= 9.0e15), let b = Number.exactBigInt(text) {
                self = Number(b)
            } else {
                self = Number(d)
            }
            return
        }
        return nil
    }

    private static func exactBigInt(_ text: String) -> BigInt? {
        // mantissa[.fraction]e[+-]exp
        let lower = text.lowercased()
        var mant = lower
        var exp = 0
        if let eIdx = lower.firstIndex(of: "e") {
            mant = String(lower[..<eIdx])
            guard let e = Int(lower[lower.index(after: eIdx)...]) else { return nil }
            exp = e
        }
        var digits = mant
        var neg = false
        if digits.hasPrefix("-") { neg = true; digits.removeFirst() }
        if let dot = digits.firstIndex(of: ".") {
            let frac = digits[digits.index(after: dot)...]
            exp -= frac.count
            digits = String(digits[..<dot]) + frac
        }
        while exp < 0 {
            guard digits.hasSuffix("0") else { return nil }
            digits.removeLast(); exp += 1
        }
        if exp > 4000 { return nil }
        digits += String(repeating: "0", count: exp)
        guard digits.utf8.count <= maxExactDigits, var b = BigInt(digits, radix: 10) else { return nil }
        if neg { b.negate() }
        return b
    }

    public var isInteger: Bool {
        switch self {
        case .int, .big: return true
        case .float(let d): return d.isFinite && d == d.rounded()
        }
    }

    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .big: return nil
        case .float(let d): return d == d.rounded() && abs(d) < 9.2e18 ? Int(d) : nil
        }
    }

    public var bigValue: BigInt? {
        switch self {
        case .int(let i): return BigInt(i)
        case .big(let b): return b
        case .float(let d): return d.isFinite && d == d.rounded() ? BigInt(d) : nil
        }
    }

    public var doubleValue: Double {
        switch self {
        case .int(let i): return Double(i)
        case .big(let b): return Double(b)
        case .float(let d): return d
        }
    }

    public var isZero: Bool {
        switch self {
        case .int(let i): return i == 0
        case .big(let b): return b.isZero
        case .float(let d): return d == 0
        }
    }

    public var description: String {
        switch self {
        case .int(let i): return String(i)
        case .big(let b): return b.description
        case .float(let d): return Number.format(d)
        }
    }

    static func format(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Inf" : "+Inf" }
        if d == d.rounded(), abs(d) < 1e21 {
            if let b = BigInt(exactly: d) { return b.description }
        }
        var s = "\(d)"
        // Swift writes 1e-07 as "1e-07"; JSON and OPA accept it.
        if s.hasSuffix(".0") { s.removeLast(2) }
        return s
    }

    public static func == (a: Number, b: Number) -> Bool { compare(a, b) == 0 }
    public static func < (a: Number, b: Number) -> Bool { compare(a, b) < 0 }

    public func hash(into h: inout Hasher) {
        switch self {
        case .int(let i): h.combine(i)
        case .big(let b): h.combine(Double(b))
        case .float(let d):
            if d == d.rounded(), abs(d) < 9.0e15 { h.combine(Int(d)) } else { h.combine(d) }
        }
    }

    public static func compare(_ a: Number, _ b: Number) -> Int {
        switch (a, b) {
        case (.int(let x), .int(let y)): return x < y ? -1 : (x > y ? 1 : 0)
        case (.float(let x), .float(let y)): return x < y ? -1 : (x > y ? 1 : 0)
        default:
            if let x = a.bigValue, let y = b.bigValue { return x < y ? -1 : (x > y ? 1 : 0) }
            let x = a.doubleValue, y = b.doubleValue
            return x < y ? -1 : (x > y ? 1 : 0)
        }
    }

    // MARK: arithmetic

    public static func + (a: Number, b: Number) -> Number {
        if case .int(let x) = a, case .int(let y) = b {
            let (r, o) = x.addingReportingOverflow(y)
            if !o { return .int(r) }
        }
        if a.isIntegral, b.isIntegral, let x = a.bigValue, let y = b.bigValue { return Number(x + y) }
        return Number.extended(a, b, { $0 + $1 })
    }

    public static func - (a: Number, b: Number) -> Number {
        if case .int(let x) = a, case .int(let y) = b {
            let (r, o) = x.subtractingReportingOverflow(y)
            if !o { return .int(r) }
        }
        if a.isIntegral, b.isIntegral, let x = a.bigValue, let y = b.bigValue { return Number(x - y) }
        return Number.extended(a, b, { $0 - $1 })
    }

    public static func * (a: Number, b: Number) -> Number {
        if case .int(let x) = a, case .int(let y) = b {
            let (r, o) = x.multipliedReportingOverflow(by: y)
            if !o { return .int(r) }
        }
        if a.isIntegral, b.isIntegral, let x = a.bigValue, let y = b.bigValue { return Number(x * y) }
        return Number.extended(a, b, { $0 * $1 })
    }

    /// Division; nil on division by zero.
    public static func divide(_ a: Number, _ b: Number) -> Number? {
        if b.isZero { return nil }
        if case .int(let x) = a, case .int(let y) = b, y != -1, x % y == 0 { return .int(x / y) }
        #if !(arch(x86_64) || arch(i386))
        if a.isIntegral, b.isIntegral, let x = a.bigValue, let y = b.bigValue {
            let (q, r) = x.quotientAndRemainder(dividingBy: y)
            if r.isZero { return Number(q) }
        }
        #endif
        // OPA divides in 64-bit-precision floats even for integers: a quotient of more than 20
        // digits is rounded (12345678901234567890123456789 / 3 is 4115226300411522630100000000).
        return Number.extended(a, b, { $0 / $1 })
    }

    #if arch(x86_64) || arch(i386)
    /// Non-integer arithmetic as OPA does it: OPA reads each number's decimal text into a Go
    /// big.Float of 64-bit precision, computes, and writes the shortest decimal text at that
    /// precision; Float80 has the same 64-bit significand and rounding, so `0.1 + 0.2` is 0.3
    /// here too (with doubles it is 0.30000000000000004). The result is stored as the double
    /// nearest that text. A double's operand text is its shortest round-trip form, which is the
    /// literal a policy or input wrote in all but contrived cases.
    static func extended(_ a: Number, _ b: Number, _ op: (Float80, Float80) -> Float80) -> Number {
        let r = op(a.float80Value, b.float80Value)
        // Through the text, as OPA: a huge integral result (1e308 * 10) stays an exact integer.
        return Number(parsing: r.description) ?? Number(Double(r))
    }

    /// One step of OPA's `product`: its accumulator is a big.Float of 53-bit precision (a
    /// double) multiplied by each element read at 64-bit precision, so `product([0.1, 3])` is
    /// 0.30000000000000004 where `0.1 * 3` is 0.3.
    static func productStep(_ total: Number, _ n: Number) -> Number {
        Number(Double(Float80(total.doubleValue) * n.float80Value))
    }

    var float80Value: Float80 {
        switch self {
        case .int(let i): return Float80(i)
        case .big(let b): return Float80(String(b)) ?? Float80(doubleValue)
        case .float(let d): return Float80(d.description) ?? Float80(d)
        }
    }
    #else
    /// Without an 80-bit float type, non-integer arithmetic is done in doubles.
    static func extended(_ a: Number, _ b: Number, _ op: (Double, Double) -> Double) -> Number {
        Number(op(a.doubleValue, b.doubleValue))
    }

    static func productStep(_ total: Number, _ n: Number) -> Number {
        Number(total.doubleValue * n.doubleValue)
    }

    #endif

    /// Remainder on integers; nil on zero divisor or non-integers.
    public static func remainder(_ a: Number, _ b: Number) -> Number? {
        guard a.isIntegral, b.isIntegral, let x = a.bigValue, let y = b.bigValue, !y.isZero else { return nil }
        return Number(x % y)
    }

    /// True for values stored as integers (not floats), used to keep arithmetic exact.
    var isIntegral: Bool {
        switch self {
        case .int, .big: return true
        case .float: return false
        }
    }

    public var negated: Number {
        switch self {
        case .int(let i): return i == Int.min ? Number(-BigInt(i)) : .int(-i)
        case .big(let b): return Number(-b)
        case .float(let d): return .float(-d)
        }
    }
}

/// A Rego value: the JSON types plus sets. Objects allow any value as key.
public enum Value: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Number)
    case string(String)
    case array([Value])
    case set(Set<Value>)
    case object([Value: Value])

    public static let `true` = Value.bool(true)
    public static let `false` = Value.bool(false)
    public static let emptyObject = Value.object([:])
    public static let emptySet = Value.set([])

    public static func int(_ i: Int) -> Value { .number(.int(i)) }
    public static func double(_ d: Double) -> Value { .number(Number(d)) }

    /// Type name as used in OPA error messages and `type_name`.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .set: return "set"
        case .object: return "object"
        }
    }

    var typeRank: Int {
        switch self {
        case .null: return 0
        case .bool: return 1
        case .number: return 2
        case .string: return 3
        case .array: return 4
        case .object: return 5
        case .set: return 6
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var numberValue: Number? { if case .number(let n) = self { return n }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [Value]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: [Value: Value]? { if case .object(let o) = self { return o }; return nil }
    public var setValue: Set<Value>? { if case .set(let s) = self { return s }; return nil }

    public subscript(key: String) -> Value? {
        if case .object(let o) = self { return o[.string(key)] }
        return nil
    }

    /// Looks up a key in a collection (array index, object key, set member).
    @inline(__always)
    public func lookup(_ key: Value) -> Value? {
        switch self {
        case .object(let o): return o[key]
        case .array(let a):
            if case .number(let n) = key, case .int(let i) = n, i >= 0, i < a.count { return a[i] }
            return nil
        case .set(let s):
            // Not `s.contains(key) ? key : nil`: Value is ExpressibleByNilLiteral, so that is `.null`.
            if s.contains(key) { return key }
            return nil
        default: return nil
        }
    }

    public var isTruthyDefined: Bool {
        if case .bool(false) = self { return false }
        return true
    }
}

extension Value: Comparable {
    public static func < (a: Value, b: Value) -> Bool { compare(a, b) < 0 }

    /// Total order over values, following OPA: null < boolean < number < string < array < object < set.
    public static func compare(_ a: Value, _ b: Value) -> Int {
        switch (a, b) {
        case (.null, .null): return 0
        case (.bool(let x), .bool(let y)): return x == y ? 0 : (!x ? -1 : 1)
        case (.number(let x), .number(let y)): return Number.compare(x, y)
        case (.string(let x), .string(let y)): return compareStrings(x, y)
        case (.array(let x), .array(let y)):
            for i in 0..<min(x.count, y.count) {
                let c = compare(x[i], y[i])
                if c != 0 { return c }
            }
            return x.count < y.count ? -1 : (x.count > y.count ? 1 : 0)
        case (.object(let x), .object(let y)):
            let xk = x.keys.sorted(), yk = y.keys.sorted()
            for i in 0..<min(xk.count, yk.count) {
                let c = compare(xk[i], yk[i])
                if c != 0 { return c }
                let d = compare(x[xk[i]]!, y[yk[i]]!)
                if d != 0 { return d }
            }
            return xk.count < yk.count ? -1 : (xk.count > yk.count ? 1 : 0)
        case (.set(let x), .set(let y)):
            let xs = x.sorted(), ys = y.sorted()
            for i in 0..<min(xs.count, ys.count) {
                let c = compare(xs[i], ys[i])
                if c != 0 { return c }
            }
            return xs.count < ys.count ? -1 : (xs.count > ys.count ? 1 : 0)
        default:
            return a.typeRank < b.typeRank ? -1 : 1
        }
    }

    /// Byte-wise (UTF-8) string comparison, as Go compares strings.
    static func compareStrings(_ x: String, _ y: String) -> Int {
        if x == y { return 0 }
        var xi = x.utf8.makeIterator(), yi = y.utf8.makeIterator()
        while true {
            let a = xi.next(), b = yi.next()
            switch (a, b) {
            case (nil, nil): return 0
            case (nil, _): return -1
            case (_, nil): return 1
            case (let p?, let q?): if p != q { return p < q ? -1 : 1 }
            }
        }
    }
}

// MARK: - Literal conveniences

extension Value: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(.int(value)) }
    public init(floatLiteral value: Double) { self = .number(Number(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: Value...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, Value)...) {
        var o: [Value: Value] = [:]
        for (k, v) in elements { o[.string(k)] = v }
        self = .object(o)
    }
    public init(nilLiteral: ()) { self = .null }
}
