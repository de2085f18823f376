import Foundation

/// Tool definitions seen from upstream servers and the operators' decisions on them
/// (docs/security.md "Tool pinning"). One row per definition (server, tool, digest), so every
/// version ever seen can be shown and diffed, on any replica.
///
/// States: `pending` (seen, not decided), `approved` (the pin; at most one per tool is current:
/// approving another version marks the previous one `superseded`), `rejected`, `superseded`.
/// `last_seen` moves when a gateway first sees that definition as the tool's current one, so
/// the newest `last_seen` of a tool is its current definition; an approval names the digest it
/// approves and fails when that is no longer the current one.
extension AuthStore {
    static let toolPinMigrations = [
        """
        CREATE TABLE IF NOT EXISTS gh_tool_versions (server TEXT NOT NULL, tool TEXT NOT NULL, digest TEXT NOT NULL, body_digest TEXT NOT NULL, \
        definition TEXT NOT NULL, findings TEXT NOT NULL, state TEXT NOT NULL, renamed_from TEXT, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, \
        decided_by TEXT, decided_at BIGINT, changed_at BIGINT NOT NULL, PRIMARY KEY (server, tool, digest))
        """,
        "CREATE INDEX IF NOT EXISTS gh_tool_versions_changed ON gh_tool_versions (changed_at)",
    ]

    public struct ToolVersionRecord: Sendable, Equatable {
        public enum State: String, Sendable { case pending, approved, rejected, superseded }

        public var server: String
        public var tool: String
        public var digest: String
        public var bodyDigest: String
        /// The canonical JSON of the pinned fields.
        public var definition: String
        /// The scanner's findings, as a JSON array.
        public var findings: String
        public var state: State
        public var renamedFrom: String?
        /// Milliseconds since 1970.
        public var firstSeen: Int64
        public var lastSeen: Int64
        public var decidedBy: String?
        public var decidedAt: Int64?
        public var changedAt: Int64

        public init(server: String, tool: String, digest: String, bodyDigest: String, definition: String, findings: String, state: State = .pending,
                    renamedFrom: String? = nil, firstSeen: Int64, lastSeen: Int64, decidedBy: String? = nil, decidedAt: Int64? = nil, changedAt: Int64)
        {
            self.server = server
            self.tool = tool
            self.digest = digest
            self.bodyDigest = bodyDigest
            self.definition = definition
            self.findings = findings
            self.state = state
            self.renamedFrom = renamedFrom
            self.firstSeen = firstSeen
            self.lastSeen = lastSeen
            self.decidedBy = decidedBy
            self.decidedAt = decidedAt
            self.changedAt = changedAt
        }
    }

    static let toolVersionColumns = "server, tool, digest, body_digest, definition, findings, state, renamed_from, first_seen, last_seen, decided_by, decided_at, changed_at"

    static func toolVersion(_ r: [SQLValue]) -> ToolVersionRecord? {
        guard r.count == 13, let server = r[0].string, let tool = r[1].string, let digest = r[2].string, let body = r[3].string,
              let definition = r[4].string, let findings = r[5].string, let state = r[6].string.flatMap(ToolVersionRecord.State.init(rawValue:))
        else { return nil }
        return ToolVersionRecord(server: server, tool: tool, digest: digest, bodyDigest: body, definition: definition, findings: findings, state: state,
                                 renamedFrom: r[7].string, firstSeen: r[8].int ?? 0, lastSeen: r[9].int ?? 0, decidedBy: r[10].string,
                                 decidedAt: r[11].int, changedAt: r[12].int ?? 0)
    }

    /// Records that each record is its tool's current definition: inserted when new, else its
    /// `last_seen` moves; returns the stored rows (with any decision made before). A server's
    /// first list can hold thousands: one statement per `batchSize` rows.
    public func observeToolVersions(_ records: [ToolVersionRecord]) async throws -> [ToolVersionRecord] {
        var stored: [ToolVersionRecord] = []
        stored.reserveCapacity(records.count)
        for start in stride(from: 0, to: records.count, by: Self.batchSize) {
            let batch = records[start..<min(records.count, start + Self.batchSize)]
            var binds: [SQLValue] = []
            binds.reserveCapacity(batch.count * 10)
            for record in batch {
                binds += [.text(record.server), .text(record.tool), .text(record.digest), .text(record.bodyDigest), .text(record.definition),
                          .text(record.findings), SQLValue(record.renamedFrom), .int(record.firstSeen), .int(record.lastSeen), .int(record.changedAt)]
            }
            let values = Array(repeating: "(?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, NULL, NULL, ?)", count: batch.count).joined(separator: ", ")
            let rows = try await database.query(
                """
                INSERT INTO gh_tool_versions (\(Self.toolVersionColumns)) VALUES \(values) \
                ON CONFLICT (server, tool, digest) DO UPDATE SET last_seen = excluded.last_seen RETURNING \(Self.toolVersionColumns)
                """, binds)
            stored += rows.compactMap(Self.toolVersion)
        }
        return stored
    }

    static let batchSize = 200

    /// Approves pending versions of `server` by digest (automatic pins of tools seen for the
    /// first time): versions someone decided already are left as they are.
    public func approvePendingToolVersions(server: String, digests: [String], by: String, now: Int64) async throws -> [ToolVersionRecord] {
        var decided: [ToolVersionRecord] = []
        for start in stride(from: 0, to: digests.count, by: Self.batchSize) {
            let batch = digests[start..<min(digests.count, start + Self.batchSize)]
            let marks = Array(repeating: "?", count: batch.count).joined(separator: ", ")
            let rows = try await database.query(
                """
                UPDATE gh_tool_versions SET state = 'approved', decided_by = ?, decided_at = ?, changed_at = ? \
                WHERE server = ? AND state = 'pending' AND digest IN (\(marks)) AND NOT EXISTS (SELECT 1 FROM gh_tool_versions AS other \
                WHERE other.server = gh_tool_versions.server AND other.tool = gh_tool_versions.tool AND other.state <> 'pending') \
                RETURNING \(Self.toolVersionColumns)
                """,
                [.text(by), .int(now), .int(now), .text(server)] + batch.map(SQLValue.text))
            decided += rows.compactMap(Self.toolVersion)
        }
        return decided
    }

    /// Drops undecided and superseded versions of a tool but the `keep` newest: a server that
    /// changes a definition again and again must not grow the store without bound. Approved and
    /// rejected versions stay (a rejected definition that comes back stays rejected).
    public func pruneToolVersions(server: String, tool: String, keep: Int) async throws {
        _ = try await database.query(
            """
            DELETE FROM gh_tool_versions WHERE server = ? AND tool = ? AND state IN ('pending', 'superseded') AND digest NOT IN \
            (SELECT digest FROM gh_tool_versions WHERE server = ? AND tool = ? ORDER BY last_seen DESC LIMIT ?)
            """,
            [.text(server), .text(tool), .text(server), .text(tool), .int(Int64(keep))])
    }

    /// Drops every version of the tools of `server` that have no decided version, but the
    /// `keep` most recently seen tools.
    public func pruneUndecidedTools(server: String, keep: Int) async throws {
        _ = try await database.query(
            """
            DELETE FROM gh_tool_versions WHERE server = ? AND tool IN (SELECT tool FROM gh_tool_versions WHERE server = ? GROUP BY tool \
            HAVING SUM(CASE WHEN state = 'pending' THEN 0 ELSE 1 END) = 0 ORDER BY MAX(last_seen) DESC LIMIT ? OFFSET ?)
            """,
            [.text(server), .text(server), .int(1 << 40), .int(Int64(keep))])
    }

    /// Every version of every tool of `server` (all servers when nil).
    public func toolVersions(server: String? = nil, tool: String? = nil) async throws -> [ToolVersionRecord] {
        var sql = "SELECT \(Self.toolVersionColumns) FROM gh_tool_versions"
        var binds: [SQLValue] = []
        if let server {
            sql += " WHERE server = ?"
            binds.append(.text(server))
            if let tool {
                sql += " AND tool = ?"
                binds.append(.text(tool))
            }
        }
        return try await database.query(sql + " ORDER BY server, tool, last_seen", binds).compactMap(Self.toolVersion)
    }

    /// Versions whose state or sighting changed at or after `since` (milliseconds).
    public func toolVersionsChanged(since: Int64) async throws -> [ToolVersionRecord] {
        try await database.query("SELECT \(Self.toolVersionColumns) FROM gh_tool_versions WHERE changed_at >= ? OR last_seen >= ?", [.int(since), .int(since)])
            .compactMap(Self.toolVersion)
    }

    public enum ToolDecisionOutcome: Sendable, Equatable {
        case decided(ToolVersionRecord)
        /// No version of that tool has that digest.
        case unknown
        /// The digest is not the tool's current definition any more: look at the diff again.
        case stale(current: String)
    }

    /// Approves or rejects the tool's current definition, named by its digest. With
    /// `onlyIfPending`, a version someone already decided is left as it is (automatic pins).
    public func decideToolVersion(server: String, tool: String, digest: String, approve: Bool, by: String, now: Int64,
                                  onlyIfPending: Bool = false) async throws -> ToolDecisionOutcome
    {
        let state = approve ? "approved" : "rejected"
        // Deciding again what is decided changes nothing (the first decider and time stay).
        if let same = try await toolVersions(server: server, tool: tool).first(where: { $0.digest == digest }), same.state.rawValue == state {
            return .decided(same)
        }
        let rows = try await database.query(
            """
            UPDATE gh_tool_versions SET state = ?, decided_by = ?, decided_at = ?, changed_at = ? \
            WHERE server = ? AND tool = ? AND digest = ?\(onlyIfPending ? " AND state = 'pending'" : "") \
            AND last_seen = (SELECT MAX(last_seen) FROM gh_tool_versions WHERE server = ? AND tool = ?) RETURNING \(Self.toolVersionColumns)
            """,
            [.text(state), .text(by), .int(now), .int(now), .text(server), .text(tool), .text(digest), .text(server), .text(tool)])
        if let decided = rows.first.flatMap(Self.toolVersion) {
            if approve {
                _ = try await database.query(
                    "UPDATE gh_tool_versions SET state = 'superseded', changed_at = ? WHERE server = ? AND tool = ? AND state = 'approved' AND digest <> ?",
                    [.int(now), .text(server), .text(tool), .text(digest)])
            }
            return .decided(decided)
        }
        let versions = try await toolVersions(server: server, tool: tool)
        guard versions.contains(where: { $0.digest == digest }) else { return .unknown }
        if onlyIfPending, let same = versions.first(where: { $0.digest == digest }), same.state != .pending { return .decided(same) }
        return .stale(current: versions.max { $0.lastSeen < $1.lastSeen }?.digest ?? "")
    }
}
