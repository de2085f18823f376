import Foundation

/// Networking a policy may do. The default, `.none`, keeps evaluation free of I/O: `net.lookup_ip_addr`
/// and `http.send` fail with a builtin error that says so.
public struct Networking: Sendable, Equatable {
    /// Allows `net.lookup_ip_addr` (a blocking resolver call on the evaluating thread; the gateway
    /// does not enable it).
    public var dnsLookups: Bool

    public init(dnsLookups: Bool = false) {
        self.dnsLookups = dnsLookups
    }

    public static let none = Networking()

    var isNone: Bool { self == .none }

    /// The options of the evaluation running on this thread (bound only when not `.none`).
    @TaskLocal static var current: Networking = .none
}

extension Builtins {
    static let networkMore: [Builtin] = [
        Builtin("net.cidr_merge", 1) { a, _ in
            var v4: [CIDR] = [], v6: [CIDR] = []
            for s in try argStringElements(a, 0, "any of {array, set} of strings") {
                guard var c = CIDR.parse(s, allowIP: true) else { throw BuiltinError("\(s) is not a valid IP address or CIDR") }
                if !s.contains("/") {
                    // OPA: a bare IPv4 address stands for its classful network (Go's DefaultMask); IPv6 needs a prefix.
                    guard let v4 = c.asGoNetwork.bytes.count == 4 ? c.asGoNetwork : nil else { throw BuiltinError("IPv6 invalid: needs prefix length") }
                    c = CIDR(bytes: v4.bytes, prefix: v4.bytes[0] < 0x80 ? 8 : (v4.bytes[0] < 0xC0 ? 16 : (v4.bytes[0] < 0xE0 ? 24 : 32)))
                }
                let masked = c.masked()
                if masked.bytes.count == 4 { v4.append(masked) } else { v6.append(masked) }
            }
            return .array((CIDR.merge(v4) + CIDR.merge(v6)).map { .string($0.description) })
        },
        Builtin("net.cidr_expand", 1) { a, _ in
            let s = try argString(a, 0)
            guard let c = CIDR.parse(s, allowIP: false) else { throw BuiltinError("invalid CIDR address: \(s)") }
            let hostBits = c.bytes.count * 8 - c.prefix
            guard hostBits <= 20 else { throw BuiltinError("\(s) has more than 2^20 addresses") }
            var cur = c.masked().bytes
            var out: [Value] = []
            for _ in 0..<(1 << hostBits) {
                out.append(.string(CIDR.format(cur)))
                CIDR.increment(&cur)
            }
            return .set(Set(out))
        },
        Builtin("net.lookup_ip_addr", 1) { a, _ in
            let name = try argString(a, 0)
            guard Networking.current.dnsLookups else {
                throw BuiltinError("DNS lookups are disabled; enable them with EvalOptions.networking = Networking(dnsLookups: true)")
            }
            return .set(Set(try lookupIPAddresses(name).map { .string($0) }))
        },
    ]

    /// Strings of an array or set operand.
    static func argStringElements(_ a: [Value], _ i: Int, _ expected: String) throws -> [String] {
        let elems: [Value]
        switch a[i] {
        case .array(let x): elems = x
        case .set(let x): elems = x.sorted()
        default: throw typeError(i + 1, expected, a[i])
        }
        return try elems.map {
            guard case .string(let s) = $0 else { throw typeError(i + 1, expected, a[i]) }
            return s
        }
    }

    /// getaddrinfo: blocks the calling thread; only reached when the embedder enabled DNS lookups.
    static func lookupIPAddresses(_ name: String) throws -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, nil, &hints, &res)
        guard rc == 0 else { throw BuiltinError("lookup \(name): \(String(cString: gai_strerror(rc)))") }
        defer { freeaddrinfo(res) }
        var out: [String] = []
        var p = res
        while let ai = p {
            if let sa = ai.pointee.ai_addr {
                if ai.pointee.ai_family == AF_INET {
                    let bytes = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                        withUnsafeBytes(of: sin.pointee.sin_addr) { Array($0) }
                    }
                    out.append(CIDR.format(bytes))
                } else if ai.pointee.ai_family == AF_INET6 {
                    let bytes = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                        withUnsafeBytes(of: sin.pointee.sin6_addr) { Array($0) }
                    }
                    out.append(CIDR.format(bytes))
                }
            }
            p = ai.pointee.ai_next
        }
        return out
    }
}

extension CIDR {
    func masked() -> CIDR {
        var b = bytes
        for i in 0..<b.count {
            let keep = max(0, min(8, prefix - i * 8))
            b[i] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        return CIDR(bytes: b, prefix: prefix)
    }

    var description: String { "\(CIDR.format(bytes))/\(prefix)" }

    /// Dotted quad for 4 bytes, RFC 5952 text for 16 (as Go's net.IP.String).
    static func format(_ b: [UInt8]) -> String {
        if b.count == 4 { return b.map(String.init).joined(separator: ".") }
        if CIDR(bytes: b, prefix: 128).isV4Mapped { return b[12...].map(String.init).joined(separator: ".") }
        var addr = in6_addr()
        withUnsafeMutableBytes(of: &addr) { raw in for i in 0..<16 { raw[i] = b[i] } }
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count)) != nil else { return "" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func increment(_ b: inout [UInt8]) {
        var i = b.count - 1
        while i >= 0 {
            b[i] &+= 1
            if b[i] != 0 { return }
            i -= 1
        }
    }

    /// The smallest list of prefixes covering the same addresses (one family), sorted by address.
    static func merge(_ list: [CIDR]) -> [CIDR] {
        var items = list.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) || ($0.bytes == $1.bytes && $0.prefix < $1.prefix) }
        var changed = true
        while changed {
            changed = false
            var out: [CIDR] = []
            for c in items {
                if let last = out.last, last.contains(c) { changed = true; continue }
                if let last = out.last, last.prefix == c.prefix, last.prefix > 0 {
                    let parent = CIDR(bytes: last.bytes, prefix: last.prefix - 1).masked()
                    if parent.bytes == last.bytes, parent.contains(c) {
                        out[out.count - 1] = parent
                        changed = true
                        continue
                    }
                }
                out.append(c)
            }
            items = out
        }
        return items
    }
}
