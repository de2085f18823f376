import AsyncHTTPClient
import Foundation
import GatehouseConfig
import Logging
import MCPWire
import NIOCore
import Synchronization

/// Signs users in at an upstream OpenID Connect provider for the embedded authorization
/// server: authorization code with PKCE S256 and a nonce against the provider, then the ID
/// token is verified (signature via the provider's JWKS, issuer, audience, expiry, nonce).
final class UpstreamLogin: Sendable {
    let config: Auth.OIDCLogin
    let client: HTTPClient
    let keys: IssuerKeys
    let logger: Logger
    let metadata = Mutex<Endpoints?>(nil)

    struct Endpoints: Sendable {
        var authorization: String
        var token: String
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    init(config: Auth.OIDCLogin, client: HTTPClient, logger: Logger) {
        self.config = config
        self.client = client
        self.logger = logger
        // JWKS location comes from the same discovery document.
        self.keys = IssuerKeys(issuer: config.issuer, jwksURL: nil, httpClient: client, logger: logger, minRefresh: 10, hardLifetime: 3600,
                               now: { Date() })
    }

    func endpoints() async throws -> Endpoints {
        if let known = metadata.withLock({ $0 }) { return known }
        let url = (config.issuer.hasSuffix("/") ? config.issuer : config.issuer + "/") + ".well-known/openid-configuration"
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let response = try await client.execute(request, timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok, let document = try JSONParser.parse(body.readableBytesView).objectValue,
              document["issuer"]?.stringValue == config.issuer,
              let authorization = document["authorization_endpoint"]?.stringValue, let token = document["token_endpoint"]?.stringValue
        else { throw Failure(description: "the provider's discovery document at \(url) is unusable") }
        let endpoints = Endpoints(authorization: authorization, token: token)
        metadata.withLock { $0 = endpoints }
        return endpoints
    }

    /// The provider URL to send the browser to.
    func authorizationURL(redirectURI: String, state: String, nonce: String, verifier: String) async throws -> String {
        let endpoints = try await endpoints()
        guard var components = URLComponents(string: endpoints.authorization) else {
            throw Failure(description: "the provider's authorization endpoint is not a URL")
        }
        var items = components.queryItems ?? []
        items += [
            URLQueryItem(name: "response_type", value: "code"), URLQueryItem(name: "client_id", value: config.clientID),
            URLQueryItem(name: "redirect_uri", value: redirectURI), URLQueryItem(name: "scope", value: config.scopes.joined(separator: " ")),
            URLQueryItem(name: "state", value: state), URLQueryItem(name: "nonce", value: nonce),
            URLQueryItem(name: "code_challenge", value: AuthCrypto.pkceChallenge(verifier)), URLQueryItem(name: "code_challenge_method", value: "S256"),
        ]
        components.queryItems = items
        let query = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        components.percentEncodedQuery = query
        guard let url = components.string else { throw Failure(description: "the provider's authorization endpoint is not a URL") }
        return url
    }

    /// Exchanges the provider's code and returns the signed-in subject.
    func subject(code: String, redirectURI: String, verifier: String, nonce: String) async throws -> String {
        let endpoints = try await endpoints()
        var request = HTTPClientRequest(url: endpoints.token)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        let basic = Data("\(FormURLEncoding.encode(config.clientID)):\(FormURLEncoding.encode(config.clientSecret.value))".utf8).base64EncodedString()
        request.headers.add(name: "Authorization", value: "Basic \(basic)")
        let form = "grant_type=authorization_code&code=\(FormURLEncoding.encode(code))&redirect_uri=\(FormURLEncoding.encode(redirectURI))"
            + "&code_verifier=\(FormURLEncoding.encode(verifier))"
        request.body = .bytes(ByteBuffer(string: form))
        let response = try await client.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        let answer = try? JSONParser.parse(body.readableBytesView).objectValue
        guard response.status == .ok, let idToken = answer?["id_token"]?.stringValue else {
            throw Failure(description: "the provider refused the code (\(answer?["error"]?.stringValue ?? "HTTP \(response.status.code)"))")
        }
        let jwt = try JWT.decode(idToken)
        guard let alg = jwt.algorithm, let algorithm = JWSAlgorithm(rawValue: alg) else { throw Failure(description: "the ID token's algorithm is not accepted") }
        let candidates = try await keys.candidates(kid: jwt.keyID, algorithm: algorithm)
        guard candidates.contains(where: { $0.isValid(signature: jwt.signature, for: jwt.signingInput, algorithm: algorithm) }) else {
            throw Failure(description: "the ID token's signature is invalid")
        }
        let claims = jwt.claims
        guard claims["iss"]?.stringValue == config.issuer else { throw Failure(description: "the ID token comes from another issuer") }
        let audiences = claims["aud"]?.stringValue.map { [$0] } ?? claims["aud"]?.arrayValue?.compactMap(\.stringValue) ?? []
        guard audiences.contains(config.clientID) else { throw Failure(description: "the ID token is for another client") }
        guard let exp = claims["exp"]?.doubleValue, exp + 60 > Date().timeIntervalSince1970 else { throw Failure(description: "the ID token has expired") }
        guard let tokenNonce = claims["nonce"]?.stringValue, AuthCrypto.equal(tokenNonce, nonce) else {
            throw Failure(description: "the ID token's nonce does not match this sign-in")
        }
        guard let subject = claims[config.subjectClaim]?.stringValue, !subject.isEmpty else {
            throw Failure(description: "the ID token has no '\(config.subjectClaim)' claim")
        }
        return subject
    }
}
