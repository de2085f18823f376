import Foundation

/// Address checks for outbound fetches the caller controls (SSRF defence). The policy match
/// pipeline reads `isInternal` too, as the client address's `private` fact.
public enum NetworkAddress {
    /// Numeric addresses of a host name (or the literal itself).
    public static func resolve(_ host: String) -> [String] {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(bare, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(result) }
        var addresses: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(info.pointee.ai_addr, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                let address = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !addresses.contains(address) { addresses.append(address) }
            }
            cursor = info.pointee.ai_next
        }
        return addresses
    }

    /// Loopback, private (RFC 1918, ULA), link-local, CGNAT, unspecified, multicast and reserved
    /// ranges — and every IPv6 form that carries an IPv4 address inside
    /// (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64, 6to4), judged by that IPv4
    /// address. Teredo and local-use NAT64 are refused whole (their IPv4 part cannot be judged
    /// simply). Anything that is not a numeric address counts as internal.
    public static func isInternal(_ address: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            return isInternalV4(withUnsafeBytes(of: v4) { Array($0) })
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return true }
        return isInternalV6(withUnsafeBytes(of: v6) { Array($0) })
    }

    static func isInternalV6(_ b: [UInt8]) -> Bool {
        let zeros = { (range: Range<Int>) in b[range].allSatisfy { $0 == 0 } }
        // ::ffff:a.b.c.d (IPv4-mapped) and ::a.b.c.d (IPv4-compatible, incl. :: and ::1).
        if zeros(0..<10), (b[10] == 0xff && b[11] == 0xff) || (b[10] == 0 && b[11] == 0) { return isInternalV4(Array(b[12..<16])) }
        // ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765).
        if zeros(0..<8), b[8] == 0xff, b[9] == 0xff, b[10] == 0, b[11] == 0 { return isInternalV4(Array(b[12..<16])) }
        // 64:ff9b::/96 (NAT64 well-known prefix, RFC 6052): the IPv4 address is the last 32 bits.
        if b[0] == 0, b[1] == 0x64, b[2] == 0xff, b[3] == 0x9b, zeros(4..<12) { return isInternalV4(Array(b[12..<16])) }
        // 64:ff9b:1::/48 (local-use NAT64, RFC 8215): the IPv4 position depends on the operator's prefix length.
        if b[0] == 0, b[1] == 0x64, b[2] == 0xff, b[3] == 0x9b, b[4] == 0, b[5] == 1 { return true }
        // 2002::/16 (6to4): the IPv4 address is bits 16..47.
        if b[0] == 0x20, b[1] == 0x02 { return isInternalV4(Array(b[2..<6])) }
        // 2001::/32 (Teredo): the client's IPv4 address is obfuscated; refused whole.
        if b[0] == 0x20, b[1] == 0x01, b[2] == 0, b[3] == 0 { return true }
        if b[0] == 0x20, b[1] == 0x01, b[2] == 0x0d, b[3] == 0xb8 { return true }  // 2001:db8::/32 documentation
        if b[0] == 0x01, b[1] == 0x00, zeros(2..<8) { return true }  // 100::/64 discard-only
        if b[0] == 0xfe, b[1] & 0xc0 == 0x80 { return true }  // fe80::/10 link-local
        if b[0] == 0xfe, b[1] & 0xc0 == 0xc0 { return true }  // fec0::/10 site-local (deprecated)
        if b[0] & 0xfe == 0xfc { return true }  // fc00::/7 unique local
        if b[0] == 0xff { return true }  // multicast
        return false
    }

    static func isInternalV4(_ b: [UInt8]) -> Bool {
        switch (b[0], b[1]) {
        case (0, _), (10, _), (127, _): return true
        case (169, 254): return true
        case (172, 16...31): return true
        case (192, 168): return true
        case (100, 64...127): return true  // CGNAT
        case (224...255, _): return true  // multicast, reserved, broadcast
        default: return b[0] == 192 && b[1] == 0 && b[2] == 0  // IETF protocol assignments
        }
    }
}
