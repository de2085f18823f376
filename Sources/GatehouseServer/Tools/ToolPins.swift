import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseTools
import Logging
import MCPWire
import NIOPosix
import Synchronization

/// Pinned tool definitions (docs/security.md "Tool pinning"): every tool list the gateway sees
/// from a server with `spec.toolPinning` is checked against the definitions people approved,
/// and in enforce mode what is not approved never reaches a client — not in lists, not as a
/// call.
///
/// Design note: the store (SQLite or PostgreSQL) is the truth, shared by replicas; this keeps,
/// per server, what the store says about each version seen (refreshed every `syncInterval`
/// and at once after a decision made here) and which definition each tool has now. Each list
/// item is judged by its own digest, never by its name alone, so a server listing one name
/// twice cannot pass one definition under the other's verdict; names are compared byte for
/// byte (Swift's `String` equality would merge two spellings of "café" into one tool). A list
/// whose definitions are all known costs one digest per tool and no database round trip; a
/// definition seen for the first time is written before the list is answered.
final class ToolPins: Sendable {
    enum Status: String, Sendable {
        /// The definition is the approved one.
        case approved
        /// Another definition of a tool that has a decided version (approved or rejected).
        case changed
        /// No version of this tool was ever decided.
        case new
        /// New under this name, but equal to an approved tool of another name.
        case renamed
        /// A person rejected this definition (under this name or, for its body, any other).
        case rejected
    }

    struct Version: Sendable {
        var state: AuthStore.ToolVersionRecord.State
        var bodyDigest: String
        var lastSeen: Int64
    }

    /// What this process learned of one definition when it first saw it.
    struct Seen: Sendable {
        var bodyDigest: String
        var findings: [ScanFinding]
        var renamedFrom: String?
    }

    struct ServerState: Sendable {
        /// tool → digest → what the store says.
        var versions: [ToolName: [String: Version]] = [:]
        /// tool → the digest it has now, as last listed.
        var current: [ToolName: String] = [:]
        /// digest → what was learned when it was first seen.
        var seen: [String: Seen] = [:]
        /// Body digest (all but the name) of approved definitions → their tool: renames.
        var approvedBodies: [String: String] = [:]
        /// Body digests of rejected definitions: rejected under any name.
        var rejectedBodies: Set<String> = []
        var loaded = false
        /// When the whole list was last seen; nil or `stale` after `list_changed`: calls wait for a new listing.
        var listedAt: ContinuousClock.Instant?
        var stale = true
        /// Prompts the scanner left out of lists (refused by name as well).
        var blockedPrompts: Set<ToolName> = []
        /// Tools of the last list too large to pin (held in enforce mode), with their size.
        var unpinnable: [ToolName: Int] = [:]
        /// Bumped by each `list_changed`; a listing that started before one does not clear `stale`.
        var staleGeneration = 0
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
    private let auditLogs = Mutex<AuditLog?>(nil)
    var auditLog: AuditLog? { auditLogs.withLock { $0 } }
    let syncedUntil = Mutex<Int64>(0)
    static let syncInterval: Duration = .seconds(2)
    /// Larger names and definitions are not pinned (held in enforce mode): every version seen
    /// is kept in the store, and a server must not be able to grow it without bound.
    static let maxNameBytes = 256
    static let maxDefinitionBytes = 128 * 1024
    /// Undecided versions kept per tool, and undecided tools per server; older ones are
    /// dropped when new ones arrive.
    static let maxPendingVersions = 20
    static let maxPendingTools = 2_000
    /// The shortest time between two listings a call triggers for a name the server does not list.
    static let relistInterval: Duration = .seconds(2)
    /// Lists with more items, or definitions to scan with more text, are worked on NIO's
    /// thread pool rather than an event loop.
    static let offloadItems = 64
    static let offloadBytes = 64 * 1024

    init(store: AuthStore, metrics: Metrics, logger: Logger) {
        self.store = store
        self.metrics = metrics
        self.logger = logger
    }

    /// Where holds and decisions are logged (the policy's decision log, when there is one).
    func useAuditLog(_ audit: AuditLog?) { auditLogs.withLock { $0 = audit } }

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// The list methods whose items the scanner reads besides tools.
    static func scannedKind(of method: MCPMethod) -> ScannedKind? {
        switch method {
        case .promptsList: .prompt
        case .resourceTemplatesList, .resourcesList: .resourceTemplate
        default: nil
        }
    }

    // MARK: Verdicts

    /// Whether definition `digest` of tool `name` reaches clients, by the server's settings.
    static func verdict(name: ToolName, digest: String, state: ServerState, pinning: ServerConfig.ToolPinning) -> Verdict? {
        guard let seen = state.seen[digest] else { return nil }
        let versions = state.versions[name] ?? [:]
        let status: Status
        switch versions[digest]?.state {
        case .approved?: status = .approved
        case .rejected?: status = .rejected
        default:
            if state.rejectedBodies.contains(seen.bodyDigest) {
                status = .rejected
            } else if versions.values.contains(where: { $0.state != .pending }) {
                status = .changed
            } else {
                status = seen.renamedFrom == nil ? .new : .renamed
            }
        }
        let visible: Bool
        if pinning.mode != .enforce {
            visible = true
        } else {
            switch status {
            case .approved: visible = true
            case .rejected: visible = false
            case .changed: visible = pinning.onChange == .warn && !blocks(seen.findings, pinning)
            case .new, .renamed: visible = false  // `onNewTool: allow` approves on first sight, so a new tool still pending is held
            }
        }
        return Verdict(status: status, visible: visible, digest: digest, findings: seen.findings, renamedFrom: seen.renamedFrom)
    }

    static func blocks(_ findings: [ScanFinding], _ pinning: ServerConfig.ToolPinning) -> Bool {
        guard let block = pinning.blockSeverity.flatMap({ FindingSeverity(rawValue: $0.rawValue) }) else { return false }
        return findings.contains { $0.severity >= block }
    }

    /// The verdict on the tool's current definition; nil when the gateway has not seen it listed.
    func verdict(server: ServerConfig, tool: String) -> Verdict? {
        let name = ToolName(tool)
        return servers.withLock { all -> Verdict? in
            guard let state = all[server.name], let digest = state.current[name] else { return nil }
            return Self.verdict(name: name, digest: digest, state: state, pinning: server.toolPinning)
        }
    }

    /// True when a call must wait for a new listing: never listed, `list_changed` seen, or a
    /// name the last listing did not have and that listing is older than `relistInterval`.
    /// `maxAge`: for servers whose changes the gateway cannot hear (2026-07-28 upstreams send
    /// `list_changed` only to a `subscriptions/listen` stream), a listing older than this is stale.
    func needsListing(server: String, tool: String, maxAge: Duration? = nil) -> Bool {
        servers.withLock { all in
            guard let state = all[server], let listed = state.listedAt, !state.stale else { return true }
            let age = ContinuousClock.now - listed
            if let maxAge, age > maxAge { return true }
            return state.current[ToolName(tool)] == nil && age > Self.relistInterval
        }
    }

    /// How old a listing of a 2026-07-28 server may be before a call lists it again.
    static let statelessListingAge: Duration = .seconds(5)

    /// `notifications/tools/list_changed` from the server: nothing is trusted until listed again.
    func invalidate(server: String) {
        update(server) { state in
            state.stale = true
            state.staleGeneration += 1
        }
    }

    /// Changes one server's state in place (copying it out and back would copy its tables).
    func update<T>(_ server: String, _ body: (inout ServerState) -> T) -> T {
        servers.withLock { body(&$0[server, default: ServerState()]) }
    }

    /// Definitions the store keeps: larger names or definitions are held, not recorded.
    static func isPinnable(_ definition: ToolDefinition) -> Bool {
        definition.name.utf8.count <= maxNameBytes && definition.size <= maxDefinitionBytes
    }

    // MARK: Checking lists

    /// The items of a `tools/list` page that may reach the client, in order. `complete` when the
    /// page is the whole list (tools missing from it are gone).
    func check(_ items: [JSONValue], server: ServerConfig, complete: Bool) async -> [JSONValue] {
        let pinning = server.toolPinning
        guard pinning.mode != .off else { return items }
        await loadIfNeeded(server: server.name)
        let generation = servers.withLock { $0[server.name]?.staleGeneration ?? 0 }
        let definitions = await Self.offload(items.count > Self.offloadItems) { items.map(ToolDefinition.init) }
        var counts: [ToolName: Int] = [:]
        for definition in definitions { if let definition { counts[ToolName(definition.name), default: 0] += 1 } }
        // One name listed twice is held whole: which of its definitions would a client use?
        let duplicated = Set(counts.filter { $0.value > 1 }.keys)
        for name in duplicated {
            logger.warning("a server listed one tool name more than once; every item of it is held", metadata: [
                "server": "\(server.name)", "tool": "\(Printable.escaped(name.text))",
            ])
        }
        for definition in definitions { if let definition, !Self.isPinnable(definition) { reportTooLarge(definition, server: server) } }
        let fresh = servers.withLock { all -> [Int] in
            let current = all[server.name]?.current ?? [:]
            var digests: Set<String> = []  // recorded once (one statement may not write a row twice)
            return definitions.indices.filter { index in
                guard let definition = definitions[index], Self.isPinnable(definition),
                      current[ToolName(definition.name)] != definition.digest
                else { return false }
                return digests.insert(definition.digest).inserted
            }
        }
        if !fresh.isEmpty { await observe(fresh.map { (definitions[$0]!, items[$0]) }, server: server, duplicated: duplicated) }
        return finishCheck(items, definitions: definitions, duplicated: duplicated, server: server, complete: complete, generation: generation)
    }

    /// The visible items, and the tools' current definitions when the list was complete.
    private func finishCheck(_ items: [JSONValue], definitions: [ToolDefinition?], duplicated: Set<ToolName>, server: ServerConfig,
                             complete: Bool, generation: Int) -> [JSONValue]
    {
        let pinning = server.toolPinning
        return update(server.name) { state in
            var kept: [JSONValue] = []
            kept.reserveCapacity(items.count)
            var listed: [ToolName: String] = [:]
            var unpinnable: [ToolName: Int] = [:]
            for (item, definition) in zip(items, definitions) {
                if let definition, !Self.isPinnable(definition) { unpinnable[ToolName(definition.name)] = definition.size }
                // Not pinnable (no name, too large) or listed twice: passed only when nothing is enforced.
                guard let definition, Self.isPinnable(definition), !duplicated.contains(ToolName(definition.name)) else {
                    if pinning.mode != .enforce { kept.append(item) }
                    continue
                }
                let name = ToolName(definition.name)
                listed[name] = definition.digest
                if pinning.mode != .enforce || Self.verdict(name: name, digest: definition.digest, state: state, pinning: pinning)?.visible == true {
                    kept.append(item)
                }
            }
            for (name, digest) in listed where state.seen[digest] != nil { state.current[name] = digest }
            if complete {
                state.unpinnable = unpinnable
                state.current = state.current.filter { listed[$0.key] != nil }
                state.listedAt = .now
                if state.staleGeneration == generation { state.stale = false }
            }
            return kept
        }
    }

    private func reportTooLarge(_ definition: ToolDefinition, server: ServerConfig) {
        logger.warning("a tool definition too large to pin; it is \(server.toolPinning.mode == .enforce ? "held" : "passed unrecorded")", metadata: [
            "server": "\(server.name)", "tool": "\(Printable.escaped(String(definition.name.prefix(64))))", "bytes": "\(definition.size)",
        ])
    }

    /// Runs `work` here, or on NIO's thread pool when it is large, so one upstream's big list
    /// does not stall the other connections of an event loop.
    static func offload<T: Sendable>(_ large: Bool, _ work: @escaping @Sendable () -> T) async -> T {
        guard large else { return work() }
        do {
            return try await NIOThreadPool.singleton.runIfActive { work() }
        } catch {
            return work()  // the pool is shutting down
        }
    }

    /// Loads what the store knows of the server, once.
    private func loadIfNeeded(server: String) async {
        guard !(servers.withLock { $0[server]?.loaded ?? false }) else { return }
        do {
            let records = try await store.toolVersions(server: server)
            update(server) { state in
                for record in records { Self.merge(record, into: &state) }
                state.loaded = true
            }
        } catch {
            logger.error("cannot read pinned tool definitions", metadata: ["server": "\(server)", "error": "\(error)"])
        }
    }

    static func merge(_ record: AuthStore.ToolVersionRecord, into state: inout ServerState) {
        let name = ToolName(record.tool)
        state.versions[name, default: [:]][record.digest] = Version(state: record.state, bodyDigest: record.bodyDigest, lastSeen: record.lastSeen)
        switch record.state {
        case .approved, .superseded: state.approvedBodies[record.bodyDigest] = record.tool
        case .rejected: state.rejectedBodies.insert(record.bodyDigest)
        case .pending: break
        }
    }

    // MARK: The facts for policy

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

/// A tool name compared byte for byte (`String` equality is Unicode canonical equivalence).
struct ToolName: Hashable, Sendable {
    let text: String
    init(_ text: String) { self.text = text }
    static func == (a: ToolName, b: ToolName) -> Bool { a.text.utf8.elementsEqual(b.text.utf8) }
    func hash(into hasher: inout Hasher) {
        for byte in text.utf8 { hasher.combine(byte) }
    }
}
