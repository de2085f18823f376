import Foundation
import GatehouseAuth
import GatehouseConfig
import MCPWire

/// Who is asking, as the policy layer sees a request: the identity from authentication plus
/// the facts of the HTTP request.
struct Caller: Sendable {
    var identity: Identity
    /// The client IP (after `X-Forwarded-For` from trusted proxies).
    var clientIP: String?
    /// Lowercased names; never `authorization` or `cookie`.
    var headers: [String: String]
    var endpoint: String
    /// W3C trace context from the HTTP headers and when authentication ran (tracing only).
    var trace: TraceFacts?

    static let hiddenHeaders: Set<String> = ["authorization", "cookie", "proxy-authorization"]

    var summary: GatehouseAuthIdentitySummary {
        GatehouseAuthIdentitySummary(kind: identity.kind.rawValue, subject: identity.subject, issuer: identity.issuer, clientID: identity.clientID)
    }
}

/// The three-phase pipeline for rules not worth a Rego module.
///
/// 1. Analysis: reports about the request — the client IP classified (version, loopback,
///    private), the user agent split into product and version, the identity's claims.
///    Pure functions of the request, so they run inline (microseconds); an analysis that cannot
///    make sense of its input leaves its report empty.
/// 2. Match: each named matcher returns a verdict from the reports.
/// 3. Decide: the configured boolean expression over the verdicts. Names were checked at
///    startup; a verdict that cannot be computed makes the expression deny.
struct MatchPipeline: Sendable {
    let config: PolicyConfig.Pipeline

    struct Analysis: Sendable {
        var clientIP: [UInt8]?
        var clientIPText: String?
        var userAgent: String?

        var json: JSONValue {
            var object = JSONObject()
            if let text = clientIPText, let bytes = clientIP {
                object["client_ip"] = [
                    "address": .string(text), "version": .int(bytes.count == 4 ? 4 : 6),
                    "loopback": .bool(MatchPipeline.isLoopback(bytes)), "private": .bool(NetworkAddress.isInternal(text)),
                ]
            }
            if let agent = userAgent {
                let product = agent.split(separator: " ").first.map(String.init) ?? agent
                let parts = product.split(separator: "/", maxSplits: 1)
                object["user_agent"] = ["raw": .string(agent), "product": .string(parts.first.map(String.init) ?? ""),
                                        "version": .string(parts.count > 1 ? String(parts[1]) : "")]
            }
            return .object(object)
        }
    }

    static func isLoopback(_ bytes: [UInt8]) -> Bool {
        bytes.count == 4 ? bytes[0] == 127 : bytes == Array(repeating: 0, count: 15) + [1]
    }

    static func analyze(_ caller: Caller) -> Analysis {
        Analysis(clientIP: caller.clientIP.flatMap(CIDR.parseAddress), clientIPText: caller.clientIP, userAgent: caller.headers["user-agent"])
    }

    func verdicts(_ caller: Caller, analysis: Analysis) -> [String: Bool] {
        var verdicts: [String: Bool] = [:]
        for matcher in config.matchers {
            switch matcher.kind {
            case .clientIP(let ranges):
                if let ip = analysis.clientIP { verdicts[matcher.name] = ranges.contains { $0.contains(ip) } }
            case .header(let name, let values):
                let value = caller.headers[name]
                verdicts[matcher.name] = value.map { v in values.contains("*") || values.contains { $0.caseInsensitiveCompare(v) == .orderedSame } } ?? false
            case .claim(let name, let values):
                verdicts[matcher.name] = Self.claimValues(caller.identity, name).contains { values.contains($0) }
            case .userAgent(let needles):
                let agent = (analysis.userAgent ?? "").lowercased()
                verdicts[matcher.name] = needles.contains { agent.contains($0.lowercased()) }
            }
        }
        return verdicts
    }

    static func claimValues(_ identity: Identity, _ name: String) -> [String] {
        switch name {
        case "subject", "sub": return [identity.subject]
        case "kind": return [identity.kind.rawValue]
        case "scopes", "scope": return identity.scopes
        case "groups": return identity.groups
        case "roles": return identity.roles
        case "client_id": return identity.clientID.map { [$0] } ?? []
        case "issuer", "iss": return identity.issuer.map { [$0] } ?? []
        default:
            switch identity.claims[name] {
            case .string(let s)?: return [s]
            case .array(let items)?: return items.compactMap(\.stringValue)
            case .bool(let b)?: return [String(b)]
            case .number(let n)?: return [n]
            default: return []
            }
        }
    }

    /// Allow or deny, with the verdicts for the decision log.
    func decide(_ caller: Caller) -> (allow: Bool, verdicts: [String: Bool], analysis: Analysis) {
        let analysis = Self.analyze(caller)
        let verdicts = verdicts(caller, analysis: analysis)
        return (config.expression.evaluate(verdicts) ?? false, verdicts, analysis)
    }

    /// The client IP: the peer, or — when the peer is a trusted proxy — the last address in
    /// `X-Forwarded-For` that is not itself a trusted proxy.
    static func clientIP(peer: String?, forwardedFor: String?, trusted: [CIDR]) -> String? {
        guard let peer else { return nil }
        guard !trusted.isEmpty, let peerBytes = CIDR.parseAddress(peer), trusted.contains(where: { $0.contains(peerBytes) }),
              let forwardedFor
        else { return peer }
        let hops = forwardedFor.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() {
            guard let bytes = CIDR.parseAddress(hop) else { return peer }
            if !trusted.contains(where: { $0.contains(bytes) }) { return hop }
        }
        return hops.first ?? peer
    }
}
