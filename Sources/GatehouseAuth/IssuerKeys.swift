import AsyncHTTPClient
import Foundation
import Logging
import MCPWire
import NIOCore
import Synchronization

/// The published keys of one external issuer: fetched once, reused, refetched when a token
/// names an unknown key id (at most once per `minRefresh`), refreshed in the background of a
/// request after `softLifetime`, and kept while the issuer is unreachable until `hardLifetime`
/// has passed since the last successful fetch — then tokens of that issuer fail closed.
final class IssuerKeys: Sendable {
    let issuer: String
    let configuredJWKSURL: String?
    let httpClient: HTTPClient
    let logger: Logger
    let minRefresh: TimeInterval
    let softLifetime: TimeInterval
    let hardLifetime: TimeInterval
    let now: @Sendable () -> Date

    struct State {
        var keys: [JWK] = []
        var fetchedAt: Date?
        var lastAttempt: Date?
        var jwksURL: String?
        var fetch: Task<Void, Never>?
    }

    let state = Mutex(State())

    init(issuer: String, jwksURL: String?, httpClient: HTTPClient, logger: Logger, minRefresh: TimeInterval, hardLifetime: TimeInterval,
         now: @escaping @Sendable () -> Date)
    {
        self.issuer = issuer
        self.configuredJWKSURL = jwksURL
        self.httpClient = httpClient
        self.logger = logger
        self.minRefresh = minRefresh
        self.hardLifetime = hardLifetime
        self.softLifetime = min(300, hardLifetime)
        self.now = now
    }

    /// The keys that may verify a token with this kid and algorithm.
    func candidates(kid: String?, algorithm: JWSAlgorithm) async throws(TokenError) -> [VerificationKey] {
        let (usable, stale, canRefetch) = state.withLock { state -> ([VerificationKey], Bool, Bool) in
            let current = now()
            let fresh = state.fetchedAt.map { now().timeIntervalSince($0) < hardLifetime } ?? false
            let keys = fresh ? Self.match(state.keys, kid: kid, algorithm: algorithm) : []
            let stale = state.fetchedAt.map { now().timeIntervalSince($0) >= softLifetime } ?? true
            let canRefetch = state.lastAttempt.map { current.timeIntervalSince($0) >= minRefresh } ?? true
            return (keys, stale, canRefetch)
        }
        if !usable.isEmpty {
            if stale, canRefetch { startFetch() }  // refresh behind the request; these keys still serve it
            return usable
        }
        let hadKeys = state.withLock { $0.fetchedAt != nil && now().timeIntervalSince($0.fetchedAt!) < hardLifetime }
        if canRefetch || !hadKeys {
            if canRefetch { await startFetch().value } else if let running = state.withLock({ $0.fetch }) { await running.value }
            let after = state.withLock { state -> ([VerificationKey], Bool) in
                let fresh = state.fetchedAt.map { now().timeIntervalSince($0) < hardLifetime } ?? false
                return (fresh ? Self.match(state.keys, kid: kid, algorithm: algorithm) : [], fresh)
            }
            if !after.0.isEmpty { return after.0 }
            if !after.1 { throw .issuerUnavailable }
        }
        throw .unknownKey
    }

    static func match(_ keys: [JWK], kid: String?, algorithm: JWSAlgorithm) -> [VerificationKey] {
        keys.filter { key in
            (kid == nil || key.kid == kid) && key.key.verifies(algorithm) && (key.algorithm == nil || key.algorithm == algorithm.rawValue)
        }.map(\.key)
    }

    /// Starts a fetch, or joins the one already running.
    @discardableResult
    func startFetch() -> Task<Void, Never> {
        state.withLock { state in
            if let running = state.fetch { return running }
            state.lastAttempt = now()
            let task = Task { await self.fetch() }
            state.fetch = task
            return task
        }
    }

    private func fetch() async {
        defer { state.withLock { $0.fetch = nil } }
        do {
            let url: String
            if let known = state.withLock({ $0.jwksURL }) ?? configuredJWKSURL {
                url = known
            } else {
                url = try await discoverJWKSURL()
                state.withLock { $0.jwksURL = url }
            }
            let body = try await get(url)
            guard let keys = JWK.parseSet(body.readableBytesView) else {
                logger.warning("the issuer's JWKS is not a JSON key set", metadata: ["issuer": "\(issuer)", "url": "\(url)"])
                return
            }
            state.withLock {
                $0.keys = keys
                $0.fetchedAt = now()
            }
            logger.debug("fetched issuer keys", metadata: ["issuer": "\(issuer)", "keys": "\(keys.count)"])
        } catch {
            logger.warning("cannot fetch the issuer's keys", metadata: ["issuer": "\(issuer)", "error": "\(error)"])
        }
    }

    /// OpenID Connect discovery first, then RFC 8414 metadata; the document must name this issuer.
    private func discoverJWKSURL() async throws -> String {
        var candidates = [issuer.hasSuffix("/") ? issuer + ".well-known/openid-configuration" : issuer + "/.well-known/openid-configuration"]
        if let url = URL(string: issuer), let host = url.host {
            let port = url.port.map { ":\($0)" } ?? ""
            let path = url.path == "/" ? "" : url.path
            candidates.append("\(url.scheme ?? "https")://\(host)\(port)/.well-known/oauth-authorization-server\(path)")
        }
        var lastError: any Error = StorageError("no metadata")
        for candidate in candidates {
            do {
                let body = try await get(candidate)
                guard let metadata = try JSONParser.parse(body.readableBytesView).objectValue, let jwks = metadata["jwks_uri"]?.stringValue else { continue }
                guard metadata["issuer"]?.stringValue == issuer else {
                    throw StorageError("the metadata at \(candidate) names another issuer")
                }
                return jwks
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private func get(_ url: String) async throws -> ByteBuffer {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let response = try await httpClient.execute(request, timeout: .seconds(5))
        guard response.status == .ok else { throw StorageError("\(url) answered \(response.status.code)") }
        return try await response.body.collect(upTo: 1 << 20)
    }
}
