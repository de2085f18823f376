import AsyncHTTPClient
import Foundation
import GatehouseConfig
import Logging
import MCPWire
import Synchronization
import Testing

@testable import GatehouseAuth

/// The embedded authorization server driven through `handle`, on a real SQLite store: who may
/// register what, which scopes and audiences tokens get, single-use sign-in forms, sign-in
/// throttling.
@Suite struct AuthorizationServerTests {
    static let issuer = "http://gw.test"
    static let mcp = "http://gw.test/mcp"
    static let other = "http://gw.test/other"
    static let callback = "http://127.0.0.1:9/callback"
    static let password = "correct horse battery"
    static let botSecret = "ci-bot-secret-0123456789"
    static let aliceHash = try! PasswordHash.make(password)

    final class Clock: Sendable {
        let current = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        var now: Date { current.withLock { $0 } }
        func advance(_ seconds: TimeInterval) { current.withLock { $0 += seconds } }
    }

    struct Harness {
        let server: AuthorizationServer
        let store: AuthStore
        let clock: Clock
    }

    static func config() -> Auth.AuthorizationServer {
        var config = Auth.AuthorizationServer()
        config.scopes = ["mcp", "admin"]
        config.users = [Auth.LocalUser(username: "alice", passwordHash: Secret(aliceHash))]
        var bot = Auth.StaticClient(clientID: "ci-bot")
        bot.clientSecret = Secret(botSecret)
        bot.grantTypes = ["client_credentials"]
        bot.scopes = ["mcp"]
        config.clients = [bot]
        return config
    }

    func withServer(_ config: Auth.AuthorizationServer = Self.config(), _ body: (Harness) async throws -> Void) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gh-as-\(UUID().uuidString).db").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let logger = Logger(label: "test")
        let store = try await AuthStore.open(.sqlite(path: path), logger: logger)
        try await store.migrate()
        let clock = Clock()
        let ring = KeyRing(store: store, rotationDays: 30, accessTokenSeconds: config.accessTokenSeconds, logger: logger)
        try await ring.prepare(now: Int64(clock.now.timeIntervalSince1970))
        let fetcher = HTTPClient(eventLoopGroupProvider: .singleton)
        let server = AuthorizationServer(config: config, issuer: Self.issuer, resources: [Self.mcp, Self.other], store: store, keyRing: ring,
                                         fetcher: fetcher, logger: logger, now: { clock.now })
        do {
            try await body(Harness(server: server, store: store, clock: clock))
        } catch {
            try? await fetcher.shutdown()
            await store.close()
            throw error
        }
        try await fetcher.shutdown()
        await store.close()
    }

    // MARK: HTTP helpers

    static func json(_ response: AuthHTTPResponse) -> JSONObject { (try? JSONParser.parse(response.body))?.objectValue ?? [:] }
    static func header(_ response: AuthHTTPResponse, _ name: String) -> String? { response.headers.first { $0.0.lowercased() == name }?.1 }
    static func html(_ response: AuthHTTPResponse) -> String { String(decoding: response.body, as: UTF8.self) }

    static func register(_ h: Harness, _ metadata: JSONValue, bearer: String? = nil) async -> AuthHTTPResponse {
        var headers = ["content-type": "application/json"]
        if let bearer { headers["authorization"] = "Bearer \(bearer)" }
        return await h.server.handle(AuthHTTPRequest(method: "POST", path: "/oauth/register", query: [], form: [], body: JSONWriter.bytes(metadata),
                                                     headers: headers))
    }

    static func token(_ h: Harness, _ form: [(String, String)], basic: (String, String)? = nil) async -> AuthHTTPResponse {
        var headers = ["content-type": "application/x-www-form-urlencoded"]
        if let (id, secret) = basic { headers["authorization"] = "Basic " + Data("\(id):\(secret)".utf8).base64EncodedString() }
        return await h.server.handle(AuthHTTPRequest(method: "POST", path: "/oauth/token", query: [], form: form, body: [], headers: headers))
    }

    static func registerPublicClient(_ h: Harness) async throws -> String {
        let answer = await register(h, ["redirect_uris": [.string(callback)], "token_endpoint_auth_method": "none", "client_name": "test app"])
        #expect(answer.status == 201, "\(json(answer))")
        return try #require(json(answer)["client_id"]?.stringValue)
    }

    struct LoginForm {
        var request: String
        var csrf: String
        var verifier: String
    }

    static func hidden(_ name: String, in page: String) -> String? {
        guard let range = page.range(of: "name=\"\(name)\" value=\"") else { return nil }
        let rest = page[range.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }

    /// GET /oauth/authorize; the sign-in form of the page.
    static func loginForm(_ h: Harness, clientID: String, scope: String? = nil, resource: String? = nil) async throws -> LoginForm {
        let verifier = AuthCrypto.randomToken()
        var query = [("response_type", "code"), ("client_id", clientID), ("redirect_uri", callback), ("state", "s1"),
                     ("code_challenge", AuthCrypto.pkceChallenge(verifier)), ("code_challenge_method", "S256")]
        if let scope { query.append(("scope", scope)) }
        if let resource { query.append(("resource", resource)) }
        let page = await h.server.handle(AuthHTTPRequest(method: "GET", path: "/oauth/authorize", query: query, form: [], body: [], headers: [:]))
        #expect(page.status == 200, "\(html(page))")
        let cookie = try #require(header(page, "set-cookie"))
        let csrf = try #require(cookie.split(separator: ";").first.map { String($0.dropFirst("gh_csrf=".count)) })
        return LoginForm(request: try #require(hidden("request", in: html(page))), csrf: csrf, verifier: verifier)
    }

    static func submit(_ h: Harness, _ form: LoginForm, username: String = "alice", password: String = password, decision: String = "allow",
                       from address: String = "192.0.2.10") async -> AuthHTTPResponse
    {
        await h.server.handle(AuthHTTPRequest(
            method: "POST", path: "/oauth/authorize", query: [],
            form: [("request", form.request), ("csrf", form.csrf), ("username", username), ("password", password), ("decision", decision)],
            body: [], headers: ["cookie": "gh_csrf=\(form.csrf)"], clientAddress: address))
    }

    /// The form the page answered with again (after a failed sign-in), same browser.
    static func nextForm(_ response: AuthHTTPResponse, after form: LoginForm) throws -> LoginForm {
        LoginForm(request: try #require(hidden("request", in: html(response))), csrf: form.csrf, verifier: form.verifier)
    }

    static func code(_ response: AuthHTTPResponse) throws -> String {
        #expect(response.status == 302, "\(html(response))")
        let location = try #require(header(response, "location"))
        return try #require(URLComponents(string: location)?.queryItems?.first { $0.name == "code" }?.value)
    }

    static func claims(_ response: AuthHTTPResponse) throws -> JSONObject {
        #expect(response.status == 200, "\(json(response))")
        let token = try #require(json(response)["access_token"]?.stringValue)
        return try JWT.decode(token).claims
    }

    // MARK: 1. Registration, grants, scopes, audiences

    /// The reported attack: anonymous registration of a client_credentials client.
    @Test func anonymousRegistrationCannotCreateMachineClients() async throws {
        try await withServer { h in
            for metadata: JSONValue in [
                ["grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"],
                ["grant_types": ["authorization_code", "refresh_token", "client_credentials"], "redirect_uris": [.string(Self.callback)],
                 "token_endpoint_auth_method": "client_secret_post"],
            ] {
                let answer = await Self.register(h, metadata)
                #expect(answer.status == 400)
                #expect(Self.json(answer)["error"]?.stringValue == "invalid_client_metadata")
                #expect(Self.json(answer)["error_description"]?.stringValue?.contains("initial access token") == true)
                #expect(Self.json(answer)["client_secret"] == nil)
            }
            let empty = await Self.register(h, ["grant_types": [], "redirect_uris": [.string(Self.callback)]])
            #expect(empty.status == 400 && Self.json(empty)["error"]?.stringValue == "invalid_client_metadata")
            // The ordinary self-registration of an MCP client still works.
            _ = try await Self.registerPublicClient(h)
        }
    }

    /// Clients registered anonymously by an older version keep only the self-service grants.
    @Test func storedSelfRegisteredClientsLoseClientCredentials() async throws {
        try await withServer { h in
            try await h.store.insertClient(.init(clientID: "legacy", secretHash: AuthCrypto.hash("legacy-secret-0123456789"),
                                                 metadata: #"{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","redirect_uris":[]}"#,
                                                 createdAt: 1))
            let answer = await Self.token(h, [("grant_type", "client_credentials"), ("resource", Self.mcp)], basic: ("legacy", "legacy-secret-0123456789"))
            #expect(answer.status == 400)
            #expect(Self.json(answer)["error"]?.stringValue == "unauthorized_client")
            #expect(Self.json(answer)["access_token"] == nil)
            // A configured machine client still gets its token, with its configured scope only.
            let bot = await Self.token(h, [("grant_type", "client_credentials"), ("resource", Self.mcp)], basic: ("ci-bot", Self.botSecret))
            #expect(try Self.claims(bot)["scope"]?.stringValue == "mcp")
            let wider = await Self.token(h, [("grant_type", "client_credentials"), ("scope", "mcp admin")], basic: ("ci-bot", Self.botSecret))
            #expect(wider.status == 400 && Self.json(wider)["error"]?.stringValue == "invalid_scope")
        }
    }

    @Test func theInitialAccessTokenApprovesMachineClients() async throws {
        var config = Self.config()
        config.registration.initialAccessToken = Secret("operator-initial-access-token")
        try await withServer(config) { h in
            let metadata: JSONValue = ["grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic", "scope": "mcp"]
            let anonymous = await Self.register(h, metadata)
            #expect(anonymous.status == 401 && Self.json(anonymous)["error"]?.stringValue == "invalid_token")
            let approved = await Self.register(h, metadata, bearer: "operator-initial-access-token")
            #expect(approved.status == 201)
            let id = try #require(Self.json(approved)["client_id"]?.stringValue)
            let secret = try #require(Self.json(approved)["client_secret"]?.stringValue)
            #expect(Self.json(approved)[OAuthClients.approvedMarker] == nil, "the marker is the server's, not part of the answer")
            let token = await Self.token(h, [("grant_type", "client_credentials"), ("resource", Self.mcp)], basic: (id, secret))
            let claims = try Self.claims(token)
            #expect(claims["scope"]?.stringValue == "mcp")
            #expect(claims["aud"]?.stringValue == Self.mcp)
            let wider = await Self.token(h, [("grant_type", "client_credentials"), ("scope", "admin")], basic: (id, secret))
            #expect(wider.status == 400 && Self.json(wider)["error"]?.stringValue == "invalid_scope")
        }
    }

    @Test func tokensAreNarrowedToTheRequestedResourceAndNeverWidened() async throws {
        try await withServer { h in
            let client = try await Self.registerPublicClient(h)
            // Authorized without `resource`: the grant covers both endpoints.
            let form = try await Self.loginForm(h, clientID: client, scope: "mcp")
            let code = try Self.code(await Self.submit(h, form))
            let exchanged = await Self.token(h, [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", Self.callback),
                                                 ("code_verifier", form.verifier), ("client_id", client), ("resource", Self.mcp)])
            #expect(try Self.claims(exchanged)["aud"]?.stringValue == Self.mcp, "the token names only the resource asked for")
            var refreshToken = try #require(Self.json(exchanged)["refresh_token"]?.stringValue)

            let narrowed = await Self.token(h, [("grant_type", "refresh_token"), ("refresh_token", refreshToken), ("client_id", client),
                                                ("resource", Self.other)])
            #expect(try Self.claims(narrowed)["aud"]?.stringValue == Self.other)
            refreshToken = try #require(Self.json(narrowed)["refresh_token"]?.stringValue)

            let elsewhere = await Self.token(h, [("grant_type", "refresh_token"), ("refresh_token", refreshToken), ("client_id", client),
                                                 ("resource", "https://elsewhere.example/mcp")])
            #expect(elsewhere.status == 400 && Self.json(elsewhere)["error"]?.stringValue == "invalid_target")
        }
        try await withServer { h in
            let client = try await Self.registerPublicClient(h)
            let form = try await Self.loginForm(h, clientID: client, scope: "mcp", resource: Self.mcp)
            let code = try Self.code(await Self.submit(h, form))
            let exchanged = await Self.token(h, [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", Self.callback),
                                                 ("code_verifier", form.verifier), ("client_id", client)])
            let refreshToken = try #require(Self.json(exchanged)["refresh_token"]?.stringValue)
            let wider = await Self.token(h, [("grant_type", "refresh_token"), ("refresh_token", refreshToken), ("client_id", client),
                                             ("scope", "mcp admin")])
            #expect(wider.status == 400 && Self.json(wider)["error"]?.stringValue == "invalid_scope")
        }
    }

    // MARK: 4. Single-use sign-in forms

    @Test func aSignInFormWorksOnce() async throws {
        try await withServer { h in
            let client = try await Self.registerPublicClient(h)
            let form = try await Self.loginForm(h, clientID: client)
            _ = try Self.code(await Self.submit(h, form))
            let replay = await Self.submit(h, form)
            #expect(replay.status == 400)
            #expect(Self.header(replay, "location") == nil, "no second code")
            #expect(Self.html(replay).contains("already"))

            let denied = try await Self.loginForm(h, clientID: client)
            #expect(await Self.submit(h, denied, decision: "deny").status == 302)
            #expect(await Self.submit(h, denied).status == 400, "a denied form cannot be replayed into an allow")

            // A failed sign-in answers a fresh form; the failed one is spent.
            let first = try await Self.loginForm(h, clientID: client)
            let wrong = await Self.submit(h, first, password: "wrong")
            #expect(wrong.status == 401)
            let fresh = try Self.nextForm(wrong, after: first)
            #expect(fresh.request != first.request)
            #expect(await Self.submit(h, first).status == 400)
            _ = try Self.code(await Self.submit(h, fresh))
        }
    }

    // MARK: 5. Sign-in throttling

    @Test func failedSignInsLockTheAccountWithBackoff() async throws {
        try await withServer { h in
            let client = try await Self.registerPublicClient(h)
            var form = try await Self.loginForm(h, clientID: client)
            for attempt in 1...5 {
                let answer = await Self.submit(h, form, password: "guess \(attempt)", from: "192.0.2.\(attempt)")
                #expect(answer.status == (attempt < 5 ? 401 : 429), "attempt \(attempt)")
                form = try Self.nextForm(answer, after: form)
            }
            // Locked: even the right password is not checked, from any address.
            let locked = await Self.submit(h, form, from: "198.51.100.7")
            #expect(locked.status == 429)
            #expect(Self.header(locked, "retry-after") == "30")
            #expect(Self.html(locked).contains("Too many failed sign-in attempts"))
            form = try Self.nextForm(locked, after: form)
            h.clock.advance(31)
            _ = try Self.code(await Self.submit(h, form))
            // The success cleared the account's count.
            let after = try await Self.loginForm(h, clientID: client)
            #expect(await Self.submit(h, after, password: "wrong").status == 401)
        }
    }

    @Test func failedSignInsLockTheAddress() async throws {
        try await withServer { h in
            let client = try await Self.registerPublicClient(h)
            var form = try await Self.loginForm(h, clientID: client)
            for attempt in 1...20 {
                let answer = await Self.submit(h, form, username: "user\(attempt)", password: "guess", from: "203.0.113.5")
                #expect(answer.status == (attempt < 20 ? 401 : 429), "attempt \(attempt)")
                form = try Self.nextForm(answer, after: form)
            }
            #expect(await Self.submit(h, form, from: "203.0.113.5").status == 429)
            let elsewhere = try await Self.loginForm(h, clientID: client)
            _ = try Self.code(await Self.submit(h, elsewhere, from: "192.0.2.99"))
        }
    }

    /// An attempt is counted before its password is checked; a success takes it back, lock included.
    @Test func aSuccessfulSignInDoesNotCountAgainstItsAddress() async throws {
        try await withServer { h in
            let client = try await Self.registerPublicClient(h)
            var form = try await Self.loginForm(h, clientID: client)
            for attempt in 1...19 {
                let answer = await Self.submit(h, form, username: "user\(attempt)", password: "guess", from: "203.0.113.6")
                #expect(answer.status == 401, "attempt \(attempt)")
                form = try Self.nextForm(answer, after: form)
            }
            _ = try Self.code(await Self.submit(h, form, from: "203.0.113.6"))  // the 20th attempt: a success
            let again = try await Self.loginForm(h, clientID: client)
            _ = try Self.code(await Self.submit(h, again, from: "203.0.113.6"))
        }
    }
}
