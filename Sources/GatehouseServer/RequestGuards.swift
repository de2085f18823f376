import GatehouseConfig

/// DNS-rebinding defences, checked before anything else reads the request:
/// the `Host` must be one the gateway serves, and an `Origin`, when present, must be allowed.
struct RequestGuards: Sendable {
    let allowedHosts: Set<String>
    let allowedOrigins: Set<String>

    init(security: GatewayConfig.Security) {
        allowedHosts = Set(security.effectiveAllowedHosts.map { $0.lowercased() })
        allowedOrigins = Set(security.allowedOrigins.map { Self.normalizeOrigin($0) })
    }

    enum Refusal: Equatable {
        case host(String)
        case origin(String)

        var message: String {
            switch self {
            case .host(let host):
                return "Host '\(host)' is not served by this gateway; add it to spec.security.allowedHosts if it is yours"
            case .origin(let origin):
                return "Origin '\(origin)' is not allowed; add it to spec.security.allowedOrigins to let that web page call the gateway"
            }
        }
    }

    /// Returns why a request must be refused, or nil to let it pass.
    func check(host: String?, origin: String?) -> Refusal? {
        let hostName = host.map(Self.hostName) ?? ""
        if !allowedHosts.contains("*"), !allowedHosts.contains(hostName) {
            return .host(host ?? "")
        }
        guard let origin else { return nil }
        let normalized = Self.normalizeOrigin(origin)
        if allowedOrigins.contains("*") || allowedOrigins.contains(normalized) { return nil }
        // A page served from the gateway's own origin may call it.
        if let host, let originHost = normalized.split(separator: "/").last, originHost == host.lowercased() { return nil }
        return .origin(origin)
    }

    /// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`.
    static func hostName(_ authority: String) -> String {
        let lower = authority.lowercased()
        // Only what a host and port are made of: `127.0.0.1:1@evil.example`, whitespace or a
        // list of hosts are left whole, so they match no allowed name.
        guard lower.utf8.allSatisfy({ byte in
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2E || byte == 0x2D || byte == 0x3A
                || byte == 0x5B || byte == 0x5D || byte == 0x5F
        }) else { return lower }
        if lower.hasPrefix("[") {
            if let end = lower.firstIndex(of: "]") { return String(lower[...end]) }
            return lower
        }
        if let colon = lower.lastIndex(of: ":") { return String(lower[..<colon]) }
        return lower
    }

    static func normalizeOrigin(_ origin: String) -> String {
        var lower = origin.lowercased()
        while lower.hasSuffix("/") { lower.removeLast() }
        return lower
    }
}
