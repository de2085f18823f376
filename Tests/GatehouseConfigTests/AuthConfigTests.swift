import Testing
@testable import GatehouseConfig

@Suite("spec.auth and spec.storage")
struct AuthConfigTests {
    let loader = ConfigLoader(environment: ["HASH": "pbkdf2-sha256$210000$salt$hash", "SECRET": "0123456789abcdef0123", "PG": "postgres://u:p@127.0.0.1:5432/gh"].get)

    func yaml(_ auth: String, endpoint: String = "", storage: String = "") -> String {
        """
        apiVersion: gatehouse.dev/v1alpha1
        kind: Gateway
        metadata: {name: g}
        spec:
          listen: {port: 9000}
        \(storage)
          auth:
        \(auth)
          endpoints:
            - path: /mcp
              servers: [demo]
        \(endpoint)
        ---
        apiVersion: gatehouse.dev/v1alpha1
        kind: MCPServer
        metadata: {name: demo}
        spec:
          http: {url: "http://127.0.0.1:9001/mcp"}
        """
    }

    @Test("an auth block makes endpoints required by default and derives resource URLs")
    func defaults() throws {
        let config = try loader.load(yaml: yaml("    issuers: [{issuer: 'https://idp.example'}]"), file: "g.yaml")
        #expect(config.endpoints[0].auth.mode == .required)
        #expect(config.resourceURL(for: config.endpoints[0]) == "http://127.0.0.1:9000/mcp")
        #expect(config.auth?.issuers.first?.algorithms == ["RS256", "ES256", "EdDSA"])
        #expect(config.storage == .sqlite(path: "gatehouse.db"))
        #expect(config.needsStore, "API keys are on by default, so the store is needed")
    }

    @Test("the embedded authorization server with users, clients and postgres storage")
    func authorizationServer() throws {
        let text = yaml("""
                publicURL: https://mcp.example.com/
                cacheSeconds: 5
                authorizationServer:
                  users: [{username: alice, passwordHash: {valueFrom: {env: HASH}}}]
                  clients:
                    - {clientID: bot, clientSecret: {valueFrom: {env: SECRET}}, grantTypes: [client_credentials], scopes: [mcp]}
                  registration: {initialAccessToken: {valueFrom: {env: SECRET}}}
            """, endpoint: "      auth: {mode: required, scopes: [mcp]}",
            storage: "  storage: {postgres: {url: {valueFrom: {env: PG}}}}")
        let config = try loader.load(yaml: text, file: "g.yaml")
        #expect(config.publicBaseURL == "https://mcp.example.com")
        #expect(config.resourceURL(for: config.endpoints[0]) == "https://mcp.example.com/mcp")
        #expect(config.auth?.authorizationServer?.users.first?.username == "alice")
        #expect(config.auth?.authorizationServer?.clients.first?.clientSecret?.value == "0123456789abcdef0123")
        #expect(config.auth?.authorizationServer?.registration.initialAccessToken != nil)
        #expect(config.endpoints[0].auth.scopes == ["mcp"])
        if case .postgres(let url) = config.storage { #expect(url.value.hasPrefix("postgres://")) } else { Issue.record("postgres storage expected") }
        #expect("\(config.storage)".contains("redacted"), "the URL with its password never prints")
    }

    @Test("mistakes are reported with positions and hints")
    func diagnostics() {
        let text = yaml("""
                authorizationServer:
                  users: [{username: bob, passwordHash: hunter2}]
                  clients: [{clientID: m, grantTypes: [client_credentials, password]}]
                issuers: [{issuer: not-a-url, algorithms: [HS256]}]
                clockSkew: 5
            """, endpoint: "      auth: {mode: sometimes}")
        #expect(throws: ConfigError.self) { try loader.load(yaml: text, file: "g.yaml") }
        do {
            _ = try loader.load(yaml: text, file: "g.yaml")
        } catch {
            let all = error.description
            #expect(all.contains("not a gatehouse password hash") && all.contains("gatehouse hash-password"))
            #expect(all.contains("unsupported grant type 'password'"))
            #expect(all.contains("uses client_credentials but has no clientSecret"))
            #expect(all.contains("invalid issuer 'not-a-url'"))
            #expect(all.contains("unsupported algorithm 'HS256'"))
            #expect(all.contains("did you mean 'clockSkewSeconds'"))
            #expect(all.contains("unknown auth mode 'sometimes'"))
        }
    }

    @Test("an endpoint cannot require auth without spec.auth")
    func requiredWithoutAuth() {
        let text = """
            apiVersion: gatehouse.dev/v1alpha1
            kind: Gateway
            metadata: {name: g}
            spec:
              endpoints: [{path: /mcp, servers: [demo], auth: {mode: required}}]
            ---
            apiVersion: gatehouse.dev/v1alpha1
            kind: MCPServer
            metadata: {name: demo}
            spec: {http: {url: "http://127.0.0.1:9001/mcp"}}
            """
        do {
            _ = try loader.load(yaml: text, file: "g.yaml")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("requires auth but spec.auth is not set"))
        }
    }
}

extension Dictionary where Key == String, Value == String {
    var get: @Sendable (String) -> String? {
        let copy = self
        return { copy[$0] }
    }
}
