import AsyncHTTPClient
import Foundation
import GatehouseConfig
import Logging
import MCPWire
import NIOCore
import Synchronization

/// The OAuth 2.1 resource server: turns a bearer credential into an `Identity`, or says why not.
///
/// Accepts JWT access tokens of trusted issuers (and of the embedded authorization server),
/// opaque tokens through RFC 7662 introspection, and Gatehouse API keys (`ghk_...`). A validated
/// credential is cached by its SHA-256 for at most `cacheSeconds` (never past its expiry), so
/// the hot path verifies no signature; that is also the bound on how late a revocation bites.
public final class Authenticator: Sendable {
    public static let apiKeyPrefix = "ghk_"

    let config: Auth
    /// The embedded authorization server's issuer, when it runs.
    let localIssuer: String?
    let keyRing: KeyRing?
    let store: AuthStore?
    let external: [String: (config: Auth.Issuer, keys: IssuerKeys)]
    let httpClient: HTTPClient
    let logger: Logger
    let now: @Sendable () -> Date
    let cache = Mutex<[String: CacheEntry]>([:])
    static let maxCacheEntries = 50_000

    struct CacheEntry: Sendable {
        var identity: Identity
        /// Nil: valid for every endpoint (API keys, issuers with configured audiences).
        var audiences: [String]?
        var expiresAt: Date
    }

    public init(config: Auth, localIssuer: String?, keyRing: KeyRing?, store: AuthStore?, httpClient: HTTPClient, logger: Logger,
                now: @escaping @Sendable () -> Date = { Date() })
    {
        self.config = config
        self.localIssuer = localIssuer
        self.keyRing = keyRing
        self.store = store
        self.httpClient = httpClient
        self.logger = logger
        self.now = now
        var external: [String: (Auth.Issuer, IssuerKeys)] = [:]
        for issuer in config.issuers {
            external[issuer.issuer] = (issuer, IssuerKeys(issuer: issuer.issuer, jwksURL: issuer.jwksURL, httpClient: httpClient, logger: logger,
                                                          minRefresh: config.jwksMinRefreshSeconds,
                                                          hardLifetime: TimeInterval(config.jwksCacheSeconds), now: now))
        }
        self.external = external
    }

    /// Validates a bearer credential for one resource (the endpoint's URL).
    public func authenticate(_ token: String, resource: String) async -> Result<Identity, TokenError> {
        guard !token.isEmpty, token.utf8.count <= JWT.maxLength else { return .failure(.malformed("empty or longer than \(JWT.maxLength) bytes")) }
        let key = AuthCrypto.hash(token)
        let current = now()
        if let entry = cache.withLock({ $0[key] }), entry.expiresAt > current {
            guard entry.audiences.map({ $0.contains(resource) }) ?? true else { return .failure(.wrongAudience) }
            return .success(entry.identity)
        }
        let result: Result<CacheEntry, TokenError>
        if token.hasPrefix(Self.apiKeyPrefix), config.apiKeys, store != nil {
            result = await apiKey(token, hash: key)
        } else if JWT.looksLikeJWT(token) {
            result = await jwt(token)
        } else if let issuer = config.issuers.first(where: { $0.introspection != nil }) {
            result = await introspect(token, issuer: issuer)
        } else {
            result = .failure(.malformed("not a JWT"))
        }
        switch result {
        case .success(let entry):
            remember(key, entry)
            guard entry.audiences.map({ $0.contains(resource) }) ?? true else { return .failure(.wrongAudience) }
            return .success(entry.identity)
        case .failure(let error):
            return .failure(error)
        }
    }

    private func remember(_ key: String, _ entry: CacheEntry) {
        cache.withLock { cache in
            if cache.count >= Self.maxCacheEntries {
                let current = now()
                cache = cache.filter { $0.value.expiresAt > current }
                if cache.count >= Self.maxCacheEntries { cache.removeAll(keepingCapacity: true) }
            }
            cache[key] = entry
        }
    }

    private func cacheUntil(_ expiry: Date?) -> Date {
        let bound = now().addingTimeInterval(TimeInterval(config.cacheSeconds))
        guard let expiry else { return bound }
        return min(bound, expiry)
    }

    // MARK: API keys

    private func apiKey(_ token: String, hash: String) async -> Result<CacheEntry, TokenError> {
        guard let store else { return .failure(.malformed("API keys are not enabled")) }
        let record: AuthStore.APIKeyRecord?
        do {
            record = try await store.apiKey(hash: hash)
        } catch {
            logger.error("API key lookup failed", metadata: ["error": "\(error)"])
            return .failure(.issuerUnavailable)
        }
        guard let record else { return .failure(.inactive) }
        if record.revokedAt != nil { return .failure(.revoked) }
        let expiry = record.expiresAt.map { Date(timeIntervalSince1970: TimeInterval($0)) }
        if let expiry, expiry <= now() { return .failure(.expired) }
        let identity = Identity(kind: .machine, subject: "apikey:\(record.id)", issuer: "gatehouse:api-keys", clientID: record.name,
                                scopes: record.scopes, claims: ["key_id": .string(record.id), "name": .string(record.name), "owner": .string(record.owner)],
                                source: .apiKey)
        return .success(CacheEntry(identity: identity, audiences: nil, expiresAt: cacheUntil(expiry)))
    }

    // MARK: JWT

    private func jwt(_ token: String) async -> Result<CacheEntry, TokenError> {
        let jwt: JWT
        do { jwt = try JWT.decode(token) } catch { return .failure(error) }
        guard let alg = jwt.algorithm else { return .failure(.malformed("the header has no alg")) }
        guard let algorithm = JWSAlgorithm(rawValue: alg) else { return .failure(.unsupportedAlgorithm(alg)) }
        guard let issuer = jwt.issuer else { return .failure(.missingClaim("iss")) }
        let keys: [VerificationKey]
        let audiences: [String]?
        if issuer == localIssuer, let keyRing {
            guard algorithm == .es256, let kid = jwt.keyID else { return .failure(.unsupportedAlgorithm(alg)) }
            guard let key = await keyRing.verificationKey(kid: kid) else { return .failure(.unknownKey) }
            keys = [.p256(key)]
            audiences = []
        } else if let trusted = external[issuer] {
            guard trusted.config.algorithms.contains(algorithm.rawValue) else { return .failure(.unsupportedAlgorithm(alg)) }
            do { keys = try await trusted.keys.candidates(kid: jwt.keyID, algorithm: algorithm) } catch { return .failure(error) }
            audiences = trusted.config.audiences.isEmpty ? [] : trusted.config.audiences
        } else {
            return .failure(.untrustedIssuer)
        }
        guard keys.contains(where: { $0.isValid(signature: jwt.signature, for: jwt.signingInput, algorithm: algorithm) }) else {
            return .failure(.badSignature)
        }
        let claims = jwt.claims
        let skew = TimeInterval(config.clockSkewSeconds)
        let current = now().timeIntervalSince1970
        guard let exp = claims["exp"]?.doubleValue else { return .failure(.missingClaim("exp")) }
        if exp + skew <= current { return .failure(.expired) }
        if let nbf = claims["nbf"]?.doubleValue, nbf - skew > current { return .failure(.notYetValid) }
        let tokenAudiences: [String]
        if let aud = claims["aud"]?.stringValue {
            tokenAudiences = [aud]
        } else {
            tokenAudiences = claims["aud"]?.arrayValue?.compactMap(\.stringValue) ?? []
        }
        if tokenAudiences.isEmpty { return .failure(.missingClaim("aud")) }
        // Configured audiences: any of them makes the token good for every endpoint. Otherwise
        // the token must name the endpoint's resource URL (checked per request).
        var endpointAudiences: [String]? = tokenAudiences
        if let configured = audiences, !configured.isEmpty {
            guard tokenAudiences.contains(where: configured.contains) else { return .failure(.wrongAudience) }
            endpointAudiences = nil
        }
        if issuer == localIssuer, let store {
            guard let gid = claims["gid"]?.stringValue else { return .failure(.missingClaim("gid")) }
            do {
                guard let grant = try await store.grant(gid), grant.revokedAt == nil else { return .failure(.revoked) }
            } catch {
                logger.error("grant lookup failed", metadata: ["error": "\(error)"])
                return .failure(.issuerUnavailable)
            }
        }
        var identity = Identity.fromClaims(claims, issuer: issuer, source: .jwt)
        if issuer == localIssuer, claims["gty"]?.stringValue != "client_credentials" { identity.kind = .user }
        return .success(CacheEntry(identity: identity, audiences: endpointAudiences, expiresAt: cacheUntil(Date(timeIntervalSince1970: exp + skew))))
    }

    // MARK: Introspection (RFC 7662)

    private func introspect(_ token: String, issuer: Auth.Issuer) async -> Result<CacheEntry, TokenError> {
        guard let introspection = issuer.introspection else { return .failure(.malformed("not a JWT")) }
        var request = HTTPClientRequest(url: introspection.url)
        request.method = .POST
        let credentials = Data("\(FormURLEncoding.encode(introspection.clientID)):\(FormURLEncoding.encode(introspection.clientSecret.value))".utf8).base64EncodedString()
        request.headers.add(name: "Authorization", value: "Basic \(credentials)")
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        request.body = .bytes(ByteBuffer(string: "token=\(FormURLEncoding.encode(token))&token_type_hint=access_token"))
        let claims: JSONObject
        do {
            let response = try await httpClient.execute(request, timeout: .seconds(5))
            guard response.status == .ok else {
                logger.warning("introspection failed", metadata: ["issuer": "\(issuer.issuer)", "status": "\(response.status.code)"])
                return .failure(.issuerUnavailable)
            }
            let body = try await response.body.collect(upTo: 1 << 20)
            guard let object = try JSONParser.parse(body.readableBytesView).objectValue else { return .failure(.issuerUnavailable) }
            claims = object
        } catch {
            logger.warning("introspection failed", metadata: ["issuer": "\(issuer.issuer)", "error": "\(error)"])
            return .failure(.issuerUnavailable)
        }
        guard claims["active"]?.boolValue == true else { return .failure(.inactive) }
        if let iss = claims["iss"]?.stringValue, iss != issuer.issuer { return .failure(.untrustedIssuer) }
        let exp = claims["exp"]?.doubleValue
        if let exp, exp <= now().timeIntervalSince1970 { return .failure(.expired) }
        var tokenAudiences = claims["aud"]?.stringValue.map { [$0] } ?? claims["aud"]?.arrayValue?.compactMap(\.stringValue) ?? []
        var endpointAudiences: [String]? = tokenAudiences
        if !issuer.audiences.isEmpty {
            guard tokenAudiences.contains(where: issuer.audiences.contains) else { return .failure(.wrongAudience) }
            endpointAudiences = nil
        } else if tokenAudiences.isEmpty {
            tokenAudiences = []
            return .failure(.missingClaim("aud"))
        }
        let identity = Identity.fromClaims(claims, issuer: issuer.issuer, source: .introspection)
        // Opaque tokens are cached more briefly: at most 10 seconds.
        let bound = min(cacheUntil(exp.map { Date(timeIntervalSince1970: $0) }), now().addingTimeInterval(10))
        return .success(CacheEntry(identity: identity, audiences: endpointAudiences, expiresAt: bound))
    }

}
