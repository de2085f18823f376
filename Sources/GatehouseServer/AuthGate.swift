import GatehouseAuth
import GatehouseConfig
import HTTPTypes
import Hummingbird
import Logging
import MCPWire

/// The resource-server step of one endpoint's pipeline: no token, a bad token or too few scopes
/// end the request here with the answers RFC 6750 and RFC 9728 describe; a good token becomes
/// the request's `Identity`. The client's credential goes no further: upstream requests are
/// built fresh and never copy the client's Authorization header.
struct AuthGate: Sendable {
    let mode: GatewayConfig.EndpointAuth.Mode
    let scopes: [String]
    /// The endpoint's resource identifier (its public URL).
    let resource: String
    /// Where its protected resource metadata lives.
    let metadataURL: String
    let authenticator: Authenticator?
    let logger: Logger
    let metrics: Metrics
    let endpointPath: String

    func failed(_ reason: String) { metrics.increment("gatehouse_auth_failures_total", [endpointPath, reason]) }

    enum Outcome {
        case allowed(Identity)
        case refused(Response)
    }

    /// `certificate`: the connection's verified client certificate (mTLS), if any — an identity
    /// for callers without a bearer token.
    func check(_ request: Request, certificate: ClientCertificate? = nil) async -> Outcome {
        let certified = certificate.map {
            Identity(kind: .machine, subject: $0.subject, issuer: $0.issuer.map { "x509:" + $0 } ?? "x509", source: .clientCertificate)
        }
        guard mode == .required else { return .allowed(request.headers.value(.authorization) == nil ? certified ?? .anonymous : .anonymous) }
        // Tokens in URLs end up in logs and histories: refused whatever else the request holds.
        if let query = request.uri.query, AuthHTTPRequest.parseForm(query).contains(where: { $0.0 == "access_token" }) {
            failed("token_in_query")
            return .refused(refusal(status: .badRequest, error: "invalid_request",
                                    description: "access tokens are not accepted in the query string; send them in the Authorization header"))
        }
        let headers = request.headers[values: .authorization]
        if headers.isEmpty, let certified {
            guard scopes.isEmpty else {
                failed("insufficient_scope")
                return .refused(challenge(status: .forbidden, error: "insufficient_scope", description: "a client certificate carries no scopes",
                                          message: "Forbidden: this endpoint needs the scope \(scopes.joined(separator: " ")), which a client certificate cannot carry; use an access token"))
            }
            return .allowed(certified)
        }
        guard let header = headers.first else {
            failed("missing")
            return .refused(challenge(status: .unauthorized, error: nil, description: nil,
                                      message: "Unauthorized: this endpoint needs an access token; discover how to get one at \(metadataURL)"))
        }
        guard headers.count == 1 else {
            failed("malformed")
            return .refused(refusal(status: .badRequest, error: "invalid_request", description: "send exactly one Authorization header"))
        }
        guard header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            // No Bearer credentials at all (another scheme): answered like a missing token (RFC 6750 §3.1).
            failed("missing")
            return .refused(challenge(status: .unauthorized, error: nil, description: nil,
                                      message: "Unauthorized: send Authorization: Bearer <token>; discover how to get one at \(metadataURL)"))
        }
        let token = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard let authenticator else {
            return .refused(challenge(status: .unauthorized, error: "invalid_token", description: "no token issuer is configured",
                                      message: "Unauthorized: no token issuer is configured for this gateway"))
        }
        switch await authenticator.authenticate(token, resource: resource) {
        case .failure(let error):
            logger.notice("authentication failed", metadata: ["reason": "\(error.reason)", "endpoint": "\(resource)"])
            failed(error.reason)
            return .refused(challenge(status: .unauthorized, error: "invalid_token", description: error.description,
                                      message: "Unauthorized: \(error.description)"))
        case .success(let identity):
            let missing = scopes.filter { !identity.scopes.contains($0) }
            guard missing.isEmpty else {
                failed("insufficient_scope")
                logger.notice("insufficient scope", metadata: ["subject": "\(identity.subject)", "missing": "\(missing.joined(separator: " "))"])
                return .refused(challenge(status: .forbidden, error: "insufficient_scope",
                                          description: "the token lacks the scope \(missing.joined(separator: " "))",
                                          message: "Forbidden: the token lacks the scope \(missing.joined(separator: " ")); ask for it when you authorize"))
            }
            return .allowed(identity)
        }
    }

    /// RFC 6750 §3 with RFC 9728's `resource_metadata`.
    func challenge(status: HTTPResponse.Status, error: String?, description: String?, message: String) -> Response {
        var parts: [String] = []
        if let error { parts.append("error=\"\(error)\"") }
        if let description { parts.append("error_description=\"\(Self.quoted(description))\"") }
        if !scopes.isEmpty { parts.append("scope=\"\(scopes.joined(separator: " "))\"") }
        parts.append("resource_metadata=\"\(metadataURL)\"")
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Bearer " + parts.joined(separator: ", ")
        return HTTPResponses.error(status: status, id: .null, code: JSONRPCErrorCode.invalidRequest, message: message, headers: headers)
    }

    func refusal(status: HTTPResponse.Status, error: String, description: String) -> Response {
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Bearer error=\"\(error)\", error_description=\"\(Self.quoted(description))\", resource_metadata=\"\(metadataURL)\""
        return HTTPResponses.error(status: status, id: .null, code: JSONRPCErrorCode.invalidRequest, message: "Bad Request: \(description)", headers: headers)
    }

    static func quoted(_ text: String) -> String {
        String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7f && $0 != "\"" && $0 != "\\" }.map(Character.init))
    }
}
