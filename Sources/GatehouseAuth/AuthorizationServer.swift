import AsyncHTTPClient
import Crypto
import Foundation
import GatehouseConfig
import Logging
import MCPWire

/// The embedded OAuth 2.1 authorization server, for teams without an identity provider.
///
/// Authorization code with PKCE S256 only, exact redirect URIs, single-use codes (a replay
/// revokes what the code issued), `iss` in the authorization response (RFC 9207), rotated
/// refresh tokens with reuse detection, client credentials for machines, revocation (RFC 7009),
/// dynamic registration (RFC 7591) and Client ID Metadata Documents. No implicit or password
/// grant. Users sign in on a login-and-consent page against locally configured password hashes.
///
/// Every grant is a row in the store; its codes and refresh tokens hang off it, and its access
/// tokens carry its id (`gid`) so revoking the grant ends them all.
public final class AuthorizationServer: Sendable {
    public let issuer: String
    let config: Auth.AuthorizationServer
    /// The resource URLs tokens may be minted for (the gateway's protected endpoints).
    let resources: [String]
    let store: AuthStore
    let keyRing: KeyRing
    let clients: OAuthClients
    let users: [String: String]
    /// Set when users sign in at an upstream OpenID Connect provider instead of locally.
    let upstreamLogin: UpstreamLogin?
    let secureCookies: Bool
    let throttle: SignInThrottle
    let logger: Logger
    let now: @Sendable () -> Date

    public static let paths: Set<String> = [
        "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/oauth/authorize", "/oauth/token",
        "/oauth/revoke", "/oauth/register", "/oauth/jwks", "/oauth/callback",
    ]

    public init(config: Auth.AuthorizationServer, issuer: String, resources: [String], store: AuthStore, keyRing: KeyRing, fetcher: HTTPClient,
                logger: Logger, now: @escaping @Sendable () -> Date = { Date() })
    {
        self.throttle = SignInThrottle()
        self.issuer = issuer
        self.config = config
        self.resources = resources
        self.store = store
        self.keyRing = keyRing
        self.clients = OAuthClients(config: config, store: store, fetcher: fetcher, logger: logger)
        self.users = Dictionary(config.users.map { ($0.username, $0.passwordHash.value) }, uniquingKeysWith: { a, _ in a })
        if case .oidc(let login) = config.login {
            self.upstreamLogin = UpstreamLogin(config: login, client: fetcher, logger: logger)
        } else {
            self.upstreamLogin = nil
        }
        self.secureCookies = issuer.hasPrefix("https://")
        self.logger = logger
        self.now = now
    }

    var nowSeconds: Int64 { Int64(now().timeIntervalSince1970) }

    public func handle(_ request: AuthHTTPRequest) async -> AuthHTTPResponse {
        switch (request.method, request.path) {
        case ("GET", "/.well-known/oauth-authorization-server"), ("GET", "/.well-known/openid-configuration"):
            return .json(200, metadata)
        case ("GET", "/oauth/jwks"):
            return AuthHTTPResponse(status: 200, headers: [("Content-Type", "application/json"), ("Cache-Control", "max-age=300")],
                                    body: JSONWriter.bytes(keyRing.jwks()))
        case ("GET", "/oauth/authorize"):
            return await authorizePage(request)
        case ("POST", "/oauth/authorize"):
            return await authorizeDecision(request)
        case ("GET", "/oauth/callback"):
            return await loginCallback(request)
        case ("POST", "/oauth/token"):
            return await token(request)
        case ("POST", "/oauth/revoke"):
            return await revoke(request)
        case ("POST", "/oauth/register"):
            return await register(request)
        default:
            return .oauthError(405, "invalid_request", "\(request.method) is not allowed on \(request.path)")
        }
    }

    var metadata: JSONValue {
        [
            "issuer": .string(issuer),
            "authorization_endpoint": .string(issuer + "/oauth/authorize"),
            "token_endpoint": .string(issuer + "/oauth/token"),
            "registration_endpoint": config.registration.dynamic ? .string(issuer + "/oauth/register") : .null,
            "revocation_endpoint": .string(issuer + "/oauth/revoke"),
            "jwks_uri": .string(issuer + "/oauth/jwks"),
            "scopes_supported": .array(config.scopes.map(JSONValue.string)),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "client_id_metadata_document_supported": .bool(config.registration.clientMetadataDocuments),
            "authorization_response_iss_parameter_supported": true,
        ]
    }

    // MARK: Authorization endpoint

    /// The validated parameters of an authorization request, carried through the login form
    /// inside a signed, short-lived JWT so any replica can finish it.
    struct Pending {
        var clientID: String
        var redirectURI: String
        var state: String?
        var challenge: String
        var scope: String
        var resource: String
        var csrfHash: String
        /// Set once the user signed in at the upstream provider: the page only asks for consent.
        var subject: String? = nil
        /// The sealed form's single-use nonce and expiry (set by `seal`, read back by `open`).
        var nonce: String = ""
        var expiresAt: Int64 = 0
    }

    private func authorizePage(_ request: AuthHTTPRequest) async -> AuthHTTPResponse {
        let q = request.query
        if let name = q.repeated(["client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method", "response_type", "scope", "resource"]) {
            return page(status: 400, title: "Invalid request", message: "The parameter \(name) appears more than once.")
        }
        guard let clientID = q.value("client_id"), !clientID.isEmpty else {
            return page(status: 400, title: "Invalid request", message: "The request has no client_id. Start the sign-in again from your application.")
        }
        let client: OAuthClient
        do { client = try await clients.client(clientID) } catch {
            return page(status: 400, title: "Unknown application", message: "This application cannot sign in here: \(error.description).")
        }
        guard let redirectURI = q.value("redirect_uri"), client.redirectURIs.contains(redirectURI) else {
            return page(status: 400, title: "Invalid redirect", message: "The redirect_uri is missing or is not registered for this application (it must match exactly).")
        }
        let state = q.value("state")
        func fail(_ error: String, _ description: String) -> AuthHTTPResponse {
            .redirect(redirectLocation(redirectURI, ["error": error, "error_description": description, "state": state, "iss": issuer]))
        }
        guard q.value("response_type") == "code" else { return fail("unsupported_response_type", "only response_type=code is supported") }
        guard client.grantTypes.contains("authorization_code") else { return fail("unauthorized_client", "this client may not use the authorization code grant") }
        guard let challenge = q.value("code_challenge"), !challenge.isEmpty else {
            return fail("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256")
        }
        guard q.value("code_challenge_method") == "S256" else { return fail("invalid_request", "code_challenge_method must be S256 (plain is not accepted)") }
        guard challenge.utf8.count == 43, Base64URL.decode(challenge)?.count == 32 else {
            return fail("invalid_request", "code_challenge must be the base64url SHA-256 of the code verifier (43 characters)")
        }
        guard let scope = grantedScope(q.value("scope"), client: client) else {
            return fail("invalid_scope", "the requested scope is not offered to this client; offered: \(allowedScopes(client).joined(separator: " "))")
        }
        guard let resource = resolveResource(q.value("resource")) else {
            return fail("invalid_target", "the resource is not served by this gateway; use one of: \(resources.joined(separator: " "))")
        }
        if let upstreamLogin {
            return await startUpstreamLogin(upstreamLogin, Pending(clientID: clientID, redirectURI: redirectURI, state: state, challenge: challenge,
                                                                    scope: scope, resource: resource, csrfHash: ""), fail: fail)
        }
        return consentPage(client: client, pending: Pending(clientID: clientID, redirectURI: redirectURI, state: state, challenge: challenge,
                                                            scope: scope, resource: resource, csrfHash: ""))
    }

    /// The sign-in (or, after an upstream sign-in, consent) page with a fresh CSRF cookie.
    private func consentPage(client: OAuthClient, pending: Pending) -> AuthHTTPResponse {
        let csrf = AuthCrypto.randomToken()
        var pending = pending
        pending.csrfHash = AuthCrypto.hash(csrf)
        guard let sealed = seal(pending) else { return page(status: 503, title: "Unavailable", message: "The sign-in service is not ready; try again.") }
        var response = loginPage(client: client, pending: pending, sealed: sealed, csrf: csrf, error: nil)
        var cookie = "gh_csrf=\(csrf); Path=/oauth; HttpOnly; SameSite=Strict; Max-Age=600"
        if secureCookies { cookie += "; Secure" }
        response.headers.append(("Set-Cookie", cookie))
        return response
    }

    private func authorizeDecision(_ request: AuthHTTPRequest) async -> AuthHTTPResponse {
        let form = request.form
        guard let sealed = form.value("request"), let pending = await open(sealed) else {
            return page(status: 400, title: "Sign-in expired", message: "This sign-in form has expired or was altered. Start again from your application.")
        }
        guard let csrf = form.value("csrf"), let cookie = request.cookies["gh_csrf"], AuthCrypto.equal(csrf, cookie),
              AuthCrypto.equal(AuthCrypto.hash(csrf), pending.csrfHash)
        else {
            return page(status: 403, title: "Request refused", message: "The form was not sent from the sign-in page in this browser (CSRF check failed). Start again from your application.")
        }
        // Each sealed form is good for one submission, on any replica: a replayed form (from a
        // history, a log, a shared machine) gets nothing. A failed sign-in answers a fresh form.
        let claimed: Bool
        do { claimed = try await store.claimForm(hash: AuthCrypto.hash(pending.nonce), expiresAt: pending.expiresAt, now: nowSeconds) } catch {
            logger.error("cannot record a sign-in form", metadata: ["error": "\(error)"])
            return page(status: 503, title: "Unavailable", message: "The sign-in service cannot reach its storage. Try again in a moment.")
        }
        guard claimed else {
            return page(status: 400, title: "Sign-in form already used",
                        message: "This sign-in form was already submitted. Start again from your application to get a new one.")
        }
        if form.value("decision") != "allow" {
            return .redirect(redirectLocation(pending.redirectURI, ["error": "access_denied", "error_description": "the user denied access", "state": pending.state, "iss": issuer]))
        }
        let username: String
        if let subject = pending.subject {
            username = subject  // signed in at the upstream provider; this was the consent
        } else if upstreamLogin != nil {
            return page(status: 400, title: "Sign-in required", message: "Users sign in at the identity provider here. Start again from your application.")
        } else {
            username = form.value("username") ?? ""
            if let refusal = await checkPassword(username: username, password: form.value("password") ?? "", pending: pending, csrf: csrf,
                                                 clientAddress: request.clientAddress)
            {
                return refusal
            }
        }
        let current = nowSeconds
        let grant = AuthStore.GrantRecord(grantID: AuthCrypto.randomToken(bytes: 16), clientID: pending.clientID, subject: username, kind: "user",
                                          scope: pending.scope, resource: pending.resource, createdAt: current,
                                          expiresAt: current + Int64(config.refreshTokenSeconds))
        let code = AuthCrypto.randomToken()
        do {
            try await store.insertGrant(grant)
            try await store.insertCode(hash: AuthCrypto.hash(code), .init(grantID: grant.grantID, redirectURI: pending.redirectURI, challenge: pending.challenge,
                                                                          expiresAt: current + Int64(config.codeSeconds)))
        } catch {
            logger.error("cannot store an authorization code", metadata: ["error": "\(error)"])
            return .redirect(redirectLocation(pending.redirectURI, ["error": "temporarily_unavailable", "state": pending.state, "iss": issuer]))
        }
        logger.info("authorized", metadata: ["client_id": "\(pending.clientID)", "subject": "\(username)", "scope": "\(pending.scope)"])
        return .redirect(redirectLocation(pending.redirectURI, ["code": code, "state": pending.state, "iss": issuer]))
    }

    /// Checks a local user's password under the sign-in throttle; nil when signed in, else the
    /// page to answer (the form again, fresh, with the reason).
    private func checkPassword(username: String, password: String, pending: Pending, csrf: String, clientAddress: String?) async -> AuthHTTPResponse? {
        let keys = throttle.keys(username: username, clientAddress: clientAddress)
        func again(_ status: Int, _ error: String, retryAfter: Int64? = nil) async -> AuthHTTPResponse {
            let client = (try? await clients.client(pending.clientID))
                ?? OAuthClient(id: pending.clientID, redirectURIs: [], grantTypes: [], scopes: [], origin: .registered)
            guard let fresh = seal(pending) else { return page(status: 503, title: "Unavailable", message: "The sign-in service is not ready; try again.") }
            var response = loginPage(client: client, pending: pending, sealed: fresh, csrf: csrf, error: error, status: status)
            if let retryAfter { response.headers.append(("Retry-After", String(retryAfter))) }
            return response
        }
        func locked(_ wait: Int64) async -> AuthHTTPResponse {
            await again(429, "Too many failed sign-in attempts. Wait \(Self.duration(wait)) before trying again.", retryAfter: wait)
        }
        // Count the attempt under each key before checking the password; a locked key refuses
        // it (and the keys counted so far take it back).
        let current = nowSeconds
        var counted: [(key: String, attempt: AuthStore.SignInAttempt)] = []
        do {
            for key in keys.all {
                let attempt = try await store.beginSignInAttempt(key: key, now: current, resetAfter: throttle.resetAfter)
                if attempt.lockedUntil > current {
                    for earlier in counted { try? await store.forgiveSignInAttempt(key: earlier.key) }
                    logger.notice("sign-in refused: too many failures", metadata: ["client_id": "\(pending.clientID)"])
                    return await locked(attempt.lockedUntil - current)
                }
                counted.append((key, attempt))
            }
            // The attempt that reaches a limit locks its key now, so concurrent guesses stop
            // here; a success below takes the account's lock away again.
            for (key, attempt) in counted {
                let delay = throttle.delay(attempt: attempt.number, free: throttle.freeFailures(key))
                if delay > 0 { try await store.lockSignIn(key: key, until: current + delay) }
            }
        } catch {
            logger.error("cannot count a sign-in attempt", metadata: ["error": "\(error)"])
            return page(status: 503, title: "Unavailable", message: "The sign-in service cannot reach its storage. Try again in a moment.")
        }
        let known = users[username]
        if PasswordHash.verify(password, against: known ?? PasswordHash.decoy), known != nil {
            try? await store.clearSignInAttempts(key: keys.account)
            if let address = counted.first(where: { $0.key == keys.address }) {
                let delay = throttle.delay(attempt: address.attempt.number, free: throttle.freeFailures(address.key))
                try? await store.forgiveSignInAttempt(key: address.key, lockedUntil: delay > 0 ? current + delay : nil)
            }
            return nil
        }
        logger.notice("sign-in failed", metadata: ["client_id": "\(pending.clientID)"])
        let wait = counted.map { throttle.delay(attempt: $0.attempt.number, free: throttle.freeFailures($0.key)) }.max() ?? 0
        if wait > 0 { return await locked(wait) }
        return await again(401, "Wrong username or password.")
    }

    static func duration(_ seconds: Int64) -> String {
        seconds < 120 ? "\(seconds) seconds" : "\((seconds + 59) / 60) minutes"
    }

    /// The scopes a client may get: its own (already capped at lookup), each offered here.
    func allowedScopes(_ client: OAuthClient) -> [String] {
        client.scopes.filter(config.scopes.contains)
    }

    /// The scope to grant: the request's (each allowed to the client), or all it is allowed.
    /// Nil when that is not allowed, or would be empty.
    func grantedScope(_ requested: String?, client: OAuthClient) -> String? {
        let allowed = allowedScopes(client)
        guard let requested, !requested.trimmingCharacters(in: .whitespaces).isEmpty else {
            return allowed.isEmpty ? nil : allowed.joined(separator: " ")
        }
        let wanted = requested.split(separator: " ").map(String.init)
        guard wanted.allSatisfy(allowed.contains) else { return nil }
        return wanted.joined(separator: " ")
    }

    /// RFC 8707 at the token endpoint: the audience of the token to mint from a grant — the
    /// requested resource when it is one of the grant's (a narrower token), else all of them
    /// that the gateway still serves. Nil when the request names another resource.
    func audience(_ requested: String?, grant: AuthStore.GrantRecord) -> String? {
        let granted = grant.resource.split(separator: " ").map(String.init).filter(resources.contains)
        guard let requested, !requested.isEmpty else { return granted.isEmpty ? nil : granted.joined(separator: " ") }
        let normalized = requested.hasSuffix("/") ? String(requested.dropLast()) : requested
        return granted.first { $0 == requested || $0 == normalized }
    }

    /// RFC 8707: the requested resource, or every protected endpoint of the gateway.
    func resolveResource(_ requested: String?) -> String? {
        guard let requested, !requested.isEmpty else { return resources.joined(separator: " ") }
        let normalized = requested.hasSuffix("/") ? String(requested.dropLast()) : requested
        return resources.first { $0 == requested || $0 == normalized }
    }

    func redirectLocation(_ base: String, _ parameters: KeyValuePairs<String, String?>) -> String {
        var components = URLComponents(string: base) ?? URLComponents()
        var items = components.queryItems ?? []
        for (name, value) in parameters { if let value { items.append(URLQueryItem(name: name, value: value)) } }
        components.queryItems = items
        // URLComponents leaves '+' alone in queries, which form decoders read as a space.
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        return components.string ?? base
    }

    private func seal(_ pending: Pending) -> String? {
        guard let key = keyRing.signingKey() else { return nil }
        var claims: JSONObject = [
            "typ": "gatehouse-authz", "iss": .string(issuer), "client_id": .string(pending.clientID), "redirect_uri": .string(pending.redirectURI),
            "challenge": .string(pending.challenge), "scope": .string(pending.scope), "resource": .string(pending.resource),
            "csrf": .string(pending.csrfHash), "exp": .int(Int(nowSeconds) + 600), "jti": .string(AuthCrypto.randomToken(bytes: 16)),
        ]
        if let state = pending.state { claims["state"] = .string(state) }
        if let subject = pending.subject { claims["subject"] = .string(subject) }
        return try? JWT.sign(claims: claims, key: key.privateKey, kid: key.kid)
    }

    private func open(_ sealed: String) async -> Pending? {
        guard let jwt = try? JWT.decode(sealed), jwt.algorithm == "ES256", let kid = jwt.keyID, let key = await keyRing.verificationKey(kid: kid),
              VerificationKey.p256(key).isValid(signature: jwt.signature, for: jwt.signingInput, algorithm: .es256)
        else { return nil }
        let c = jwt.claims
        guard c["typ"]?.stringValue == "gatehouse-authz", c["iss"]?.stringValue == issuer, let exp = c["exp"]?.intValue, Int64(exp) > nowSeconds,
              let clientID = c["client_id"]?.stringValue, let redirect = c["redirect_uri"]?.stringValue, let challenge = c["challenge"]?.stringValue,
              let scope = c["scope"]?.stringValue, let resource = c["resource"]?.stringValue, let csrf = c["csrf"]?.stringValue,
              let nonce = c["jti"]?.stringValue, !nonce.isEmpty
        else { return nil }
        return Pending(clientID: clientID, redirectURI: redirect, state: c["state"]?.stringValue, challenge: challenge, scope: scope, resource: resource,
                       csrfHash: csrf, subject: c["subject"]?.stringValue, nonce: nonce, expiresAt: Int64(exp))
    }

    // MARK: Sign-in at an upstream OpenID Connect provider

    /// Sends the browser to the provider. The PKCE verifier stays in an HttpOnly cookie (never
    /// in a URL); the signed state carries the pending request and the verifier's hash.
    private func startUpstreamLogin(_ login: UpstreamLogin, _ pending: Pending, fail: (String, String) -> AuthHTTPResponse) async -> AuthHTTPResponse {
        let verifier = AuthCrypto.randomToken()
        let nonce = AuthCrypto.randomToken(bytes: 16)
        guard let key = keyRing.signingKey() else { return page(status: 503, title: "Unavailable", message: "The sign-in service is not ready; try again.") }
        var claims: JSONObject = [
            "typ": "gatehouse-login", "iss": .string(issuer), "client_id": .string(pending.clientID), "redirect_uri": .string(pending.redirectURI),
            "challenge": .string(pending.challenge), "scope": .string(pending.scope), "resource": .string(pending.resource),
            "verifier": .string(AuthCrypto.hash(verifier)), "nonce": .string(nonce), "exp": .int(Int(nowSeconds) + 600),
        ]
        if let state = pending.state { claims["state"] = .string(state) }
        guard let state = try? JWT.sign(claims: claims, key: key.privateKey, kid: key.kid) else {
            return page(status: 503, title: "Unavailable", message: "The sign-in service is not ready; try again.")
        }
        let location: String
        do {
            location = try await login.authorizationURL(redirectURI: issuer + "/oauth/callback", state: state, nonce: nonce, verifier: verifier)
        } catch {
            logger.error("cannot reach the sign-in provider", metadata: ["error": "\(error)"])
            return fail("temporarily_unavailable", "the identity provider cannot be reached")
        }
        var response = AuthHTTPResponse.redirect(location)
        // Lax: the cookie must come back on the provider's top-level redirect to /oauth/callback.
        var cookie = "gh_login=\(verifier); Path=/oauth; HttpOnly; SameSite=Lax; Max-Age=600"
        if secureCookies { cookie += "; Secure" }
        response.headers.append(("Set-Cookie", cookie))
        return response
    }

    private func loginCallback(_ request: AuthHTTPRequest) async -> AuthHTTPResponse {
        guard let login = upstreamLogin else { return page(status: 404, title: "Not found", message: "Sign-in is local here.") }
        let q = request.query
        guard let state = q.value("state"), let jwt = try? JWT.decode(state), jwt.algorithm == "ES256", let kid = jwt.keyID,
              let key = await keyRing.verificationKey(kid: kid),
              VerificationKey.p256(key).isValid(signature: jwt.signature, for: jwt.signingInput, algorithm: .es256)
        else {
            return page(status: 400, title: "Sign-in failed", message: "The sign-in answer is missing or was altered. Start again from your application.")
        }
        let c = jwt.claims
        guard c["typ"]?.stringValue == "gatehouse-login", c["iss"]?.stringValue == issuer, let exp = c["exp"]?.intValue, Int64(exp) > nowSeconds,
              let clientID = c["client_id"]?.stringValue, let redirect = c["redirect_uri"]?.stringValue, let challenge = c["challenge"]?.stringValue,
              let scope = c["scope"]?.stringValue, let resource = c["resource"]?.stringValue, let verifierHash = c["verifier"]?.stringValue,
              let nonce = c["nonce"]?.stringValue
        else {
            return page(status: 400, title: "Sign-in expired", message: "This sign-in has expired. Start again from your application.")
        }
        // The same browser that started the sign-in must finish it (login CSRF defence).
        guard let verifier = request.cookies["gh_login"], AuthCrypto.equal(AuthCrypto.hash(verifier), verifierHash) else {
            return page(status: 400, title: "Sign-in refused", message: "This sign-in was not started in this browser. Start again from your application.")
        }
        let clientState = c["state"]?.stringValue
        if let error = q.value("error") {
            let known = ["access_denied", "login_required", "consent_required", "interaction_required", "temporarily_unavailable"]
            return .redirect(redirectLocation(redirect, ["error": known.contains(error) ? error : "access_denied",
                                                         "error_description": "the identity provider did not sign the user in", "state": clientState, "iss": issuer]))
        }
        guard let code = q.value("code") else {
            return page(status: 400, title: "Sign-in failed", message: "The identity provider sent no code. Start again from your application.")
        }
        let subject: String
        do {
            subject = try await login.subject(code: code, redirectURI: issuer + "/oauth/callback", verifier: verifier, nonce: nonce)
        } catch {
            logger.warning("upstream sign-in failed", metadata: ["error": "\(error)"])
            return page(status: 400, title: "Sign-in failed", message: "The identity provider's answer could not be verified. Start again from your application.")
        }
        let client: OAuthClient
        do { client = try await clients.client(clientID) } catch {
            return page(status: 400, title: "Unknown application", message: "This application cannot sign in here: \(error.description).")
        }
        var response = consentPage(client: client, pending: Pending(clientID: clientID, redirectURI: redirect, state: clientState, challenge: challenge,
                                                                    scope: scope, resource: resource, csrfHash: "", subject: subject))
        response.headers.append(("Set-Cookie", "gh_login=; Path=/oauth; HttpOnly; SameSite=Lax; Max-Age=0"))
        return response
    }

    // MARK: Token endpoint

    struct Refusal: Error { var response: AuthHTTPResponse }

    /// Authenticates the client of a token or revocation request: Basic or form secrets for
    /// confidential clients, the bare client_id for public ones.
    func authenticateClient(_ request: AuthHTTPRequest) async -> Result<OAuthClient, Refusal> {
        var id = request.form.value("client_id")
        var secret = request.form.value("client_secret")
        if let header = request.headers["authorization"], header.lowercased().hasPrefix("basic ") {
            guard let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)).flatMap({ String(data: $0, encoding: .utf8) }),
                  let colon = decoded.firstIndex(of: ":")
            else { return .failure(Refusal(response: invalidClient("the Basic credentials are malformed"))) }
            let basicID = String(decoded[..<colon]).removingPercentEncoding ?? String(decoded[..<colon])
            if let id, id != basicID { return .failure(Refusal(response: invalidClient("client_id differs between the form and the Authorization header"))) }
            id = basicID
            secret = String(decoded[decoded.index(after: colon)...]).removingPercentEncoding
        }
        guard let id, !id.isEmpty else { return .failure(Refusal(response: invalidClient("the request names no client (send client_id or Basic credentials)"))) }
        let client: OAuthClient
        do { client = try await clients.client(id) } catch { return .failure(Refusal(response: invalidClient(error.description))) }
        if let expected = client.secretHash {
            guard let secret, AuthCrypto.equal(AuthCrypto.hash(secret), expected) else { return .failure(Refusal(response: invalidClient("client authentication failed"))) }
        } else if secret != nil, !(secret ?? "").isEmpty {
            return .failure(Refusal(response: invalidClient("this is a public client; it has no secret")))
        }
        return .success(client)
    }

    func invalidClient(_ description: String) -> AuthHTTPResponse {
        .oauthError(401, "invalid_client", description, headers: [("WWW-Authenticate", "Basic realm=\"gatehouse\"")])
    }

    private func token(_ request: AuthHTTPRequest) async -> AuthHTTPResponse {
        if let name = request.form.repeated(["grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope", "resource", "client_id"]) {
            return .oauthError(400, "invalid_request", "the parameter \(name) appears more than once")
        }
        let client: OAuthClient
        switch await authenticateClient(request) {
        case .success(let c): client = c
        case .failure(let refusal): return refusal.response
        }
        switch request.form.value("grant_type") {
        case "authorization_code": return await exchangeCode(request, client: client)
        case "refresh_token": return await refresh(request, client: client)
        case "client_credentials": return await clientCredentials(request, client: client)
        case nil: return .oauthError(400, "invalid_request", "grant_type is missing")
        case let other?: return .oauthError(400, "unsupported_grant_type", "grant_type '\(other)' is not supported (authorization_code, refresh_token, client_credentials are)")
        }
    }

    private func exchangeCode(_ request: AuthHTTPRequest, client: OAuthClient) async -> AuthHTTPResponse {
        let form = request.form
        guard let code = form.value("code"), let redirectURI = form.value("redirect_uri"), let verifier = form.value("code_verifier") else {
            return .oauthError(400, "invalid_request", "code, redirect_uri and code_verifier are required")
        }
        let current = nowSeconds
        let outcome: AuthStore.CodeOutcome
        do { outcome = try await store.consumeCode(hash: AuthCrypto.hash(code), now: current) } catch { return unavailable(error) }
        switch outcome {
        case .unknown:
            return .oauthError(400, "invalid_grant", "the authorization code is not valid")
        case .replayed(let grantID):
            try? await store.revokeGrant(grantID, now: current)
            logger.warning("authorization code replayed; its grant is revoked", metadata: ["client_id": "\(client.id)"])
            return .oauthError(400, "invalid_grant", "the authorization code was already used; the tokens issued for it are revoked")
        case .valid(let record):
            guard let grant = try? await store.grant(record.grantID) else {
                return .oauthError(400, "invalid_grant", "the authorization code is not valid")
            }
            guard grant.clientID == client.id else { return .oauthError(400, "invalid_grant", "the code was issued to another client") }
            guard record.expiresAt > current else { return .oauthError(400, "invalid_grant", "the authorization code has expired") }
            guard record.redirectURI == redirectURI else { return .oauthError(400, "invalid_grant", "redirect_uri does not match the authorization request") }
            guard verifier.utf8.count >= 43, verifier.utf8.count <= 128, AuthCrypto.equal(AuthCrypto.pkceChallenge(verifier), record.challenge) else {
                return .oauthError(400, "invalid_grant", "the code_verifier does not match the code_challenge")
            }
            guard let audience = audience(form.value("resource"), grant: grant) else {
                return .oauthError(400, "invalid_target", "the resource was not part of the authorization request; ask for one of: \(grant.resource)")
            }
            var minted = grant
            minted.resource = audience
            return await issue(grant: minted, client: client, withRefresh: client.grantTypes.contains("refresh_token"))
        }
    }

    private func refresh(_ request: AuthHTTPRequest, client: OAuthClient) async -> AuthHTTPResponse {
        guard let token = request.form.value("refresh_token") else { return .oauthError(400, "invalid_request", "refresh_token is required") }
        guard client.grantTypes.contains("refresh_token") else {
            return .oauthError(400, "unauthorized_client", "this client may not use the refresh_token grant; start a new authorization instead")
        }
        let current = nowSeconds
        let outcome: AuthStore.RefreshOutcome
        do { outcome = try await store.useRefreshToken(hash: AuthCrypto.hash(token), now: current) } catch { return unavailable(error) }
        switch outcome {
        case .unknown:
            return .oauthError(400, "invalid_grant", "the refresh token is not valid")
        case .reused(let grantID):
            try? await store.revokeGrant(grantID, now: current)
            logger.warning("refresh token reused; its grant is revoked", metadata: ["client_id": "\(client.id)"])
            return .oauthError(400, "invalid_grant", "the refresh token was already used; every token of this grant is revoked")
        case .revoked:
            return .oauthError(400, "invalid_grant", "the refresh token has expired or was revoked")
        case .valid(let grantID, _):
            // Validity was decided with the claim; a revocation landing since then revokes the
            // tokens issued here through their grant.
            guard var grant = try? await store.grant(grantID) else {
                return .oauthError(400, "invalid_grant", "the refresh token has expired or was revoked")
            }
            guard grant.clientID == client.id else {
                try? await store.revokeGrant(grantID, now: current)
                return .oauthError(400, "invalid_grant", "the refresh token was issued to another client")
            }
            // Never more than the grant, and never more than the client is allowed today (its
            // configured scopes may have shrunk since the user consented).
            let allowed = allowedScopes(client)
            let granted = grant.scope.split(separator: " ").map(String.init).filter(allowed.contains)
            var scope = granted
            if let requested = request.form.value("scope"), !requested.trimmingCharacters(in: .whitespaces).isEmpty {
                let wanted = requested.split(separator: " ").map(String.init)
                guard wanted.allSatisfy(granted.contains) else {
                    return .oauthError(400, "invalid_scope", "a refresh cannot widen the granted scope; ask for some of: \(granted.joined(separator: " "))")
                }
                scope = wanted
            }
            guard !scope.isEmpty else {
                return .oauthError(400, "invalid_scope", "none of the granted scopes is still allowed to this client; start a new authorization")
            }
            guard let audience = audience(request.form.value("resource"), grant: grant) else {
                return .oauthError(400, "invalid_target", "the resource was not part of the authorization; ask for one of: \(grant.resource)")
            }
            grant.scope = scope.joined(separator: " ")
            grant.resource = audience
            return await issue(grant: grant, client: client, withRefresh: true)
        }
    }

    private func clientCredentials(_ request: AuthHTTPRequest, client: OAuthClient) async -> AuthHTTPResponse {
        // grantTypes was decided at lookup: only configured clients and clients registered with
        // the initial access token keep client_credentials.
        guard client.isConfidential, client.grantTypes.contains("client_credentials"), client.origin != .metadataDocument else {
            return .oauthError(400, "unauthorized_client",
                               "this client may not use client_credentials (only confidential clients configured for it, or registered with the initial access token)")
        }
        guard let scope = grantedScope(request.form.value("scope"), client: client) else {
            return .oauthError(400, "invalid_scope", "the requested scope is not offered to this client; offered: \(allowedScopes(client).joined(separator: " "))")
        }
        guard let resource = resolveResource(request.form.value("resource")) else {
            return .oauthError(400, "invalid_target", "the resource is not served by this gateway; use one of: \(resources.joined(separator: " "))")
        }
        let current = nowSeconds
        let grant = AuthStore.GrantRecord(grantID: AuthCrypto.randomToken(bytes: 16), clientID: client.id, subject: client.id, kind: "machine",
                                          scope: scope, resource: resource, createdAt: current, expiresAt: current + Int64(config.accessTokenSeconds))
        do { try await store.insertGrant(grant) } catch { return unavailable(error) }
        return await issue(grant: grant, client: client, withRefresh: false)
    }

    /// Mints an access token (and a rotated refresh token) for a grant.
    private func issue(grant: AuthStore.GrantRecord, client: OAuthClient, withRefresh: Bool) async -> AuthHTTPResponse {
        guard let key = keyRing.signingKey() else { return unavailable(StorageError("no signing key")) }
        let current = nowSeconds
        let lifetime = Int64(config.accessTokenSeconds)
        let audiences = grant.resource.split(separator: " ").map { JSONValue.string(String($0)) }
        var claims: JSONObject = [
            "iss": .string(issuer), "sub": .string(grant.subject), "aud": audiences.count == 1 ? audiences[0] : .array(audiences),
            "client_id": .string(client.id), "scope": .string(grant.scope), "iat": .int(Int(current)), "nbf": .int(Int(current)),
            "exp": .int(Int(current + lifetime)), "jti": .string(AuthCrypto.randomToken(bytes: 16)), "gid": .string(grant.grantID),
        ]
        if grant.kind == "machine" { claims["gty"] = "client_credentials" }
        let accessToken: String
        do { accessToken = try JWT.sign(claims: claims, key: key.privateKey, kid: key.kid) } catch { return unavailable(error) }
        var body: JSONObject = ["access_token": .string(accessToken), "token_type": "Bearer", "expires_in": .int(Int(lifetime)), "scope": .string(grant.scope)]
        if withRefresh {
            let refresh = AuthCrypto.randomToken()
            do { try await store.insertRefreshToken(hash: AuthCrypto.hash(refresh), grantID: grant.grantID, expiresAt: grant.expiresAt) } catch { return unavailable(error) }
            body["refresh_token"] = .string(refresh)
        }
        return .json(200, .object(body))
    }

    private func unavailable(_ error: any Error) -> AuthHTTPResponse {
        logger.error("authorization server storage failed", metadata: ["error": "\(error)"])
        return .oauthError(503, "temporarily_unavailable", "the authorization server cannot reach its storage; try again")
    }

    // MARK: Revocation (RFC 7009)

    private func revoke(_ request: AuthHTTPRequest) async -> AuthHTTPResponse {
        let client: OAuthClient
        switch await authenticateClient(request) {
        case .success(let c): client = c
        case .failure(let refusal): return refusal.response
        }
        guard let token = request.form.value("token") else { return .oauthError(400, "invalid_request", "token is required") }
        let current = nowSeconds
        var grantID: String?
        if let gid = try? await store.refreshTokenGrant(hash: AuthCrypto.hash(token)) {
            grantID = gid
        } else if let jwt = try? JWT.decode(token), jwt.issuer == issuer, let kid = jwt.keyID, let key = await keyRing.verificationKey(kid: kid),
                  VerificationKey.p256(key).isValid(signature: jwt.signature, for: jwt.signingInput, algorithm: .es256)
        {
            grantID = jwt.claims["gid"]?.stringValue
        }
        // RFC 7009: unknown tokens and other clients' tokens are answered 200 all the same.
        if let grantID, let grant = try? await store.grant(grantID), grant.clientID == client.id {
            try? await store.revokeGrant(grantID, now: current)
            logger.info("grant revoked", metadata: ["client_id": "\(client.id)"])
        }
        return AuthHTTPResponse(status: 200, headers: AuthHTTPResponse.noStore)
    }

    // MARK: Dynamic client registration (RFC 7591)

    private func register(_ request: AuthHTTPRequest) async -> AuthHTTPResponse {
        guard config.registration.dynamic else { return .oauthError(403, "access_denied", "dynamic client registration is disabled here") }
        // With the operator's initial access token (required when configured), a registration
        // is approved: it may ask for client_credentials. Without it, clients act only for users.
        let approved = config.registration.initialAccessToken != nil
        if let expected = config.registration.initialAccessToken?.value {
            let header = request.headers["authorization"] ?? ""
            guard header.hasPrefix("Bearer "), AuthCrypto.equal(String(header.dropFirst(7)), expected) else {
                return .oauthError(401, "invalid_token", "registration requires the initial access token (Authorization: Bearer ...)",
                                   headers: [("WWW-Authenticate", "Bearer error=\"invalid_token\"")])
            }
        }
        guard request.body.count <= 64 * 1024, let metadata = (try? JSONParser.parse(request.body, maxDepth: 8))?.objectValue else {
            return .oauthError(400, "invalid_client_metadata", "the body must be a JSON object of client metadata (at most 64 KB)")
        }
        let redirects = metadata["redirect_uris"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let grantTypes = metadata["grant_types"]?.arrayValue?.compactMap(\.stringValue) ?? ["authorization_code", "refresh_token"]
        let method = metadata["token_endpoint_auth_method"]?.stringValue ?? "client_secret_basic"
        guard ["none", "client_secret_basic", "client_secret_post"].contains(method) else {
            return .oauthError(400, "invalid_client_metadata", "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post")
        }
        for grant in grantTypes where !["authorization_code", "refresh_token", "client_credentials"].contains(grant) {
            return .oauthError(400, "invalid_client_metadata", "grant type '\(grant)' is not supported (implicit and password grants are not offered)")
        }
        if !approved, let grant = grantTypes.first(where: { !OAuthClients.selfServiceGrants.contains($0) }) {
            return .oauthError(400, "invalid_client_metadata",
                               "grant type '\(grant)' cannot be self-registered: clients registered without an initial access token may only use "
                                   + "authorization_code and refresh_token. Ask the operator to configure the client "
                                   + "(spec.auth.authorizationServer.clients) or to issue an initial access token (registration.initialAccessToken)")
        }
        guard grantTypes.contains("authorization_code") || grantTypes.contains("client_credentials") else {
            return .oauthError(400, "invalid_client_metadata", "grant_types must include authorization_code (or, with the initial access token, client_credentials)")
        }
        if grantTypes.contains("client_credentials"), method == "none" {
            return .oauthError(400, "invalid_client_metadata", "client_credentials needs a confidential client")
        }
        if let responseTypes = metadata["response_types"]?.arrayValue?.compactMap(\.stringValue), responseTypes.contains(where: { $0 != "code" }) {
            return .oauthError(400, "invalid_client_metadata", "only the response type 'code' is supported")
        }
        if grantTypes.contains("authorization_code") {
            guard !redirects.isEmpty else { return .oauthError(400, "invalid_redirect_uri", "redirect_uris is required for the authorization code grant") }
            for uri in redirects {
                if let problem = Self.redirectProblem(uri) { return .oauthError(400, "invalid_redirect_uri", "\(uri): \(problem)") }
            }
        }
        if let scope = metadata["scope"]?.stringValue, !scope.split(separator: " ").allSatisfy({ config.scopes.contains(String($0)) }) {
            return .oauthError(400, "invalid_client_metadata", "scope may only name offered scopes: \(config.scopes.joined(separator: " "))")
        }
        if metadata["scope"] != nil, metadata["scope"]?.stringValue == nil {
            return .oauthError(400, "invalid_client_metadata", "scope must be a string of space-separated scopes")
        }
        let clientID = AuthCrypto.randomToken(bytes: 16)
        let secret = method == "none" ? nil : AuthCrypto.randomToken()
        var stored: JSONObject = ["redirect_uris": .array(redirects.map(JSONValue.string)), "grant_types": .array(grantTypes.map(JSONValue.string)),
                                  "token_endpoint_auth_method": .string(method), "response_types": ["code"]]
        if let name = metadata["client_name"]?.stringValue { stored["client_name"] = .string(String(name.prefix(200))) }
        if let scope = metadata["scope"]?.stringValue { stored["scope"] = .string(scope) }
        let current = nowSeconds
        var record = stored
        if approved { record[OAuthClients.approvedMarker] = true }
        do {
            try await store.insertClient(.init(clientID: clientID, secretHash: secret.map(AuthCrypto.hash), metadata: JSONWriter.string(.object(record)),
                                               createdAt: current))
        } catch { return unavailable(error) }
        var answer = stored
        answer["client_id"] = .string(clientID)
        answer["client_id_issued_at"] = .int(Int(current))
        if let secret {
            answer["client_secret"] = .string(secret)
            answer["client_secret_expires_at"] = 0
        }
        logger.info("client registered", metadata: ["client_id": "\(clientID)", "name": "\(stored["client_name"]?.stringValue ?? "")"])
        return .json(201, .object(answer))
    }

    /// Redirect URIs: https, or http on a loopback host (native apps), or a private-use scheme;
    /// never a fragment.
    static func redirectProblem(_ uri: String) -> String? {
        guard let url = URLComponents(string: uri), let scheme = url.scheme else { return "not an absolute URI" }
        if url.fragment != nil { return "must not contain a fragment" }
        switch scheme {
        case "https": return url.host?.isEmpty == false ? nil : "has no host"
        case "http": return ["localhost", "127.0.0.1", "[::1]", "::1"].contains(url.host ?? "") ? nil : "http is only allowed for loopback hosts"
        case "javascript", "data", "file", "vbscript": return "scheme \(scheme) is not allowed"
        default: return scheme.contains(".") ? nil : "custom schemes must be reverse-domain names (com.example.app:/callback)"
        }
    }

    // MARK: Pages

    func page(status: Int, title: String, message: String) -> AuthHTTPResponse {
        html(status: status, "<h1>\(escape(title))</h1><p>\(escape(message))</p>")
    }

    func loginPage(client: OAuthClient, pending: Pending, sealed: String, csrf: String, error: String?, status: Int = 200) -> AuthHTTPResponse {
        let host = URLComponents(string: pending.redirectURI)?.host ?? pending.redirectURI
        let name = client.name ?? client.id
        var body = "<h1>Sign in to allow access</h1>"
        body += "<p><strong>\(escape(name))</strong> wants to use the MCP servers at <code>\(escape(pending.resource))</code>"
        body += " with the scope <code>\(escape(pending.scope))</code>.</p>"
        body += "<p>After you decide, you will be sent to <strong>\(escape(host))</strong>.</p>"
        if client.origin == .metadataDocument { body += "<p>Client identity: <code>\(escape(client.id))</code></p>" }
        if let error { body += "<p class=\"error\" role=\"alert\">\(escape(error))</p>" }
        if let subject = pending.subject { body += "<p>Signed in as <strong>\(escape(subject))</strong>.</p>" }
        let credentials = pending.subject != nil ? "" : """
            <label>Username <input name="username" autocomplete="username" required></label>
            <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
            """
        body += """
            <form method="post" action="/oauth/authorize">
            <input type="hidden" name="request" value="\(escape(sealed))">
            <input type="hidden" name="csrf" value="\(escape(csrf))">
            \(credentials)
            <button name="decision" value="allow">Allow</button>
            <button name="decision" value="deny" formnovalidate>Deny</button>
            </form>
            """
        return html(status: status, body)
    }

    func html(status: Int, _ body: String) -> AuthHTTPResponse {
        let document = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Gatehouse sign-in</title>
            <style>body{font-family:sans-serif;max-width:32rem;margin:3rem auto}label{display:block;margin:.5rem 0}.error{color:#a00}</style>
            </head><body>\(body)</body></html>
            """
        return AuthHTTPResponse(status: status, headers: [
            ("Content-Type", "text/html; charset=utf-8"),
            ("X-Frame-Options", "DENY"),
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Content-Type-Options", "nosniff"),
        ] + AuthHTTPResponse.noStore, body: Array(document.utf8))
    }

    func escape(_ text: String) -> String {
        var out = ""
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }
}
