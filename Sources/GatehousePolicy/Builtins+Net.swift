import Foundation

struct CIDR {
    let bytes: [UInt8]
    let prefix: Int

    func contains(_ other: CIDR) -> Bool {
        // Go's IPNet.Contains sees IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) as IPv4, networks too.
        let (net, addr) = (asGoNetwork, other.asGoNetwork)
        guard addr.bytes.count == net.bytes.count, addr.prefix >= net.prefix else { return false }
        return CIDR.samePrefix(net.bytes, addr.bytes, net.prefix)
    }

    var isV4Mapped: Bool { bytes.count == 16 && bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF }

    /// An IPv4-mapped address or network as Go's networkNumberAndMask sees it: IPv4 (the mask's last 32 bits).
    var asGoNetwork: CIDR { isV4Mapped ? CIDR(bytes: Array(bytes[12...]), prefix: max(0, prefix - 96)) : self }

    func intersects(_ other: CIDR) -> Bool {
        guard other.bytes.count == bytes.count else { return false }
        return CIDR.samePrefix(bytes, other.bytes, min(prefix, other.prefix))
    }

    static func samePrefix(_ a: [UInt8], _ b: [UInt8], _ bits: Int) -> Bool {
        var remaining = bits
        var i = 0
        while remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xFF : UInt8(0xFF << (8 - remaining) & 0xFF)
            if a[i] & mask != b[i] & mask { return false }
            remaining -= 8
            i += 1
        }
        return true
    }

    /// Parses "a.b.c.d/n", "::1/128" or (when `allowIP`) a bare address.
    static func parse(_ s: String, allowIP: Bool) -> CIDR? {
        let parts = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let addr = parseIP(String(parts[0])) else { return nil }
        if parts.count == 1 {
            guard allowIP else { return nil }
            return CIDR(bytes: addr, prefix: addr.count * 8)
        }
        guard !parts[1].isEmpty, parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let p = Int(parts[1].prefix(4)), p <= addr.count * 8 else { return nil }
        return CIDR(bytes: addr, prefix: p)
    }

    static func parseIP(_ s: String) -> [UInt8]? {
        if s.contains(":") {
            var addr = in6_addr()
            guard inet_pton(AF_INET6, s, &addr) == 1 else { return nil }
            return withUnsafeBytes(of: &addr) { Array($0) }
        }
        let octets = s.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var out: [UInt8] = []
        for o in octets {
            // Go refuses leading zeros (ambiguous octal) and signs.
            guard !o.isEmpty, o.count <= 3, o.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), o.count == 1 || o.first != "0", let v = UInt8(o) else { return nil }
            out.append(v)
        }
        return out
    }
}

extension Builtins {
    static let network: [Builtin] = [
        Builtin("net.cidr_contains", 2) { a, _ in
            let c = try argString(a, 0), x = try argString(a, 1)
            guard let cidr = CIDR.parse(c, allowIP: false) else { throw BuiltinError("invalid CIDR address: \(c)") }
            guard let other = CIDR.parse(x, allowIP: true) else { throw BuiltinError("invalid CIDR address: \(x)") }
            return .bool(cidr.contains(other))
        },
        Builtin("net.cidr_intersects", 2) { a, _ in
            let c = try argString(a, 0), x = try argString(a, 1)
            guard let c1 = CIDR.parse(c, allowIP: false) else { throw BuiltinError("invalid CIDR address: \(c)") }
            guard let c2 = CIDR.parse(x, allowIP: false) else { throw BuiltinError("invalid CIDR address: \(x)") }
            return .bool(c1.intersects(c2))
        },
        Builtin("net.cidr_is_valid", 1) { a, _ in
            guard case .string(let s) = a[0] else { return .false }
            return .bool(CIDR.parse(s, allowIP: false) != nil)
        },
        Builtin("net.cidr_contains_matches", 2) { a, _ in
            let cidrs = try cidrEntries(a, 0)
            let items = try cidrEntries(a, 1)
            var out = Set<Value>()
            for (ck, cs) in cidrs {
                guard let c = CIDR.parse(cs, allowIP: false) else { throw BuiltinError("invalid CIDR address: \(cs)") }
                for (ik, iss) in items {
                    guard let x = CIDR.parse(iss, allowIP: true) else { throw BuiltinError("invalid CIDR address: \(iss)") }
                    if c.contains(x) { out.insert(.array([ck, ik])) }
                }
            }
            return .set(out)
        },
    ]

    /// (key, cidr string) pairs for string, array, set or object operands; array elements may be [cidr, ...].
    static func cidrEntries(_ a: [Value], _ i: Int) throws -> [(Value, String)] {
        func str(_ v: Value) throws -> String {
            switch v {
            case .string(let s): return s
            case .array(let x):
                guard let f = x.first, case .string(let s) = f else { throw typeError(i + 1, "string or array with a string first", v) }
                return s
            default: throw typeError(i + 1, "string", v)
            }
        }
        switch a[i] {
        case .string(let s): return [(.string(s), s)]
        case .array(let x): return try x.enumerated().map { (.int($0.offset), try str($0.element)) }
        case .set(let s): return try s.sorted().map { ($0, try str($0)) }
        case .object(let o): return try o.sorted(by: { $0.key < $1.key }).map { ($0.key, try str($0.value)) }
        default: throw typeError(i + 1, "any of {string, array, set, object}", a[i])
        }
    }
}
