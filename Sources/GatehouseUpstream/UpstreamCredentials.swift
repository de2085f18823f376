import AsyncHTTPClient
import Foundation
import GatehouseConfig
import Logging
import MCPWire
import NIOCore
import Synchronization

/// A bearer token for an upstream, obtained with OAuth client credentials from the upstream's
/// own authorization server: fetched on first use, shared by every request, refreshed before it
/// expires (at 80% of its lifetime, at most a minute early), and dropped when the upstream
/// answers 401. The gateway's clients never see it, and it never appears in logs.
public final class ClientCredentialsToken: Sendable {
    let config: ServerConfig.ClientCredentials
    let serverName: String
    let client: HTTPClient
    let logger: Logger

    struct State {
        var token: String?
        var refreshAt = Date.distantPast
        var fetch: Task<String, any Error>?
    }

    let state = Mutex(State())

    public init(config: ServerConfig.ClientCredentials, serverName: String, client: HTTPClient, logger: Logger) {
        self.config = config
        self.serverName = serverName
        self.client = client
        self.logger = logger
    }

    public func bearer() async throws -> String {
        let task: Task<String, any Error> = state.withLock { state in
            if let token = state.token, Date() < state.refreshAt {
                return Task { token }
            }
            if let running = state.fetch { return running }
            let fetch = Task { try await self.fetch() }
            state.fetch = fetch
            return fetch
        }
        return try await task.value
    }

    /// Forgets the token (the upstream refused it).
    public func invalidate() { state.withLock { $0.token = nil } }

    private func fetch() async throws -> String {
        defer { state.withLock { $0.fetch = nil } }
        var request = HTTPClientRequest(url: config.tokenURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        let basic = Data("\(FormURLEncoding.encode(config.clientID)):\(FormURLEncoding.encode(config.clientSecret.value))".utf8).base64EncodedString()
        request.headers.add(name: "Authorization", value: "Basic \(basic)")
        var form = "grant_type=client_credentials"
        if !config.scopes.isEmpty { form += "&scope=" + FormURLEncoding.encode(config.scopes.joined(separator: " ")) }
        if let resource = config.resource { form += "&resource=" + FormURLEncoding.encode(resource) }
        request.body = .bytes(ByteBuffer(string: form))
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await client.execute(request, timeout: .seconds(10))
            body = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw UpstreamError(upstream: serverName, kind: .unavailable, detail: "cannot reach its token endpoint for client credentials")
        }
        guard response.status == .ok, let object = try? JSONParser.parse(body.readableBytesView).objectValue,
              let token = object["access_token"]?.stringValue
        else {
            // The error code helps the operator; the body may echo secrets, so only `error` is logged.
            let error = (try? JSONParser.parse(body.readableBytesView))?["error"]?.stringValue ?? "no access_token"
            logger.error("upstream token request refused", metadata: ["server": "\(serverName)", "status": "\(response.status.code)", "error": "\(error)"])
            throw UpstreamError(upstream: serverName, kind: .unavailable, detail: "its token endpoint refused the gateway's client credentials (\(error))")
        }
        let lifetime = object["expires_in"]?.doubleValue ?? 300
        let early = min(60, lifetime * 0.2)
        state.withLock {
            $0.token = token
            $0.refreshAt = Date().addingTimeInterval(max(1, lifetime - early))
        }
        logger.debug("obtained an upstream token", metadata: ["server": "\(serverName)", "expires_in": "\(Int(lifetime))"])
        return token
    }

}
