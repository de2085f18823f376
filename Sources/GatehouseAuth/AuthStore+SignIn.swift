import Foundation

/// What the sign-in page needs shared between replicas: single-use sign-in forms and password
/// sign-in attempt counters. Plain SQL both SQLite and PostgreSQL run (`INSERT ... ON CONFLICT`
/// with `RETURNING`), so one statement decides, whichever replica is asked.
extension AuthStore {
    static let signInMigrations = [
        "CREATE TABLE IF NOT EXISTS gh_used_forms (form_hash TEXT PRIMARY KEY, expires_at BIGINT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS gh_used_forms_expiry ON gh_used_forms (expires_at)",
        "CREATE TABLE IF NOT EXISTS gh_signin_attempts (key TEXT PRIMARY KEY, attempts BIGINT NOT NULL, last_attempt_at BIGINT NOT NULL, locked_until BIGINT NOT NULL)",
    ]

    /// Records that a sign-in form (by its nonce's hash) was submitted. True for the first
    /// submission only; every later one (on any replica) gets false. Expired rows are swept.
    public func claimForm(hash: String, expiresAt: Int64, now: Int64) async throws -> Bool {
        _ = try await database.query("DELETE FROM gh_used_forms WHERE expires_at < ?", [.int(now)])
        let rows = try await database.query(
            "INSERT INTO gh_used_forms (form_hash, expires_at) VALUES (?, ?) ON CONFLICT (form_hash) DO NOTHING RETURNING form_hash",
            [.text(hash), .int(expiresAt)])
        return !rows.isEmpty
    }

    /// One sign-in attempt as counted under a key (an account or a client address).
    public struct SignInAttempt: Sendable, Equatable {
        /// The attempt's number among the recent ones (failures before it, plus one).
        public var number: Int
        /// While in the future, the key is locked and this attempt was not counted.
        public var lockedUntil: Int64
    }

    /// Counts an attempt under `key` before the password is checked, so concurrent guesses
    /// see each other: one statement, whichever replica runs it. A locked key is not counted
    /// (the answer's `lockedUntil` is in the future); a count whose last attempt is older than
    /// `resetAfter` seconds starts again at 1.
    public func beginSignInAttempt(key: String, now: Int64, resetAfter: Int64) async throws -> SignInAttempt {
        _ = try await database.query("DELETE FROM gh_signin_attempts WHERE last_attempt_at < ? AND locked_until < ?", [.int(now - resetAfter), .int(now)])
        let rows = try await database.query(
            """
            INSERT INTO gh_signin_attempts (key, attempts, last_attempt_at, locked_until) VALUES (?, 1, ?, 0) ON CONFLICT (key) DO UPDATE SET             attempts = CASE WHEN gh_signin_attempts.locked_until > ? THEN gh_signin_attempts.attempts             WHEN gh_signin_attempts.last_attempt_at < ? THEN 1 ELSE gh_signin_attempts.attempts + 1 END,             last_attempt_at = CASE WHEN gh_signin_attempts.locked_until > ? THEN gh_signin_attempts.last_attempt_at ELSE excluded.last_attempt_at END             RETURNING attempts, locked_until
            """,
            [.text(key), .int(now), .int(now), .int(now - resetAfter), .int(now)])
        guard let row = rows.first, let attempts = row[0].int, let lockedUntil = row[1].int else {
            throw StorageError("counting a sign-in attempt returned nothing")
        }
        return SignInAttempt(number: Int(attempts), lockedUntil: lockedUntil)
    }

    /// Locks a key until `until` (never shortening a longer lock).
    public func lockSignIn(key: String, until: Int64) async throws {
        _ = try await database.query("UPDATE gh_signin_attempts SET locked_until = ? WHERE key = ? AND locked_until < ?",
                                     [.int(until), .text(key), .int(until)])
    }

    /// Takes back one counted attempt (it succeeded, or another key refused it), and the lock
    /// it set (`lockedUntil`), if that is still the key's lock.
    public func forgiveSignInAttempt(key: String, lockedUntil: Int64? = nil) async throws {
        _ = try await database.query(
            """
            UPDATE gh_signin_attempts SET attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,             locked_until = CASE WHEN locked_until = ? THEN 0 ELSE locked_until END WHERE key = ?
            """,
            [.int(lockedUntil ?? -1), .text(key)])
    }

    /// Forgets a key (an account after its successful sign-in).
    public func clearSignInAttempts(key: String) async throws {
        _ = try await database.query("DELETE FROM gh_signin_attempts WHERE key = ?", [.text(key)])
    }
}
