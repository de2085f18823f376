import BigInt
import Foundation

/// The builtin function table. See docs/policy.md for the list.
enum Builtins {
    static let table: [String: Builtin] = {
        var t: [String: Builtin] = [:]
        func add(_ list: [Builtin]) { for b in list { t[b.name] = b } }
        add(core)
        add(aggregates)
        add(collections)
        add(strings)
        add(regexAndGlob)
        add(encoding)
        add(time)
        add(network)
        add(cryptoAndJWT)
        add(misc)
        add(networkMore)
        add(template)
        add(jwtSign)
        add(x509)
        add(schema)
        return t
    }()

    /// Sorted names of all builtins (for documentation and `gatehouse policy check`).
    static var names: [String] { table.keys.filter { !$0.hasPrefix("internal.") }.sorted() }
}

public enum PolicyBuiltins {
    /// Names of the builtins this engine implements.
    public static var names: [String] { Builtins.names }
}

// MARK: - argument helpers

func typeError(_ pos: Int, _ expected: String, _ got: Value) -> BuiltinError {
    BuiltinError("operand \(pos) must be \(expected) but got \(got.typeName)", type: true)
}

func argString(_ a: [Value], _ i: Int) throws -> String {
    guard case .string(let s) = a[i] else { throw typeError(i + 1, "string", a[i]) }
    return s
}

func argNumber(_ a: [Value], _ i: Int) throws -> Number {
    guard case .number(let n) = a[i] else { throw typeError(i + 1, "number", a[i]) }
    return n
}

func argInt(_ a: [Value], _ i: Int) throws -> Int {
    let n = try argNumber(a, i)
    guard let v = n.intValue, n.isInteger else { throw BuiltinError("operand \(i + 1) must be integer number but got floating-point number", type: true) }
    return v
}

func viaDoubleIfBeyond64Bits(_ n: Number) -> Number {
    if case .big(let b) = n, UInt64(exactly: b.magnitude) == nil { return Number(n.doubleValue) }
    return n
}

func argBigInt(_ a: [Value], _ i: Int) throws -> BigInt {
    let n = try argNumber(a, i)
    guard n.isInteger, let b = n.bigValue else {
        throw BuiltinError("operand \(i + 1) must be integer number but got floating-point number", type: true)
    }
    return b
}

func argArray(_ a: [Value], _ i: Int) throws -> [Value] {
    guard case .array(let x) = a[i] else { throw typeError(i + 1, "array", a[i]) }
    return x
}

func argObject(_ a: [Value], _ i: Int) throws -> [Value: Value] {
    guard case .object(let x) = a[i] else { throw typeError(i + 1, "object", a[i]) }
    return x
}

func argSet(_ a: [Value], _ i: Int) throws -> Set<Value> {
    guard case .set(let x) = a[i] else { throw typeError(i + 1, "set", a[i]) }
    return x
}

func argBool(_ a: [Value], _ i: Int) throws -> Bool {
    guard case .bool(let x) = a[i] else { throw typeError(i + 1, "boolean", a[i]) }
    return x
}

/// Elements of an array or set.
func argArrayOrSet(_ a: [Value], _ i: Int) throws -> [Value] {
    switch a[i] {
    case .array(let x): return x
    case .set(let s): return s.sorted()
    default: throw typeError(i + 1, "any of {array, set}", a[i])
    }
}

func argStringsCollection(_ a: [Value], _ i: Int) throws -> [String] {
    var out: [String] = []
    switch a[i] {
    case .array(let x):
        for e in x {
            guard case .string(let s) = e else { throw BuiltinError("operand \(i + 1) must be array of strings but got array containing \(e.typeName)", type: true) }
            out.append(s)
        }
    case .set(let x):
        for e in x.sorted() {
            guard case .string(let s) = e else { throw BuiltinError("operand \(i + 1) must be set of strings but got set containing \(e.typeName)", type: true) }
            out.append(s)
        }
    case .string(let s): out.append(s)
    default: throw typeError(i + 1, "one of {string, set, array}", a[i])
    }
    return out
}

// MARK: - core: comparison, arithmetic, sets, types

extension Builtins {
    static let core: [Builtin] = [
        Builtin("equal", 2) { a, _ in .bool(a[0] == a[1]) },
        Builtin("neq", 2) { a, _ in .bool(a[0] != a[1]) },
        Builtin("lt", 2) { a, _ in .bool(Value.compare(a[0], a[1]) < 0) },
        Builtin("lte", 2) { a, _ in .bool(Value.compare(a[0], a[1]) <= 0) },
        Builtin("gt", 2) { a, _ in .bool(Value.compare(a[0], a[1]) > 0) },
        Builtin("gte", 2) { a, _ in .bool(Value.compare(a[0], a[1]) >= 0) },
        Builtin("plus", 2) { a, _ in .number(try argNumber(a, 0) + argNumber(a, 1)) },
        Builtin("minus", 2) { a, _ in
            if case .set(let x) = a[0] {
                return .set(x.subtracting(try argSet(a, 1)))
            }
            guard case .number(let x) = a[0] else { throw typeError(1, "any of {number, set}", a[0]) }
            guard case .number(let y) = a[1] else { throw typeError(2, "number", a[1]) }
            return .number(x - y)
        },
        Builtin("mul", 2) { a, _ in .number(try argNumber(a, 0) * argNumber(a, 1)) },
        Builtin("div", 2) { a, _ in
            let x = try argNumber(a, 0), y = try argNumber(a, 1)
            guard let r = Number.divide(x, y) else { throw BuiltinError("divide by zero") }
            return .number(r)
        },
        Builtin("rem", 2) { a, _ in
            let x = try argNumber(a, 0), y = try argNumber(a, 1)
            if y.isZero { throw BuiltinError("modulo by zero") }
            guard x.isInteger, y.isInteger, let r = Number.remainder(x, y) else {
                throw BuiltinError("modulo on floating-point number")
            }
            return .number(r)
        },
        // abs, round, ceil and floor keep integers whose magnitude fits in 64 bits and read larger
        // ones as doubles, as OPA's do (ceil(1e30) is 1000000000000000000024696061952).
        Builtin("abs", 1) { a, _ in
            let x = try viaDoubleIfBeyond64Bits(argNumber(a, 0))
            return .number(Number.compare(x, .int(0)) < 0 ? x.negated : x)
        },
        Builtin("round", 1) { a, _ in .number(roundNumber(try viaDoubleIfBeyond64Bits(argNumber(a, 0)), .toNearestOrAwayFromZero)) },
        // OPA truncates first, so a value between -1 and 0 floors to 0 and ceils to 1.
        Builtin("ceil", 1) { a, _ in
            let n = try viaDoubleIfBeyond64Bits(argNumber(a, 0))
            if case .float(let d) = n, d > -1, d < 0 { return .int(1) }
            return .number(roundNumber(n, .up))
        },
        Builtin("floor", 1) { a, _ in
            let n = try viaDoubleIfBeyond64Bits(argNumber(a, 0))
            if case .float(let d) = n, d > -1, d < 0 { return .int(0) }
            return .number(roundNumber(n, .down))
        },
        Builtin("numbers.range", 2) { a, _ in
            let x = try argInt(a, 0), y = try argInt(a, 1)
            let (diff, o) = y.subtractingReportingOverflow(x)
            if o || abs(diff) > 10_000_000 { throw BuiltinError("range too large") }
            return .array(x <= y ? (x...y).map { .int($0) } : stride(from: x, through: y, by: -1).map { .int($0) })
        },
        Builtin("numbers.range_step", 3) { a, _ in
            let x = try argInt(a, 0), y = try argInt(a, 1), s = try argInt(a, 2)
            if s <= 0 { throw BuiltinError("step must be a positive number above zero") }
            let (diff, o) = y.subtractingReportingOverflow(x)
            if o || diff == Int.min || abs(diff) / s > 10_000_000 { throw BuiltinError("range too large") }
            return .array(x <= y ? stride(from: x, through: y, by: s).map { .int($0) } : stride(from: x, through: y, by: -s).map { .int($0) })
        },
        // On integers of any size, as OPA (big.Int).
        Builtin("bits.and", 2) { a, _ in .number(Number(try argBigInt(a, 0) & argBigInt(a, 1))) },
        Builtin("bits.or", 2) { a, _ in .number(Number(try argBigInt(a, 0) | argBigInt(a, 1))) },
        Builtin("bits.xor", 2) { a, _ in .number(Number(try argBigInt(a, 0) ^ argBigInt(a, 1))) },
        Builtin("bits.negate", 1) { a, _ in .number(Number(~(try argBigInt(a, 0)))) },
        Builtin("bits.lsh", 2) { a, _ in
            let x = try argNumber(a, 0), s = try argInt(a, 1)
            guard s >= 0 else { throw BuiltinError("operand 2 must be an unsigned integer number but got a negative integer") }
            // A caller's shift of 1e10 allocated gigabytes; results stay within 4,096 bits.
            guard s <= 4096, (x.bigValue?.bitWidth ?? 0) + s <= 4160 else { throw BuiltinError("shift result larger than 4096 bits") }
            guard let b = x.bigValue else { throw typeError(1, "integer", a[0]) }
            return .number(Number(b << s))
        },
        Builtin("bits.rsh", 2) { a, _ in
            let x = try argNumber(a, 0), s = try argInt(a, 1)
            guard s >= 0 else { throw BuiltinError("operand 2 must be an unsigned integer number but got a negative integer") }
            guard let b = x.bigValue else { throw typeError(1, "integer", a[0]) }
            return .number(Number(b >> s))
        },
        Builtin("and", 2) { a, _ in .set(try argSet(a, 0).intersection(argSet(a, 1))) },
        Builtin("or", 2) { a, _ in .set(try argSet(a, 0).union(argSet(a, 1))) },
        Builtin("intersection", 1) { a, _ in
            let sets = try argSet(a, 0)
            var result: Set<Value>?
            for s in sets {
                guard case .set(let x) = s else { throw typeError(1, "set of sets", a[0]) }
                result = result.map { $0.intersection(x) } ?? x
            }
            return .set(result ?? [])
        },
        Builtin("union", 1) { a, _ in
            var result = Set<Value>()
            for s in try argSet(a, 0) {
                guard case .set(let x) = s else { throw typeError(1, "set of sets", a[0]) }
                result.formUnion(x)
            }
            return .set(result)
        },
        Builtin("set", 0) { _, _ in .set([]) },
        Builtin("is_number", 1) { a, _ in if case .number = a[0] { return .true }; return .false },
        Builtin("is_string", 1) { a, _ in if case .string = a[0] { return .true }; return .false },
        Builtin("is_boolean", 1) { a, _ in if case .bool = a[0] { return .true }; return .false },
        Builtin("is_array", 1) { a, _ in if case .array = a[0] { return .true }; return .false },
        Builtin("is_set", 1) { a, _ in if case .set = a[0] { return .true }; return .false },
        Builtin("is_object", 1) { a, _ in if case .object = a[0] { return .true }; return .false },
        Builtin("is_null", 1) { a, _ in if case .null = a[0] { return .true }; return .false },
        Builtin("type_name", 1) { a, _ in .string(a[0].typeName) },
        Builtin("to_number", 1) { a, _ in
            switch a[0] {
            case .number: return a[0]
            case .null: return .int(0)
            case .bool(let b): return .int(b ? 1 : 0)
            case .string(let s):
                let t = s
                guard !t.isEmpty, let n = Number(parsing: t), !t.hasPrefix("+"), t.lowercased() != "nan", !t.lowercased().contains("inf") else {
                    throw BuiltinError("strconv.ParseFloat: parsing \(JSON.serialize(.string(s))): invalid syntax")
                }
                if case .float(let d) = n, !d.isFinite {
                    throw BuiltinError("strconv.ParseFloat: parsing \(JSON.serialize(.string(s))): value out of range")
                }
                return .number(n)
            default: throw typeError(1, "any of {boolean, null, number, string}", a[0])
            }
        },
        Builtin("internal.member_2", 2) { a, _ in .bool(member(a[0], a[1])) },
        Builtin("internal.member_3", 3) { a, _ in
            switch a[2] {
            case .array, .object: return .bool(a[2].lookup(a[0]) == a[1])
            case .set(let s): return .bool(a[0] == a[1] && s.contains(a[1]))
            default: return .false
            }
        },
        Builtin("print", -1) { _, _ in .true },
    ]

    /// `x in xs`: array element, set member or object value.
    static func member(_ x: Value, _ xs: Value) -> Bool {
        switch xs {
        case .array(let a): return a.contains(x)
        case .set(let s): return s.contains(x)
        case .object(let o): return o.values.contains(x)
        default: return false
        }
    }

    static func roundNumber(_ n: Number, _ rule: FloatingPointRoundingRule) -> Number {
        switch n {
        case .int, .big: return n
        case .float(let d): return Number(d.rounded(rule))
        }
    }
}
