import MCPWire

/// Who is calling, as the policy layer sees it. Filled in by authentication; anonymous on
/// endpoints with `auth.mode: off`.
public struct Identity: Sendable {
    public enum Kind: String, Sendable { case anonymous, user, machine }
    /// How the caller proved who it is.
    public enum Source: String, Sendable { case anonymous, jwt, introspection, apiKey = "api_key", clientCertificate = "client_certificate" }

    public var kind: Kind
    public var subject: String
    public var issuer: String?
    public var clientID: String?
    public var scopes: [String]
    public var groups: [String]
    public var roles: [String]
    /// The token's claims as received (empty for API keys and anonymous callers).
    public var claims: JSONObject
    public var source: Source

    public init(kind: Kind, subject: String, issuer: String? = nil, clientID: String? = nil, scopes: [String] = [], groups: [String] = [],
                roles: [String] = [], claims: JSONObject = [:], source: Source)
    {
        self.kind = kind
        self.subject = subject
        self.issuer = issuer
        self.clientID = clientID
        self.scopes = scopes
        self.groups = groups
        self.roles = roles
        self.claims = claims
        self.source = source
    }

    public static let anonymous = Identity(kind: .anonymous, subject: "anonymous", source: .anonymous)

    /// The stable key of this caller: upstream channels are pooled by it and sessions are bound
    /// to it (a refreshed token with new scopes is still the same caller).
    public var channelKey: String { "\(kind.rawValue):\(issuer ?? "")|\(subject)" }

    public func hasScopes(_ required: [String]) -> Bool { required.allSatisfy(scopes.contains) }

    /// Builds an identity from validated JWT or introspection claims.
    static func fromClaims(_ claims: JSONObject, issuer: String, source: Source) -> Identity {
        let subject = claims["sub"]?.stringValue ?? claims["client_id"]?.stringValue ?? "unknown"
        let clientID = claims["client_id"]?.stringValue ?? claims["azp"]?.stringValue ?? claims["cid"]?.stringValue
        var scopes: [String] = []
        if let scope = claims["scope"]?.stringValue { scopes = scope.split(separator: " ").map(String.init) }
        if let scp = claims["scp"] {
            if let list = scp.arrayValue { scopes += list.compactMap(\.stringValue) } else if let s = scp.stringValue { scopes += s.split(separator: " ").map(String.init) }
        }
        func strings(_ value: JSONValue?) -> [String] { value?.arrayValue?.compactMap(\.stringValue) ?? [] }
        let groups = strings(claims["groups"])
        let roles = strings(claims["roles"]) + strings(claims["realm_access"]?["roles"])
        let machine = claims["gty"]?.stringValue == "client_credentials" || (clientID != nil && clientID == claims["sub"]?.stringValue)
        return Identity(kind: machine ? .machine : .user, subject: subject, issuer: issuer, clientID: clientID, scopes: scopes,
                        groups: groups, roles: roles, claims: claims, source: source)
    }
}
