import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseTools
import Logging
import MCPWire
import Synchronization

/// Pinned tool definitions (docs/security.md "Tool pinning"): every tool list the gateway sees
/// from a server with `spec.toolPinning` is checked against the definitions people approved,
/// and in enforce mode what is not approved never reaches a client — not in lists, not as a
/// call.
///
/// Design note: the store (SQLite or PostgreSQL) is the truth, shared by replicas; this keeps,
/// per server, what the store says about each version seen (refreshed every `syncInterval`
/// and at once after a decision made here) and which definition each tool has now. A list
/// whose definitions are all known costs one digest per tool and no database round trip; a
/// definition seen for the first time is written before the list is answered, so a replica
/// that has never seen a change still holds it when another one approved only the old one.
final class ToolPins: Sendable {
    enum Status: String, Sendable {
        /// The current definition is the approved one.
        case approved
        /// A definition other than the approved one.
        case changed
        /// No version of this tool was ever approved.
        case new
        /// New under this name, but equal to an approved tool of another name.
        case renamed
        /// A person rejected this definition.
        case rejected
    }

    struct Version: Sendable {
        var state: AuthStore.ToolVersionRecord.State
        var bodyDigest: String
        var lastSeen: Int64
    }

    struct Current: Sendable {
        var digest: String
        var bodyDigest: String
        var findings: [ScanFinding]
        var renamedFrom: String?
    }

    struct ServerState: Sendable {
        /// tool → digest → what the store says.
        var versions: [String: [String: Version]] = [:]
        /// tool → its definition now, as last seen.
        var current: [String: Current] = [:]
        /// Body digest (all but the name) → a tool that had it approved: how renames are found.
        var approvedBodies: [String: String] = [:]
        var loaded = false
        /// When the whole list was last seen; nil or `stale` after `list_changed`: calls wait for a new listing.
        var listedAt: ContinuousClock.Instant?
        var stale = true
    }

    struct Verdict: Sendable {
        var status: Status
        var visible: Bool
        var digest: String
        var findings: [ScanFinding]
        var renamedFrom: String?
    }

    let store: AuthStore
    let metrics: Metrics
    let logger: Logger
    let scanner = PoisoningScanner()
    let servers = Mutex<[String: ServerState]>([:])
    let refreshing = Mutex<[String: Task<Void, Never>]>([:])
    private let auditLog = Mutex<AuditLog?>(nil)
    let syncedUntil = Mutex<Int64>(0)
    static let syncInterval: Duration = .seconds(2)
    /// Larger names and definitions are not pinned (held in enforce mode): every version seen
    /// is kept in the store, and a server must not be able to grow it without bound.
    static let maxNameBytes = 256
    static let maxDefinitionBytes = 256 * 1024
    /// Undecided versions kept per tool; older ones are dropped when a new one arrives.
    static let maxPendingVersions = 20
    /// The shortest time between two listings a call triggers for a name the server does not list.
    static let relistInterval: Duration = .seconds(2)

    init(store: AuthStore, metrics: Metrics, logger: Logger) {
        self.store = store
        self.metrics = metrics
        self.logger = logger
    }

    /// Where holds and decisions are logged (the policy's decision log, when there is one).
    func useAuditLog(_ audit: AuditLog?) { auditLog.withLock { $0 = audit } }

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// The list methods whose items the scanner reads besides tools.
    static func scannedKind(of method: MCPMethod) -> ScannedKind? {
        switch method {
        case .promptsList: .prompt
        case .resourceTemplatesList: .resourceTemplate
        default: nil
        }
    }

    // MARK: Verdicts

    /// Whether a tool in its current definition reaches clients, by the server's settings.
    static func verdict(_ current: Current, versions: [String: Version], pinning: ServerConfig.ToolPinning) -> Verdict {
        let status: Status
        switch versions[current.digest]?.state {
        case .approved?: status = .approved
        case .rejected?: status = .rejected
        default:
            if versions.values.contains(where: { $0.state == .approved || $0.state == .superseded }) {
                status = .changed
            } else {
                status = current.renamedFrom == nil ? .new : .renamed
            }
        }
        let visible: Bool
        if pinning.mode != .enforce {
            visible = true
        } else {
            switch status {
            case .approved: visible = true
            case .rejected: visible = false
            case .changed: visible = pinning.onChange == .warn && !blocks(current.findings, pinning)
            case .new, .renamed: visible = false  // `onNewTool: allow` approves on first sight, so a new tool still pending is held
            }
        }
        return Verdict(status: status, visible: visible, digest: current.digest, findings: current.findings, renamedFrom: current.renamedFrom)
    }

    static func blocks(_ findings: [ScanFinding], _ pinning: ServerConfig.ToolPinning) -> Bool {
        guard let block = pinning.blockSeverity.flatMap({ FindingSeverity(rawValue: $0.rawValue) }) else { return false }
        return findings.contains { $0.severity >= block }
    }

    /// The tool's verdict now; nil when the gateway has not seen it in a list.
    func verdict(server: ServerConfig, tool: String) -> Verdict? {
        servers.withLock { all -> Verdict? in
            guard let state = all[server.name], let current = state.current[tool] else { return nil }
            return Self.verdict(current, versions: state.versions[tool] ?? [:], pinning: server.toolPinning)
        }
    }

    /// True when a call must wait for a new listing: never listed, `list_changed` seen, or a
    /// name the last listing did not have and that listing is older than `relistInterval`.
    func needsListing(server: String, tool: String) -> Bool {
        servers.withLock { all in
            guard let state = all[server], let listed = state.listedAt, !state.stale else { return true }
            return state.current[tool] == nil && ContinuousClock.now - listed > Self.relistInterval
        }
    }

    /// `notifications/tools/list_changed` from the server: nothing is trusted until listed again.
    func invalidate(server: String) {
        servers.withLock { $0[server, default: ServerState()].stale = true }
    }

    // MARK: Checking lists

    /// The items of a `tools/list` page that may reach the client, in order. `complete` when the
    /// page is the whole list (tools missing from it are gone).
    func check(_ items: [JSONValue], server: ServerConfig, complete: Bool) async -> [JSONValue] {
        let pinning = server.toolPinning
        guard pinning.mode != .off else { return items }
        await loadIfNeeded(server: server.name)
        let definitions = items.map { item -> ToolDefinition? in
            guard let definition = ToolDefinition(item) else { return nil }
            guard definition.name.utf8.count <= Self.maxNameBytes, definition.size <= Self.maxDefinitionBytes else {
                logger.warning("a tool definition too large to pin; it is \(pinning.mode == .enforce ? "held" : "passed unrecorded")", metadata: [
                    "server": "\(server.name)", "tool": "\(definition.name.prefix(64))", "bytes": "\(definition.size)",
                ])
                return nil
            }
            return definition
        }
        let unseen = servers.withLock { all -> [Int] in
            let current = all[server.name]?.current ?? [:]
            var digests: Set<String> = []  // a tool listed twice is recorded once (one statement may not write a row twice)
            return definitions.indices.filter { index in
                guard let definition = definitions[index], current[definition.name]?.digest != definition.digest else { return false }
                return digests.insert(definition.digest).inserted
            }
        }
        if !unseen.isEmpty { await observe(unseen.map { (definitions[$0]!, items[$0]) }, server: server) }
        var kept: [JSONValue] = []
        kept.reserveCapacity(items.count)
        var names: Set<String> = []
        for (item, definition) in zip(items, definitions) {
            guard let definition else {
                if pinning.mode != .enforce { kept.append(item) }  // logged above, or a tool without a name
                continue
            }
            names.insert(definition.name)
            if pinning.mode != .enforce || verdict(server: server, tool: definition.name)?.visible == true { kept.append(item) }
        }
        servers.withLock { all in
            guard complete else { return }
            all[server.name, default: ServerState()].current = all[server.name]?.current.filter { names.contains($0.key) } ?? [:]
            all[server.name]?.listedAt = .now
            all[server.name]?.stale = false
        }
        return kept
    }

    /// Loads what the store knows of the server, once.
    private func loadIfNeeded(server: String) async {
        guard !(servers.withLock { $0[server]?.loaded ?? false }) else { return }
        do {
            let records = try await store.toolVersions(server: server)
            servers.withLock { all in
                var state = all[server] ?? ServerState()
                for record in records { Self.merge(record, into: &state) }
                state.loaded = true
                all[server] = state
            }
        } catch {
            logger.error("cannot read pinned tool definitions", metadata: ["server": "\(server)", "error": "\(error)"])
        }
    }

    static func merge(_ record: AuthStore.ToolVersionRecord, into state: inout ServerState) {
        state.versions[record.tool, default: [:]][record.digest] = Version(state: record.state, bodyDigest: record.bodyDigest, lastSeen: record.lastSeen)
        if record.state == .approved || record.state == .superseded { state.approvedBodies[record.bodyDigest] = record.tool }
    }

    /// Definitions this process has not seen as their tools' current ones: recorded in the
    /// store (in batches), pinned automatically where the settings say so, then reported.
    private func observe(_ batch: [(definition: ToolDefinition, item: JSONValue)], server: ServerConfig) async {
        let pinning = server.toolPinning
        let now = Self.nowMillis()
        let findings = batch.map { scanner.scan($0.item, kind: .tool) }
        let renamedFrom = servers.withLock { all -> [String?] in
            let state = all[server.name] ?? ServerState()
            return batch.map { entry in
                guard state.versions[entry.definition.name] == nil, let from = state.approvedBodies[entry.definition.bodyDigest],
                      from != entry.definition.name
                else { return nil }
                return from
            }
        }
        let records = batch.indices.map { index in
            let definition = batch[index].definition
            return AuthStore.ToolVersionRecord(server: server.name, tool: definition.name, digest: definition.digest, bodyDigest: definition.bodyDigest,
                                               definition: definition.canonicalText, findings: JSONWriter.string(.array(findings[index].map(Self.json))),
                                               renamedFrom: renamedFrom[index], firstSeen: now, lastSeen: now, changedAt: now)
        }
        let stored: [AuthStore.ToolVersionRecord]
        do {
            stored = try await store.observeToolVersions(records)
        } catch {
            // Fail closed: a definition the store did not record stays unknown, so it is held.
            logger.error("cannot record tool definitions; they are held", metadata: ["server": "\(server.name)", "tools": "\(batch.count)", "error": "\(error)"])
            return
        }
        let byDigest = Dictionary(stored.map { ($0.digest, $0) }, uniquingKeysWith: { a, _ in a })
        let previous = servers.withLock { all -> [Verdict?] in
            var state = all[server.name] ?? ServerState()
            defer { all[server.name] = state }
            return batch.indices.map { index in
                let definition = batch[index].definition
                let before = state.current[definition.name].map { Self.verdict($0, versions: state.versions[definition.name] ?? [:], pinning: pinning) }
                guard let row = byDigest[definition.digest] else { return before }
                Self.merge(row, into: &state)
                state.current[definition.name] = Current(digest: definition.digest, bodyDigest: definition.bodyDigest, findings: findings[index],
                                                         renamedFrom: row.renamedFrom ?? renamedFrom[index])
                return before
            }
        }
        await pinFirstSight(batch.indices.filter { index in
            guard byDigest[batch[index].definition.digest]?.state == .pending, !Self.blocks(findings[index], pinning),
                  let status = verdict(server: server, tool: batch[index].definition.name)?.status
            else { return false }
            return (status == .new || status == .renamed) && (pinning.mode == .record || pinning.onNewTool == .allow)
        }.map { batch[$0].definition.digest }, server: server, now: now)
        for index in batch.indices {
            if let verdict = verdict(server: server, tool: batch[index].definition.name) {
                report(batch[index].definition, verdict: verdict, previous: previous[index], server: server)
            }
        }
        await prune(batch.map(\.definition.name), server: server.name)
    }

    /// Keeps at most `maxPendingVersions` undecided versions of each of these tools, in the
    /// store and here.
    private func prune(_ tools: [String], server: String) async {
        let crowded = servers.withLock { all in tools.filter { (all[server]?.versions[$0]?.count ?? 0) > Self.maxPendingVersions } }
        for tool in crowded {
            do {
                try await store.pruneToolVersions(server: server, tool: tool, keep: Self.maxPendingVersions)
                let kept = try await store.toolVersions(server: server, tool: tool)
                servers.withLock { all in
                    all[server]?.versions[tool] = [:]
                    if var state = all[server] {
                        for record in kept { Self.merge(record, into: &state) }
                        all[server] = state
                    }
                }
            } catch {
                logger.warning("cannot prune old tool definitions", metadata: ["server": "\(server)", "tool": "\(tool)", "error": "\(error)"])
            }
        }
    }

    /// Trust on first use: `onNewTool: allow` (and record mode) pin a tool seen for the first time.
    private func pinFirstSight(_ digests: [String], server: ServerConfig, now: Int64) async {
        guard !digests.isEmpty else { return }
        let by = server.toolPinning.mode == .record ? "gatehouse (record mode)" : "gatehouse (onNewTool: allow)"
        do {
            let decided = try await store.approvePendingToolVersions(server: server.name, digests: digests, by: by, now: now)
            servers.withLock { all in
                var state = all[server.name] ?? ServerState()
                for record in decided { Self.merge(record, into: &state) }
                all[server.name] = state
            }
        } catch {
            logger.error("cannot pin new tool definitions; they are held", metadata: ["server": "\(server.name)", "error": "\(error)"])
        }
    }

    private func report(_ definition: ToolDefinition, verdict: Verdict, previous: Verdict?, server: ServerConfig) {
        let kind: String = switch verdict.status {
        case .approved: previous == nil ? "seen" : "restored"
        case .changed: "changed"
        case .new: "new"
        case .renamed: "renamed"
        case .rejected: "rejected"
        }
        if kind != "seen" { metrics.increment("gatehouse_tool_changes_total", [server.name, kind]) }
        for finding in verdict.findings { metrics.increment("gatehouse_tool_findings_total", [server.name, finding.severity.rawValue]) }
        var metadata: Logger.Metadata = ["server": "\(server.name)", "tool": "\(definition.name)", "digest": "\(definition.digest)",
                                         "status": "\(verdict.status.rawValue)", "visible": "\(verdict.visible)"]
        if let from = verdict.renamedFrom { metadata["renamed_from"] = "\(from)" }
        if !verdict.findings.isEmpty { metadata["findings"] = "\(verdict.findings.map { "\($0.rule)(\($0.severity.rawValue))@\($0.location)" }.joined(separator: ", "))" }
        if kind == "seen" {
            logger.debug("tool definition checked", metadata: metadata)
            return
        }
        logger.notice(verdict.visible ? "tool definition not approved; passed (\(server.toolPinning.mode.rawValue) mode)" : "tool definition held until approved",
                      metadata: metadata)
        var reasons = ["status: \(verdict.status.rawValue)", "digest: \(definition.digest)"]
        if let from = verdict.renamedFrom { reasons.append("renamed from: \(from)") }
        reasons += verdict.findings.map { "finding: \($0.rule) (\($0.severity.rawValue)) at \($0.location)" }
        audit(server: server.name, tool: definition.name, decision: verdict.visible ? "pass" : "hold", by: nil, reasons: reasons)
    }

    func audit(server: String, tool: String, decision: String, by: String?, reasons: [String]) {
        guard let audit = auditLog.withLock({ $0 }) else { return }
        audit.record(.init(endpoint: "", identity: .init(kind: by == nil ? "gateway" : "operator", subject: by ?? "gatehouse"), method: "tools/list",
                           server: server, target: tool, decision: decision, reasons: reasons, stage: "tool-pin", policyVersion: nil, evaluationMicros: 0))
    }

    static func json(_ finding: ScanFinding) -> JSONValue {
        ["rule": .string(finding.rule), "severity": .string(finding.severity.rawValue), "location": .string(finding.location),
         "message": .string(finding.message), "excerpt": .string(finding.excerpt)]
    }

    // MARK: Prompts and resource templates

    /// Prompts and resource templates are not pinned; in enforce mode those with a finding the
    /// server's `scan.block` blocks are left out of lists (and logged).
    func screen(_ items: [JSONValue], kind: ScannedKind, server: ServerConfig) -> [JSONValue] {
        let pinning = server.toolPinning
        guard pinning.mode == .enforce, pinning.blockSeverity != nil else { return items }
        return items.filter { item in
            let findings = scanner.scan(item, kind: kind)
            guard Self.blocks(findings, pinning) else { return true }
            logger.notice("list item hidden by the poisoning scanner", metadata: [
                "server": "\(server.name)", "kind": "\(kind.rawValue)", "name": "\(item["name"]?.stringValue ?? item["uriTemplate"]?.stringValue ?? "")",
                "findings": "\(findings.map { "\($0.rule)(\($0.severity.rawValue))@\($0.location)" }.joined(separator: ", "))",
            ])
            metrics.increment("gatehouse_tool_findings_total", [server.name, findings.map(\.severity).max()?.rawValue ?? "high"])
            return false
        }
    }

    // MARK: The tool's facts for policy

    /// The tool definition as Rego sees it (`input.tool`), with `pin` and `findings` added.
    func annotate(_ tool: JSONValue, server: ServerConfig) -> JSONValue {
        guard server.toolPinning.mode != .off, case .object(var object) = tool, let name = object["name"]?.stringValue,
              let verdict = verdict(server: server, tool: name)
        else { return tool }
        var pin: JSONObject = ["status": .string(verdict.status.rawValue), "digest": .string(verdict.digest), "visible": .bool(verdict.visible)]
        if let from = verdict.renamedFrom { pin["renamedFrom"] = .string(from) }
        object["pin"] = .object(pin)
        object["findings"] = .array(verdict.findings.map { ["rule": .string($0.rule), "severity": .string($0.severity.rawValue), "location": .string($0.location)] })
        return .object(object)
    }
}
