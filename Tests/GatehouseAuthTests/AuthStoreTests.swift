import Foundation
import Logging
import Testing

@testable import GatehouseAuth

/// The store's single-use rules on a real SQLite file (PostgreSQL runs the same statements in
/// the replicas e2e test).
/// Runs `body` with a store on a new SQLite file (migrated twice: migrations are idempotent),
/// removed afterwards.
func withTemporaryStore(_ body: (AuthStore) async throws -> Void) async throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("gh-store-\(UUID().uuidString).db").path
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    let store = try await AuthStore.open(.sqlite(path: path), logger: Logger(label: "test"))
    try await store.migrate()
    try await store.migrate()
    try await body(store)
    await store.close()
}

@Suite struct AuthStoreTests {
    func withStore(_ body: (AuthStore) async throws -> Void) async throws { try await withTemporaryStore(body) }

    func grant(_ id: String) -> AuthStore.GrantRecord {
        .init(grantID: id, clientID: "c", subject: "alice", kind: "user", scope: "mcp", resource: "http://x/mcp", createdAt: 1, expiresAt: 10_000, revokedAt: nil)
    }

    @Test func codesAreSingleUseEvenUnderConcurrency() async throws {
        try await withStore { store in
            try await store.insertGrant(grant("g1"))
            try await store.insertCode(hash: "h1", .init(grantID: "g1", redirectURI: "http://127.0.0.1/cb", challenge: "c", expiresAt: 100))
            let outcomes = await withTaskGroup(of: AuthStore.CodeOutcome?.self) { group in
                for _ in 0..<8 { group.addTask { try? await store.consumeCode(hash: "h1", now: 5) } }
                var all: [AuthStore.CodeOutcome?] = []
                for await o in group { all.append(o) }
                return all
            }
            let valid = outcomes.filter { if case .valid = $0 { true } else { false } }.count
            let replayed = outcomes.filter { if case .replayed(let g) = $0 { g == "g1" } else { false } }.count
            #expect(valid == 1 && replayed == 7)
            if case .unknown = try await store.consumeCode(hash: "nope", now: 5) {} else { Issue.record("an unknown code must be unknown") }
        }
    }

    @Test func refreshTokensRotateOnceAndGrantsRevoke() async throws {
        try await withStore { store in
            try await store.insertGrant(grant("g2"))
            try await store.insertRefreshToken(hash: "r1", grantID: "g2", expiresAt: 1000)
            #expect(try await store.useRefreshToken(hash: "r1", now: 2) == .valid(grantID: "g2", expiresAt: 1000))
            #expect(try await store.useRefreshToken(hash: "r1", now: 3) == .reused(grantID: "g2"))
            #expect(try await store.grant("g2")?.revokedAt == nil)
            try await store.revokeGrant("g2", now: 4)
            #expect(try await store.grant("g2")?.revokedAt == 4)
            // Tokens of a revoked grant can no longer be claimed, even unused ones.
            try await store.insertRefreshToken(hash: "r2", grantID: "g2", expiresAt: 1000)
            #expect(try await store.useRefreshToken(hash: "r2", now: 5) == .revoked)
            try await store.insertCode(hash: "c2", .init(grantID: "g2", redirectURI: "x", challenge: "c", expiresAt: 100))
            if case .valid = try await store.consumeCode(hash: "c2", now: 5) { Issue.record("a revoked grant's code must not be valid") }
        }
    }

    @Test func apiKeysAreFoundByHashAndRevokedOnce() async throws {
        try await withStore { store in
            let key = AuthStore.APIKeyRecord(id: "key_1", keyHash: AuthCrypto.hash("ghk_secret"), name: "ci", owner: "team", scopes: ["mcp", "x"],
                                             createdAt: 1, expiresAt: nil, revokedAt: nil)
            try await store.insertAPIKey(key)
            #expect(try await store.apiKey(hash: AuthCrypto.hash("ghk_secret")) == key)
            #expect(try await store.apiKey(hash: AuthCrypto.hash("ghk_other")) == nil)
            #expect(try await store.revokeAPIKey(id: "key_1", now: 9))
            #expect(try await !store.revokeAPIKey(id: "key_1", now: 10))
            #expect(try await store.apiKeys().first?.revokedAt == 9)
        }
    }
}
