import AsyncHTTPClient
import Foundation
import GatehouseAuth
import GatehouseConfig
import HTTPTypes
import Hummingbird
import Logging
import MCPWire
import NIOCore

/// Authentication assembled from `spec.auth`: the store, the embedded authorization server's
/// keys and endpoints, the resource server, and the metadata documents clients discover.
struct GatewayAuth: Sendable {
    let authenticator: Authenticator?
    let authorizationServer: AuthorizationServer?

    /// Builds what `spec.auth` asks for. The store must be migrated and running.
    static func make(config: GatewayConfig, store: AuthStore?, httpClient: HTTPClient, fetcher: HTTPClient, logger: Logger) async throws -> GatewayAuth {
        guard let auth = config.auth else { return GatewayAuth(authenticator: nil, authorizationServer: nil) }
        var keyRing: KeyRing?
        var authorizationServer: AuthorizationServer?
        let issuer = config.publicBaseURL
        if let asConfig = auth.authorizationServer, let store {
            let ring = KeyRing(store: store, rotationDays: asConfig.keyRotationDays, accessTokenSeconds: asConfig.accessTokenSeconds, logger: logger)
            try await ring.prepare(now: Int64(Date().timeIntervalSince1970))
            keyRing = ring
            let resources = config.endpoints.filter { $0.auth.mode == .required }.map(config.resourceURL(for:))
            authorizationServer = AuthorizationServer(config: asConfig, issuer: issuer, resources: resources, store: store, keyRing: ring,
                                                      fetcher: fetcher, logger: logger)
        }
        let authenticator = Authenticator(config: auth, localIssuer: keyRing == nil ? nil : issuer, keyRing: keyRing, store: store,
                                          httpClient: httpClient, logger: logger)
        return GatewayAuth(authenticator: authenticator, authorizationServer: authorizationServer)
    }

    /// RFC 9728 metadata of an endpoint.
    static func protectedResourceMetadata(config: GatewayConfig, endpoint: GatewayConfig.Endpoint) -> JSONValue {
        var servers: [JSONValue] = []
        if config.auth?.authorizationServer != nil { servers.append(.string(config.publicBaseURL)) }
        servers += (config.auth?.issuers ?? []).map { .string($0.issuer) }
        var scopes = endpoint.auth.scopes
        for scope in config.auth?.authorizationServer?.scopes ?? [] where !scopes.contains(scope) { scopes.append(scope) }
        return [
            "resource": .string(config.resourceURL(for: endpoint)),
            "authorization_servers": .array(servers),
            "scopes_supported": .array(scopes.map(JSONValue.string)),
            "bearer_methods_supported": ["header"],
            "resource_name": .string("Gatehouse \(config.name) \(endpoint.path)"),
        ]
    }

    /// Adds the metadata and authorization-server routes.
    func addRoutes(to router: Router<GatewayRequestContext>, config: GatewayConfig, guards: RequestGuards, logger: Logger) {
        guard let authorizationServer else { return }
        let trustedProxies = config.policy?.pipeline?.trustedProxies ?? []
        for path in AuthorizationServer.paths {
            let handler: @Sendable (Request, GatewayRequestContext) async -> Response = { request, context in
                if let refusal = guards.check(host: request.head.authority, origin: nil) {
                    return HTTPResponses.error(status: .forbidden, id: nil, code: JSONRPCErrorCode.invalidRequest, message: refusal.message)
                }
                return await Self.serve(request, path: path, server: authorizationServer, context: context, trustedProxies: trustedProxies)
            }
            router.get(RouterPath(stringLiteral: path), use: handler)
            router.post(RouterPath(stringLiteral: path), use: handler)
        }
    }

    static let protectedResourcePrefix = "/.well-known/oauth-protected-resource"

    /// RFC 9728 metadata of a protected endpoint (`<prefix><endpoint path>`, or the bare prefix
    /// for the first one), from the current config: endpoints come and go with reloads.
    static func protectedResourceResponse(path: String, config: GatewayConfig) -> Response? {
        let protected = config.endpoints.filter { $0.auth.mode == .required }
        let suffix = String(path.dropFirst(protectedResourcePrefix.count))
        guard let endpoint = suffix.isEmpty ? protected.first : protected.first(where: { $0.path == suffix }) else { return nil }
        let body = JSONWriter.bytes(Self.protectedResourceMetadata(config: config, endpoint: endpoint))
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "max-age=300"],
                        body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Hummingbird → the authorization server's framework-free request, and back.
    static func serve(_ request: Request, path: String, server: AuthorizationServer, context: GatewayRequestContext,
                      trustedProxies: [CIDR] = []) async -> Response
    {
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            if let existing = headers[name] {
                headers[name] = existing + (name == "cookie" ? "; " : ", ") + field.value
            } else {
                headers[name] = field.value
            }
        }
        var body: [UInt8] = []
        if request.method == .post {
            guard let buffer = try? await request.body.collect(upTo: 64 * 1024) else {
                return Response(status: .contentTooLarge, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(string: #"{"error":"invalid_request","error_description":"the request body is larger than 64 KB"}"#)))
            }
            body = Array(buffer.readableBytesView)
        }
        let isForm = (headers["content-type"] ?? "").lowercased().hasPrefix("application/x-www-form-urlencoded")
        let form = isForm ? AuthHTTPRequest.parseForm(String(decoding: body, as: UTF8.self)) : []
        let query = request.uri.query.map(AuthHTTPRequest.parseForm) ?? []
        // The client's address for sign-in throttling: X-Forwarded-For only from trusted proxies.
        let clientAddress = MatchPipeline.clientIP(peer: context.peerAddress, forwardedFor: headers["x-forwarded-for"], trusted: trustedProxies)
        let answer = await server.handle(AuthHTTPRequest(method: request.method.rawValue, path: path, query: query, form: form, body: body, headers: headers,
                                                         clientAddress: clientAddress))
        var fields = HTTPFields()
        for (name, value) in answer.headers {
            if let field = HTTPField.Name(name) { fields.append(HTTPField(name: field, value: value)) }
        }
        return Response(status: HTTPResponse.Status(code: answer.status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
    }
}
