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
    public var grantTypes: [String]
    /// Allowed scopes; empty means any the server offers.
    public var scopes: [String]
    public var origin: Origin

    public var isConfidential: Bool { secretHash != nil }
}

/// Finds clients: configured ones, dynamically registered ones (in the store), and Client ID
/// Metadata Documents fetched from their URL — with SSRF guards.
final class OAuthClients: Sendable {
    let configured: [String: OAuthClient]
    let registration: Auth.Registration
    let store: AuthStore
    let fetcher: HTTPClient
    let logger: Logger
    let documents = Mutex<[String: (client: OAuthClient, fetched: Date)]>([:])

    init(config: Auth.AuthorizationServer, store: AuthStore, fetcher: HTTPClient, logger: Logger) {
        var configured: [String: OAuthClient] = [:]
        for client in config.clients {
            configured[client.clientID] = OAuthClient(id: client.clientID, name: client.name, secretHash: client.clientSecret.map { AuthCrypto.hash($0.value) },
                                                      redirectURIs: client.redirectURIs, grantTypes: client.grantTypes, scopes: client.scopes, origin: .configured)
        }
        self.configured = configured
        self.registration = config.registration
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

    func client(_ id: String) async throws(LookupError) -> OAuthClient {
        if let client = configured[id] { return client }
        if Self.isMetadataURL(id) {
            guard registration.clientMetadataDocuments else { throw .metadata("client metadata documents are disabled here") }
            return try await metadataDocument(id)
        }
        guard let record = try? await store.client(id), let metadata = try? JSONParser.parse(record.metadata).objectValue else { throw .unknown }
        return OAuthClient(id: record.clientID, name: metadata["client_name"]?.stringValue, secretHash: record.secretHash,
                           redirectURIs: metadata["redirect_uris"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                           grantTypes: metadata["grant_types"]?.arrayValue?.compactMap(\.stringValue) ?? ["authorization_code", "refresh_token"],
                           scopes: metadata["scope"]?.stringValue?.split(separator: " ").map(String.init) ?? [], origin: .registered)
    }

    // MARK: Client ID Metadata Documents

    private func metadataDocument(_ url: String) async throws(LookupError) -> OAuthClient {
        if let cached = documents.withLock({ $0[url] }), Date().timeIntervalSince(cached.fetched) < 300 { return cached.client }
        try checkTarget(url)
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let body: ByteBuffer
        do {
            let response = try await fetcher.execute(request, timeout: .seconds(5))
            guard response.status == .ok else { throw LookupError.metadata("\(url) answered HTTP \(response.status.code)") }
            body = try await response.body.collect(upTo: 64 * 1024)
        } catch let error as LookupError {
            throw error
        } catch {
            throw .metadata("cannot fetch \(url) (\(error is NIOTooManyBytesError ? "larger than 64 KB" : "unreachable or too slow"))")
        }
        guard let document = (try? JSONParser.parse(body.readableBytesView, maxDepth: 8))?.objectValue else { throw .metadata("it is not a JSON object") }
        guard document["client_id"]?.stringValue == url else { throw .metadata("its client_id is not its own URL") }
        let redirects = document["redirect_uris"]?.arrayValue?.compactMap(\.stringValue) ?? []
        guard !redirects.isEmpty else { throw .metadata("it lists no redirect_uris") }
        let method = document["token_endpoint_auth_method"]?.stringValue ?? "none"
        guard method == "none" else { throw .metadata("token_endpoint_auth_method '\(method)' is not supported for metadata documents (use none)") }
        let client = OAuthClient(id: url, name: document["client_name"]?.stringValue, secretHash: nil, redirectURIs: redirects,
                                 grantTypes: document["grant_types"]?.arrayValue?.compactMap(\.stringValue) ?? ["authorization_code", "refresh_token"],
                                 scopes: document["scope"]?.stringValue?.split(separator: " ").map(String.init) ?? [], origin: .metadataDocument)
        documents.withLock { cache in
            if cache.count > 1000 { cache.removeAll() }
            cache[url] = (client, Date())
        }
        return client
    }

    /// HTTPS only, a path, no credentials or fragment; never loopback, private, link-local or
    /// otherwise internal addresses (checked on every address the name resolves to).
    func checkTarget(_ text: String) throws(LookupError) {
        guard let url = URLComponents(string: text), let host = url.host, !host.isEmpty else { throw .metadata("it is not a URL") }
        if registration.allowPrivateAddresses {
            guard ["https", "http"].contains(url.scheme ?? "") else { throw .metadata("only https URLs are fetched") }
            return
        }
        guard url.scheme == "https" else { throw .metadata("only https URLs are fetched") }
        guard url.user == nil, url.password == nil, url.fragment == nil else { throw .metadata("the URL must not carry credentials or a fragment") }
        guard !url.path.isEmpty, url.path != "/" else { throw .metadata("the URL must have a path") }
        let addresses = NetworkAddress.resolve(host)
        guard !addresses.isEmpty else { throw .metadata("its host does not resolve") }
        if let blocked = addresses.first(where: NetworkAddress.isInternal) {
            throw .metadata("its host resolves to an internal address (\(blocked))")
        }
    }
}

/// Address checks for outbound fetches the caller controls (SSRF defence).
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
                addresses.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            cursor = info.pointee.ai_next
        }
        return addresses
    }

    /// Loopback, private (RFC 1918, ULA), link-local, CGNAT, unspecified, multicast and the
    /// IPv4-mapped forms of those.
    public static func isInternal(_ address: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            let b = withUnsafeBytes(of: v4) { Array($0) }
            return isInternalV4(b)
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return true }
        let b = withUnsafeBytes(of: v6) { Array($0) }
        if b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xff, b[11] == 0xff { return isInternalV4(Array(b[12..<16])) }
        if b[0..<15].allSatisfy({ $0 == 0 }) { return true }  // :: and ::1
        if b[0] == 0xfe, b[1] & 0xc0 == 0x80 { return true }  // fe80::/10 link-local
        if b[0] & 0xfe == 0xfc { return true }  // fc00::/7 unique local
        if b[0] == 0xff { return true }  // multicast
        if b[0] == 0x20, b[1] == 0x01, b[2] == 0x0d, b[3] == 0xb8 { return true }  // documentation
        return false
    }

    static func isInternalV4(_ b: [UInt8]) -> Bool {
        switch (b[0], b[1]) {
        case (0, _), (10, _), (127, _): return true
        case (169, 254): return true
        case (172, 16...31): return true
        case (192, 168): return true
        case (100, 64...127): return true
        case (224...255, _): return true
        default: return b[0] == 192 && b[1] == 0 && b[2] == 0
        }
    }
}
