import Foundation
import GatehouseConfig
import Logging

/// Everything auth keeps: signing keys, registered clients, grants with their codes and refresh
/// tokens, API keys. One interface over SQLite (the default) and PostgreSQL (replicas).
///
/// Secrets are stored only as SHA-256 hashes (codes, refresh tokens, API keys, client secrets),
/// except the AS's signing keys, which must be usable. Single-use rules (codes, refresh tokens)
/// are one `UPDATE ... WHERE used_at IS NULL RETURNING` statement each, so two replicas asked at
/// the same instant cannot both succeed.
public final class AuthStore: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) { self.database = database }

    /// Opens (without migrating) the store a config names.
    public static func open(_ storage: Storage, logger: Logger) async throws -> AuthStore {
        switch storage {
        case .sqlite(let path):
            return AuthStore(database: try await SQLiteDatabase.open(path: path, logger: logger))
        case .postgres(let url):
            return AuthStore(database: try PostgresDatabase(url: url.value, logger: logger))
        }
    }

    /// Runs the database's background work until cancelled (PostgreSQL's pool).
    public func run() async { await database.run() }
    public func close() async { await database.close() }

    /// Version 1 of the schema. New versions append statements; all are idempotent.
    static let migrations = [
        "CREATE TABLE IF NOT EXISTS gh_signing_keys (kid TEXT PRIMARY KEY, private_key TEXT NOT NULL, created_at BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS gh_clients (client_id TEXT PRIMARY KEY, secret_hash TEXT, metadata TEXT NOT NULL, created_at BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS gh_grants (grant_id TEXT PRIMARY KEY, client_id TEXT NOT NULL, subject TEXT NOT NULL, kind TEXT NOT NULL, scope TEXT NOT NULL, resource TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, revoked_at BIGINT)",
        "CREATE TABLE IF NOT EXISTS gh_codes (code_hash TEXT PRIMARY KEY, grant_id TEXT NOT NULL, redirect_uri TEXT NOT NULL, challenge TEXT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT)",
        "CREATE TABLE IF NOT EXISTS gh_refresh_tokens (token_hash TEXT PRIMARY KEY, grant_id TEXT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT)",
        "CREATE INDEX IF NOT EXISTS gh_refresh_tokens_grant ON gh_refresh_tokens (grant_id)",
        "CREATE TABLE IF NOT EXISTS gh_api_keys (id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL, owner TEXT NOT NULL, scopes TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT, revoked_at BIGINT)",
    ]

    public func migrate() async throws {
        try await database.migrate(Self.migrations + Self.signInMigrations + Self.toolPinMigrations + (canShareRateLimits ? Self.rateLimitMigrations : []))
    }

    // MARK: Signing keys

    public struct SigningKeyRecord: Sendable {
        public var kid: String
        public var privateKey: String
        public var createdAt: Int64
    }

    public func signingKeys() async throws -> [SigningKeyRecord] {
        try await database.query("SELECT kid, private_key, created_at FROM gh_signing_keys ORDER BY created_at", []).compactMap { row in
            guard let kid = row[0].string, let key = row[1].string, let created = row[2].int else { return nil }
            return SigningKeyRecord(kid: kid, privateKey: key, createdAt: created)
        }
    }

    public func insertSigningKey(_ record: SigningKeyRecord) async throws {
        _ = try await database.query("INSERT INTO gh_signing_keys (kid, private_key, created_at) VALUES (?, ?, ?)",
                                     [.text(record.kid), .text(record.privateKey), .int(record.createdAt)])
    }

    public func deleteSigningKeys(olderThan cutoff: Int64) async throws {
        _ = try await database.query("DELETE FROM gh_signing_keys WHERE created_at < ?", [.int(cutoff)])
    }

    // MARK: Clients (registered dynamically or from metadata documents)

    public struct ClientRecord: Sendable {
        public var clientID: String
        public var secretHash: String?
        /// The registration metadata as JSON text.
        public var metadata: String
        public var createdAt: Int64
    }

    public func client(_ id: String) async throws -> ClientRecord? {
        let rows = try await database.query("SELECT client_id, secret_hash, metadata, created_at FROM gh_clients WHERE client_id = ?", [.text(id)])
        guard let row = rows.first, let clientID = row[0].string, let metadata = row[2].string else { return nil }
        return ClientRecord(clientID: clientID, secretHash: row[1].string, metadata: metadata, createdAt: row[3].int ?? 0)
    }

    public func insertClient(_ record: ClientRecord) async throws {
        _ = try await database.query("INSERT INTO gh_clients (client_id, secret_hash, metadata, created_at) VALUES (?, ?, ?, ?)",
                                     [.text(record.clientID), SQLValue(record.secretHash), .text(record.metadata), .int(record.createdAt)])
    }

    // MARK: Grants: one authorization (a login's consent, or a client_credentials token)

    public struct GrantRecord: Sendable, Equatable {
        public var grantID: String
        public var clientID: String
        public var subject: String
        /// "user" or "machine".
        public var kind: String
        public var scope: String
        public var resource: String
        public var createdAt: Int64
        public var expiresAt: Int64
        public var revokedAt: Int64?
    }

    public func insertGrant(_ grant: GrantRecord) async throws {
        _ = try await database.query(
            "INSERT INTO gh_grants (grant_id, client_id, subject, kind, scope, resource, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            [.text(grant.grantID), .text(grant.clientID), .text(grant.subject), .text(grant.kind), .text(grant.scope), .text(grant.resource),
             .int(grant.createdAt), .int(grant.expiresAt)])
    }

    public func grant(_ id: String) async throws -> GrantRecord? {
        let rows = try await database.query(
            "SELECT grant_id, client_id, subject, kind, scope, resource, created_at, expires_at, revoked_at FROM gh_grants WHERE grant_id = ?", [.text(id)])
        guard let r = rows.first, let gid = r[0].string, let client = r[1].string, let subject = r[2].string, let kind = r[3].string,
              let scope = r[4].string, let resource = r[5].string
        else { return nil }
        return GrantRecord(grantID: gid, clientID: client, subject: subject, kind: kind, scope: scope, resource: resource,
                           createdAt: r[6].int ?? 0, expiresAt: r[7].int ?? 0, revokedAt: r[8].int)
    }

    /// Revokes a grant: its refresh tokens stop working at once, its access tokens within the
    /// resource server's cache time.
    public func revokeGrant(_ id: String, now: Int64) async throws {
        _ = try await database.query("UPDATE gh_grants SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL", [.int(now), .text(id)])
    }

    // MARK: Authorization codes

    public struct CodeRecord: Sendable {
        public var grantID: String
        public var redirectURI: String
        public var challenge: String
        public var expiresAt: Int64
    }

    public func insertCode(hash: String, _ code: CodeRecord) async throws {
        _ = try await database.query("INSERT INTO gh_codes (code_hash, grant_id, redirect_uri, challenge, expires_at, used_at) VALUES (?, ?, ?, ?, ?, NULL)",
                                     [.text(hash), .text(code.grantID), .text(code.redirectURI), .text(code.challenge), .int(code.expiresAt)])
    }

    public enum CodeOutcome: Sendable {
        case valid(CodeRecord)
        /// Used before: the caller must revoke what it issued.
        case replayed(grantID: String)
        case unknown
    }

    /// Marks a code used; exactly one caller ever gets `.valid`.
    public func consumeCode(hash: String, now: Int64) async throws -> CodeOutcome {
        let rows = try await database.query(
            """
            UPDATE gh_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL \
            AND grant_id IN (SELECT grant_id FROM gh_grants WHERE revoked_at IS NULL) RETURNING grant_id, redirect_uri, challenge, expires_at
            """,
            [.int(now), .text(hash)])
        if let r = rows.first, let gid = r[0].string, let redirect = r[1].string, let challenge = r[2].string, let expires = r[3].int {
            return .valid(CodeRecord(grantID: gid, redirectURI: redirect, challenge: challenge, expiresAt: expires))
        }
        let used = try await database.query("SELECT grant_id FROM gh_codes WHERE code_hash = ?", [.text(hash)])
        if let gid = used.first?[0].string { return .replayed(grantID: gid) }
        return .unknown
    }

    // MARK: Refresh tokens

    public func insertRefreshToken(hash: String, grantID: String, expiresAt: Int64) async throws {
        _ = try await database.query("INSERT INTO gh_refresh_tokens (token_hash, grant_id, expires_at, used_at) VALUES (?, ?, ?, NULL)",
                                     [.text(hash), .text(grantID), .int(expiresAt)])
    }

    public enum RefreshOutcome: Sendable, Equatable {
        /// This caller, and no other, may rotate the token. Decided in one statement together
        /// with the grant's validity, so a revocation that lands afterwards revokes what this
        /// caller issues next rather than failing the caller half-way.
        case valid(grantID: String, expiresAt: Int64)
        /// Presented before: a stolen copy or a replay. The caller revokes the grant.
        case reused(grantID: String)
        /// Unused, but its grant is revoked or expired.
        case revoked
        case unknown
    }

    /// Marks a refresh token used; exactly one caller ever gets `.valid` (rotation).
    public func useRefreshToken(hash: String, now: Int64) async throws -> RefreshOutcome {
        let rows = try await database.query(
            """
            UPDATE gh_refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? \
            AND grant_id IN (SELECT grant_id FROM gh_grants WHERE revoked_at IS NULL AND expires_at > ?) RETURNING grant_id, expires_at
            """,
            [.int(now), .text(hash), .int(now), .int(now)])
        if let r = rows.first, let gid = r[0].string, let expires = r[1].int { return .valid(grantID: gid, expiresAt: expires) }
        let found = try await database.query("SELECT grant_id, used_at FROM gh_refresh_tokens WHERE token_hash = ?", [.text(hash)])
        guard let row = found.first, let gid = row[0].string else { return .unknown }
        return row[1] == .null ? .revoked : .reused(grantID: gid)
    }

    public func refreshTokenGrant(hash: String) async throws -> String? {
        try await database.query("SELECT grant_id FROM gh_refresh_tokens WHERE token_hash = ?", [.text(hash)]).first?[0].string
    }

    // MARK: API keys

    public struct APIKeyRecord: Sendable, Equatable {
        public var id: String
        public var keyHash: String
        public var name: String
        public var owner: String
        public var scopes: [String]
        public var createdAt: Int64
        public var expiresAt: Int64?
        public var revokedAt: Int64?

        public init(id: String, keyHash: String, name: String, owner: String, scopes: [String], createdAt: Int64, expiresAt: Int64?, revokedAt: Int64?) {
            self.id = id
            self.keyHash = keyHash
            self.name = name
            self.owner = owner
            self.scopes = scopes
            self.createdAt = createdAt
            self.expiresAt = expiresAt
            self.revokedAt = revokedAt
        }
    }

    public func insertAPIKey(_ key: APIKeyRecord) async throws {
        _ = try await database.query(
            "INSERT INTO gh_api_keys (id, key_hash, name, owner, scopes, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            [.text(key.id), .text(key.keyHash), .text(key.name), .text(key.owner), .text(key.scopes.joined(separator: " ")),
             .int(key.createdAt), SQLValue(key.expiresAt)])
    }

    static func apiKey(_ r: [SQLValue]) -> APIKeyRecord? {
        guard let id = r[0].string, let hash = r[1].string, let name = r[2].string, let owner = r[3].string, let scopes = r[4].string else { return nil }
        return APIKeyRecord(id: id, keyHash: hash, name: name, owner: owner, scopes: scopes.split(separator: " ").map(String.init),
                            createdAt: r[5].int ?? 0, expiresAt: r[6].int, revokedAt: r[7].int)
    }

    public func apiKey(hash: String) async throws -> APIKeyRecord? {
        try await database.query("SELECT id, key_hash, name, owner, scopes, created_at, expires_at, revoked_at FROM gh_api_keys WHERE key_hash = ?",
                                 [.text(hash)]).first.flatMap(Self.apiKey)
    }

    public func apiKeys() async throws -> [APIKeyRecord] {
        try await database.query("SELECT id, key_hash, name, owner, scopes, created_at, expires_at, revoked_at FROM gh_api_keys ORDER BY created_at", [])
            .compactMap(Self.apiKey)
    }

    /// True when a key with that id existed and was not revoked yet.
    public func revokeAPIKey(id: String, now: Int64) async throws -> Bool {
        let rows = try await database.query("UPDATE gh_api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING id", [.int(now), .text(id)])
        return !rows.isEmpty
    }
}
