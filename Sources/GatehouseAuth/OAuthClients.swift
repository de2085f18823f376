import AsyncHTTPClient
import Foundation
import GatehouseConfig
import Logging
import MCPWire
import NIOCore
import Synchronization

/// A client of the embedded authorization server, however it became known.
public struct OAuthClient: Sendable {
    public enum Origin: String, Sendable { case configured, registered, metadataDocument }
    public var id: String
    public var name: String?
    /// Nil for public clients. For configured clients, the SHA-256 of the secret.
    public var secretHash: String?
    public var redirectURIs: [String]
    /// The grants it may use, as decided when it was looked up: a self-registered or metadata
    /// document client never gets more than `OAuthClients.selfServiceGrants`.
    public var grantTypes: [String]
    /// The scopes it may be granted (explicit: never "empty means any").
    public var scopes: [String]
    public var origin: Origin

    public var isConfidential: Bool { secretHash != nil }
}

/// Finds clients: configured ones, dynamically registered ones (in the store), and Client ID
/// Metadata Documents fetched from their URL — with SSRF guards.
final class OAuthClients: Sendable {
    /// The grants a client may get without the operator's approval (self-registered without
    /// the initial access token, or a metadata document): acting for a signed-in user only.
    static let selfServiceGrants = ["authorization_code", "refresh_token"]
    /// Marks, in a registered client's stored metadata, that it was registered with the
    /// operator's initial access token. Written by the server only, never taken from a request.
    static let approvedMarker = "gatehouse_registered_with_initial_access_token"

    let configured: [String: OAuthClient]
    let registration: Auth.Registration
    /// The scopes the authorization server offers: the ceiling of every client's scopes.
    let offeredScopes: [String]
    let store: AuthStore
    let fetcher: HTTPClient
    let logger: Logger
    let documents = Mutex<[String: (client: OAuthClient, fetched: Date)]>([:])

    init(config: Auth.AuthorizationServer, store: AuthStore, fetcher: HTTPClient, logger: Logger) {
        var configured: [String: OAuthClient] = [:]
        for client in config.clients {
            // A configured client without `scopes` may get every offered scope (the operator's choice).
            let scopes = client.scopes.isEmpty ? config.scopes : client.scopes.filter(config.scopes.contains)
            configured[client.clientID] = OAuthClient(id: client.clientID, name: client.name, secretHash: client.clientSecret.map { AuthCrypto.hash($0.value) },
                                                      redirectURIs: client.redirectURIs, grantTypes: client.grantTypes, scopes: scopes, origin: .configured)
        }
        self.configured = configured
        self.registration = config.registration
        self.offeredScopes = config.scopes
        self.store = store
        self.fetcher = fetcher
        self.logger = logger
    }

    enum LookupError: Error, CustomStringConvertible {
        case unknown
        case metadata(String)
        var description: String {
            switch self {
            case .unknown: "unknown client_id"
            case .metadata(let why): "the client metadata document cannot be used: \(why)"
            }
        }
    }

    static func isMetadataURL(_ id: String) -> Bool { id.hasPrefix("https://") || id.hasPrefix("http://") }

    /// The scopes a registered or metadata-document client may get: those it declared (each
    /// offered), or every offered scope when it declared none. It only ever acts for a user who
    /// signs in and sees the scope on the consent page.
    func scopes(declared: String?) -> [String] {
        let wanted = declared?.split(separator: " ").map(String.init) ?? []
        return wanted.isEmpty ? offeredScopes : wanted.filter(offeredScopes.contains)
    }

    func client(_ id: String) async throws(LookupError) -> OAuthClient {
        if let client = configured[id] { return client }
        if Self.isMetadataURL(id) {
            guard registration.clientMetadataDocuments else { throw .metadata("client metadata documents are disabled here") }
            return try await metadataDocument(id)
        }
        guard let record = try? await store.client(id), let metadata = try? JSONParser.parse(record.metadata).objectValue else { throw .unknown }
        let declared = metadata["grant_types"]?.arrayValue?.compactMap(\.stringValue) ?? Self.selfServiceGrants
        // Only a registration that presented the operator's initial access token keeps grants
        // beyond the self-service ones (rows registered anonymously by older versions included).
        let approved = metadata[Self.approvedMarker]?.boolValue == true
        return OAuthClient(id: record.clientID, name: metadata["client_name"]?.stringValue, secretHash: record.secretHash,
                           redirectURIs: metadata["redirect_uris"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                           grantTypes: approved ? declared : declared.filter(Self.selfServiceGrants.contains),
                           scopes: scopes(declared: metadata["scope"]?.stringValue), origin: .registered)
    }

    // MARK: Client ID Metadata Documents

    private func metadataDocument(_ url: String) async throws(LookupError) -> OAuthClient {
        if let cached = documents.withLock({ $0[url] }), Date().timeIntervalSince(cached.fetched) < 300 { return cached.client }
        let target = try checkTarget(url)
        let body = try await fetch(url, pinned: target)
        guard let document = (try? JSONParser.parse(body.readableBytesView, maxDepth: 8))?.objectValue else { throw .metadata("it is not a JSON object") }
        guard document["client_id"]?.stringValue == url else { throw .metadata("its client_id is not its own URL") }
        let redirects = document["redirect_uris"]?.arrayValue?.compactMap(\.stringValue) ?? []
        guard !redirects.isEmpty else { throw .metadata("it lists no redirect_uris") }
        for uri in redirects {
            if let problem = AuthorizationServer.redirectProblem(uri) { throw .metadata("redirect URI \(uri): \(problem)") }
        }
        let method = document["token_endpoint_auth_method"]?.stringValue ?? "none"
        guard method == "none" else { throw .metadata("token_endpoint_auth_method '\(method)' is not supported for metadata documents (use none)") }
        // A metadata document is public and unapproved: authorization code (with refresh) only.
        let grants = document["grant_types"]?.arrayValue?.compactMap(\.stringValue) ?? Self.selfServiceGrants
        let client = OAuthClient(id: url, name: document["client_name"]?.stringValue, secretHash: nil, redirectURIs: redirects,
                                 grantTypes: grants.filter(Self.selfServiceGrants.contains),
                                 scopes: scopes(declared: document["scope"]?.stringValue), origin: .metadataDocument)
        documents.withLock { cache in
            if cache.count > 1000 { cache.removeAll() }
            cache[url] = (client, Date())
        }
        return client
    }

    /// Where a checked URL is fetched from: its host name and the address that passed the check.
    struct PinnedTarget: Equatable {
        var host: String
        var address: String
    }

    /// HTTPS only, a path, no credentials or fragment; never loopback, private, link-local or
    /// otherwise internal addresses (checked on every address the name resolves to). Returns
    /// the address to connect to, so the fetch cannot resolve the name again to another address
    /// (DNS rebinding); nil with `allowPrivateAddresses` (tests: the shared client resolves).
    func checkTarget(_ text: String) throws(LookupError) -> PinnedTarget? {
        guard let url = URLComponents(string: text), let host = url.host, !host.isEmpty else { throw .metadata("it is not a URL") }
        if registration.allowPrivateAddresses {
            guard ["https", "http"].contains(url.scheme ?? "") else { throw .metadata("only https URLs are fetched") }
            return nil
        }
        guard url.scheme == "https" else { throw .metadata("only https URLs are fetched") }
        guard url.user == nil, url.password == nil, url.fragment == nil else { throw .metadata("the URL must not carry credentials or a fragment") }
        guard !url.path.isEmpty, url.path != "/" else { throw .metadata("the URL must have a path") }
        let addresses = NetworkAddress.resolve(host)
        guard let first = addresses.first else { throw .metadata("its host does not resolve") }
        if let blocked = addresses.first(where: NetworkAddress.isInternal) {
            throw .metadata("its host resolves to an internal address (\(blocked))")
        }
        return PinnedTarget(host: host, address: first)
    }

    /// GET with a 5 s timeout, a 64 KB cap and no redirects. A pinned target is fetched through
    /// a one-off client whose DNS override sends the connection to the checked address while
    /// TLS still sends the host name (SNI) and verifies the certificate for it. Fetches are rare
    /// (each document is cached for five minutes), so a client per fetch costs little.
    func fetch(_ url: String, pinned: PinnedTarget?) async throws(LookupError) -> ByteBuffer {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let client: HTTPClient
        if let pinned {
            var configuration = HTTPClient.Configuration()
            configuration.redirectConfiguration = .disallow
            configuration.timeout.connect = .seconds(5)
            configuration.dnsOverride = [pinned.host: pinned.address]
            client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        } else {
            client = fetcher
        }
        let outcome: Result<ByteBuffer, LookupError>
        do {
            let response = try await client.execute(request, timeout: .seconds(5))
            if response.status == .ok {
                outcome = .success(try await response.body.collect(upTo: 64 * 1024))
            } else {
                outcome = .failure(.metadata("\(url) answered HTTP \(response.status.code)"))
            }
        } catch {
            outcome = .failure(.metadata("cannot fetch \(url) (\(error is NIOTooManyBytesError ? "larger than 64 KB" : "unreachable or too slow"))"))
        }
        if pinned != nil { try? await client.shutdown() }
        return try outcome.get()
    }
}
