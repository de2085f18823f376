import Foundation
import Yams

/// `spec.auth`, `spec.storage` and upstream client credentials.
extension DocumentReader {
    mutating func readStorage(_ node: Node) -> Storage? {
        guard var fields = Fields(node, path: "spec.storage", reader: &self) else { return nil }
        let sqliteNode = fields.take("sqlite")
        let postgresNode = fields.take("postgres")
        fields.finish(reader: &self)
        if sqliteNode != nil, postgresNode != nil {
            report(node, "spec.storage has either `sqlite` or `postgres`, not both")
            return nil
        }
        if let sqliteNode, var sqlite = Fields(sqliteNode, path: "spec.storage.sqlite", reader: &self) {
            let path = sqlite.string("path", reader: &self)?.value ?? "gatehouse.db"
            sqlite.finish(reader: &self)
            return .sqlite(path: path)
        }
        if let postgresNode, var postgres = Fields(postgresNode, path: "spec.storage.postgres", reader: &self) {
            let urlNode = postgres.take("url")
            postgres.finish(reader: &self)
            guard let urlNode else {
                report(postgresNode, "missing required key 'url' in spec.storage.postgres",
                       hint: "url: {valueFrom: {env: GATEHOUSE_POSTGRES_URL}} with postgres://user:password@host:5432/database")
                return nil
            }
            guard let url = readSecret(urlNode, path: "spec.storage.postgres.url") else { return nil }
            guard let parsed = URLComponents(string: url.value), ["postgres", "postgresql"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                report(urlNode, "spec.storage.postgres.url is not a postgres:// URL", hint: "use postgres://user:password@host:5432/database")
                return nil
            }
            return .postgres(url: url)
        }
        report(node, "spec.storage needs `sqlite: {path: ...}` or `postgres: {url: ...}`")
        return nil
    }

    mutating func readAuth(_ node: Node) -> Auth? {
        guard var fields = Fields(node, path: "spec.auth", reader: &self) else { return nil }
        var auth = Auth()
        if let url = fields.string("publicURL", reader: &self) {
            if let parsed = URL(string: url.value), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil, parsed.query == nil {
                auth.publicURL = url.value
            } else {
                report(url.node, "invalid spec.auth.publicURL '\(url.value)'", hint: "use the base URL clients reach the gateway at, e.g. https://mcp.example.com")
            }
        }
        if let v = fields.int("clockSkewSeconds", range: 0...600, reader: &self) { auth.clockSkewSeconds = v }
        if let v = fields.int("cacheSeconds", range: 0...3600, reader: &self) { auth.cacheSeconds = v }
        if let v = fields.bool("apiKeys", reader: &self) { auth.apiKeys = v }
        if let v = fields.double("jwksMinRefreshSeconds", range: 0...3600, reader: &self) { auth.jwksMinRefreshSeconds = v }
        if let v = fields.int("jwksCacheSeconds", range: 1...(30 * 86400), reader: &self) { auth.jwksCacheSeconds = v }
        if let issuersNode = fields.take("issuers") {
            if case .sequence(let items) = issuersNode {
                for item in items {
                    if let issuer = readIssuer(item) { auth.issuers.append(issuer) }
                }
            } else {
                report(issuersNode, "spec.auth.issuers must be a list of {issuer, jwksURL, audiences}")
            }
        }
        if let asNode = fields.take("authorizationServer") { auth.authorizationServer = readAuthorizationServer(asNode) }
        fields.finish(reader: &self)
        return auth
    }

    mutating func readIssuer(_ node: Node) -> Auth.Issuer? {
        guard var fields = Fields(node, path: "spec.auth.issuers[]", reader: &self) else { return nil }
        defer { fields.finish(reader: &self) }
        let issuerValue = fields.string("issuer", required: true, reader: &self)
        if let issuerValue, !Self.isHTTPURL(issuerValue.value) {
            report(issuerValue.node, "invalid issuer '\(issuerValue.value)'", hint: "use the issuer's URL exactly as its tokens carry it in `iss`")
        }
        var issuer = Auth.Issuer(issuer: issuerValue?.value ?? "")
        if let url = fields.string("jwksURL", reader: &self) {
            if Self.isHTTPURL(url.value) { issuer.jwksURL = url.value } else { report(url.node, "invalid jwksURL '\(url.value)'") }
        }
        if let audiences = fields.stringList("audiences", reader: &self) { issuer.audiences = audiences }
        if let algorithmsValue = fields.stringList("algorithms", reader: &self) {
            let known = ["RS256", "ES256", "EdDSA"]
            for algorithm in algorithmsValue where !known.contains(algorithm) {
                report(node, "unsupported algorithm '\(algorithm)' in spec.auth.issuers[].algorithms", hint: "supported: \(known.joined(separator: ", "))")
            }
            issuer.algorithms = algorithmsValue.filter(known.contains)
        }
        if let introspectionNode = fields.take("introspection"), var intro = Fields(introspectionNode, path: "spec.auth.issuers[].introspection", reader: &self) {
            let url = intro.string("url", required: true, reader: &self)
            let clientID = intro.string("clientID", required: true, reader: &self)
            let secretNode = intro.take("clientSecret")
            intro.finish(reader: &self)
            if secretNode == nil { report(introspectionNode, "missing required key 'clientSecret' in introspection") }
            if let url, let clientID, let secretNode, let secret = readSecret(secretNode, path: "spec.auth.issuers[].introspection.clientSecret") {
                issuer.introspection = Auth.Introspection(url: url.value, clientID: clientID.value, clientSecret: secret)
            }
        }
        guard let issuerValue, Self.isHTTPURL(issuerValue.value) else { return nil }
        return issuer
    }

    mutating func readAuthorizationServer(_ node: Node) -> Auth.AuthorizationServer? {
        guard var fields = Fields(node, path: "spec.auth.authorizationServer", reader: &self) else { return nil }
        var server = Auth.AuthorizationServer()
        if let v = fields.int("accessTokenSeconds", range: 30...86400, reader: &self) { server.accessTokenSeconds = v }
        if let v = fields.int("refreshTokenSeconds", range: 60...(365 * 86400), reader: &self) { server.refreshTokenSeconds = v }
        if let v = fields.int("codeSeconds", range: 5...600, reader: &self) { server.codeSeconds = v }
        if let v = fields.int("keyRotationDays", range: 1...365, reader: &self) { server.keyRotationDays = v }
        if let v = fields.stringList("scopes", reader: &self) { server.scopes = v }
        if let usersNode = fields.take("users") {
            if case .sequence(let items) = usersNode {
                for item in items {
                    guard var user = Fields(item, path: "spec.auth.authorizationServer.users[]", reader: &self) else { continue }
                    let name = user.string("username", required: true, reader: &self)
                    let hashNode = user.take("passwordHash")
                    user.finish(reader: &self)
                    guard let name else { continue }
                    guard let hashNode else {
                        report(item, "missing required key 'passwordHash' for user '\(name.value)'", hint: "make one with: gatehouse hash-password")
                        continue
                    }
                    guard let hash = readSecret(hashNode, path: "spec.auth.authorizationServer.users[].passwordHash") else { continue }
                    if !hash.value.hasPrefix("pbkdf2-sha256$") || hash.value.split(separator: "$").count != 4 {
                        report(hashNode, "the password hash of '\(name.value)' is not a gatehouse password hash",
                               hint: "make one with: gatehouse hash-password (never put a plain password here)")
                        continue
                    }
                    if server.users.contains(where: { $0.username == name.value }) {
                        report(name.node, "user '\(name.value)' is listed twice")
                    }
                    server.users.append(Auth.LocalUser(username: name.value, passwordHash: hash))
                }
            } else {
                report(usersNode, "spec.auth.authorizationServer.users must be a list of {username, passwordHash}")
            }
        }
        if let clientsNode = fields.take("clients") {
            if case .sequence(let items) = clientsNode {
                for item in items {
                    if let client = readStaticClient(item) {
                        if server.clients.contains(where: { $0.clientID == client.clientID }) {
                            report(item, "client '\(client.clientID)' is listed twice")
                        }
                        server.clients.append(client)
                    }
                }
            } else {
                report(clientsNode, "spec.auth.authorizationServer.clients must be a list of {clientID, clientSecret, grantTypes, scopes, redirectURIs}")
            }
        }
        if let loginNode = fields.take("login"), var login = Fields(loginNode, path: "spec.auth.authorizationServer.login", reader: &self) {
            if let oidcNode = login.take("oidc"), var oidc = Fields(oidcNode, path: "spec.auth.authorizationServer.login.oidc", reader: &self) {
                let issuer = oidc.string("issuer", required: true, reader: &self)
                let clientID = oidc.string("clientID", required: true, reader: &self)
                let secretNode = oidc.take("clientSecret")
                let scopes = oidc.stringList("scopes", reader: &self)
                let subjectClaim = oidc.string("subjectClaim", reader: &self)
                oidc.finish(reader: &self)
                if secretNode == nil { report(oidcNode, "missing required key 'clientSecret' in spec.auth.authorizationServer.login.oidc") }
                if let issuer, !Self.isHTTPURL(issuer.value) { report(issuer.node, "invalid issuer '\(issuer.value)'", hint: "use the provider's issuer URL") }
                if let issuer, Self.isHTTPURL(issuer.value), let clientID, let secretNode,
                   let secret = readSecret(secretNode, path: "spec.auth.authorizationServer.login.oidc.clientSecret")
                {
                    var config = Auth.OIDCLogin(issuer: issuer.value, clientID: clientID.value, clientSecret: secret)
                    if let scopes {
                        if !scopes.contains("openid") { report(oidcNode, "login.oidc.scopes must include openid") }
                        config.scopes = scopes
                    }
                    if let subjectClaim { config.subjectClaim = subjectClaim.value }
                    server.login = .oidc(config)
                }
            } else {
                report(loginNode, "spec.auth.authorizationServer.login needs `oidc: {issuer, clientID, clientSecret}`")
            }
            login.finish(reader: &self)
        }
        if let registrationNode = fields.take("registration"), var registration = Fields(registrationNode, path: "spec.auth.authorizationServer.registration", reader: &self) {
            if let v = registration.bool("dynamic", reader: &self) { server.registration.dynamic = v }
            if let tokenNode = registration.take("initialAccessToken") {
                server.registration.initialAccessToken = readSecret(tokenNode, path: "spec.auth.authorizationServer.registration.initialAccessToken")
            }
            if let v = registration.bool("clientMetadataDocuments", reader: &self) { server.registration.clientMetadataDocuments = v }
            if let v = registration.bool("allowPrivateAddresses", reader: &self) { server.registration.allowPrivateAddresses = v }
            registration.finish(reader: &self)
        }
        fields.finish(reader: &self)
        return server
    }

    mutating func readStaticClient(_ node: Node) -> Auth.StaticClient? {
        guard var fields = Fields(node, path: "spec.auth.authorizationServer.clients[]", reader: &self) else { return nil }
        defer { fields.finish(reader: &self) }
        guard let id = fields.string("clientID", required: true, reader: &self) else { return nil }
        var client = Auth.StaticClient(clientID: id.value)
        if let secretNode = fields.take("clientSecret") {
            client.clientSecret = readSecret(secretNode, path: "spec.auth.authorizationServer.clients[].clientSecret")
            if let secret = client.clientSecret, secret.value.utf8.count < 16 {
                report(secretNode, "the secret of client '\(id.value)' is shorter than 16 bytes", hint: "generate one with: openssl rand -base64 32")
            }
        }
        if let grants = fields.stringList("grantTypes", reader: &self) {
            let known = ["authorization_code", "refresh_token", "client_credentials"]
            for grant in grants where !known.contains(grant) {
                report(node, "unsupported grant type '\(grant)' for client '\(id.value)'",
                       hint: "supported: \(known.joined(separator: ", ")) (implicit and password grants are not offered)")
            }
            client.grantTypes = grants.filter(known.contains)
        }
        if client.grantTypes.contains("client_credentials"), client.clientSecret == nil {
            report(node, "client '\(id.value)' uses client_credentials but has no clientSecret", hint: "machine clients must be confidential")
        }
        if let scopes = fields.stringList("scopes", reader: &self) { client.scopes = scopes }
        if let uris = fields.stringList("redirectURIs", reader: &self) { client.redirectURIs = uris }
        if let name = fields.string("name", reader: &self) { client.name = name.value }
        return client
    }

    mutating func readClientCredentials(_ node: Node) -> ServerConfig.ClientCredentials? {
        guard var fields = Fields(node, path: "spec.http.clientCredentials", reader: &self) else { return nil }
        defer { fields.finish(reader: &self) }
        let tokenURL = fields.string("tokenURL", required: true, reader: &self)
        let clientID = fields.string("clientID", required: true, reader: &self)
        let secretNode = fields.take("clientSecret")
        if secretNode == nil { report(node, "missing required key 'clientSecret' in spec.http.clientCredentials") }
        let scopes = fields.stringList("scopes", reader: &self)
        let resource = fields.string("resource", reader: &self)
        guard let tokenURL, let clientID, let secretNode, let secret = readSecret(secretNode, path: "spec.http.clientCredentials.clientSecret") else { return nil }
        guard Self.isHTTPURL(tokenURL.value) else {
            report(tokenURL.node, "invalid tokenURL '\(tokenURL.value)'")
            return nil
        }
        var credentials = ServerConfig.ClientCredentials(tokenURL: tokenURL.value, clientID: clientID.value, clientSecret: secret)
        credentials.scopes = scopes ?? []
        credentials.resource = resource?.value
        return credentials
    }

    static func isHTTPURL(_ text: String) -> Bool {
        guard let url = URL(string: text), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else { return false }
        return true
    }
}

extension Fields {
    mutating func bool(_ key: String, reader: inout DocumentReader) -> Bool? {
        guard let value = take(key) else { return nil }
        guard let bool = value.bool else {
            reader.report(value, "\(path).\(key) must be true or false")
            return nil
        }
        return bool
    }
}
