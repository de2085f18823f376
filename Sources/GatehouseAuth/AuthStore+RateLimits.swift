import Foundation

/// Token buckets shared by replicas (`spec.rateLimits[].shared`), PostgreSQL only.
///
/// One bucket per row, in micro-tokens; PostgreSQL's clock is the only clock, so replicas with
/// skewed clocks still refill one bucket at one rate. A take is one function call that locks
/// the row (`FOR UPDATE`), refills it, and takes a lease of tokens only if all of it is there.
extension AuthStore {
    static let rateLimitMigrations = [
        "CREATE TABLE IF NOT EXISTS gh_rate_buckets (key TEXT PRIMARY KEY, micro_tokens BIGINT NOT NULL, updated_us BIGINT NOT NULL)",
        """
        CREATE OR REPLACE FUNCTION gh_take_tokens(p_key TEXT, p_burst BIGINT, p_rate BIGINT, p_lease BIGINT) RETURNS BIGINT AS $$
        DECLARE
          now_us BIGINT := (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT;
          cur BIGINT;
          last BIGINT;
        BEGIN
          INSERT INTO gh_rate_buckets (key, micro_tokens, updated_us) VALUES (p_key, p_burst, now_us) ON CONFLICT (key) DO NOTHING;
          SELECT micro_tokens, updated_us INTO cur, last FROM gh_rate_buckets WHERE key = p_key FOR UPDATE;
          cur := LEAST(p_burst::NUMERIC, cur + GREATEST(now_us - last, 0)::NUMERIC * p_rate / 1000000)::BIGINT;
          IF cur >= p_lease THEN
            UPDATE gh_rate_buckets SET micro_tokens = cur - p_lease, updated_us = now_us WHERE key = p_key;
            RETURN -1;
          END IF;
          UPDATE gh_rate_buckets SET micro_tokens = cur, updated_us = now_us WHERE key = p_key;
          RETURN cur;
        END $$ LANGUAGE plpgsql
        """,
    ]

    /// True when buckets can be shared (the store is PostgreSQL).
    public var canShareRateLimits: Bool { database is PostgresDatabase }

    /// Takes `lease` tokens from the shared bucket `key` (capacity `burst`, refilled at `rate`
    /// per second). Returns nil when granted, else the seconds until the lease would be there.
    public func takeSharedTokens(key: String, burst: Int, rate: Double, lease: Int) async throws -> Double? {
        let micro = 1_000_000.0
        let rows = try await database.query("SELECT gh_take_tokens(?, ?, ?, ?)", [
            .text(key), .int(Int64(burst) * 1_000_000), .int(Int64((rate * micro).rounded(.up))), .int(Int64(lease) * 1_000_000),
        ])
        guard let available = rows.first?.first?.int else { throw StorageError("the shared rate limit query returned nothing") }
        if available < 0 { return nil }
        return max(0.001, (Double(lease) * micro - Double(available)) / (rate * micro))
    }

    /// Drops buckets untouched for `olderThanSeconds` (they would be full again anyway).
    public func sweepSharedBuckets(olderThanSeconds: Double) async {
        _ = try? await database.query(
            "DELETE FROM gh_rate_buckets WHERE updated_us < (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT - ?",
            [.int(Int64(olderThanSeconds * 1_000_000))])
    }
}
