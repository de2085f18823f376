import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseTools
import Logging
import MCPWire

extension ToolPins {
    /// Definitions that are not their tools' current ones here: scanned (once per digest),
    /// recorded in the store in batches, pinned automatically where the settings say so, then
    /// reported.
    func observe(_ batch: [(definition: ToolDefinition, item: JSONValue)], server: ServerConfig, duplicated: Set<ToolName>) async {
        let pinning = server.toolPinning
        let now = Self.nowMillis()
        let known = servers.withLock { all in batch.map { all[server.name]?.seen[$0.definition.digest] } }
        let unscanned = batch.indices.filter { known[$0] == nil }
        let scanner = self.scanner
        let textBytes = unscanned.reduce(0) { $0 + batch[$1].definition.size }
        let scanned = await Self.offload(textBytes > Self.offloadBytes) { unscanned.map { scanner.scan(batch[$0].item, kind: .tool) } }
        var findings = known.map { $0?.findings ?? [] }
        for (position, index) in unscanned.enumerated() { findings[index] = scanned[position] }
        let renamedFrom = servers.withLock { all -> [String?] in
            let state = all[server.name] ?? ServerState()
            return batch.indices.map { index in
                if let known = known[index] { return known.renamedFrom }
                let definition = batch[index].definition
                guard state.versions[ToolName(definition.name)] == nil, let from = state.approvedBodies[definition.bodyDigest],
                      ToolName(from) != ToolName(definition.name)
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
        let previous = update(server.name) { state -> [Verdict?] in
            let before = batch.map { entry -> Verdict? in
                let name = ToolName(entry.definition.name)
                return state.current[name].flatMap { Self.verdict(name: name, digest: $0, state: state, pinning: pinning) }
            }
            for record in stored { Self.merge(record, into: &state) }
            for index in batch.indices {
                let definition = batch[index].definition
                state.seen[definition.digest] = Seen(bodyDigest: definition.bodyDigest, findings: findings[index],
                                                     renamedFrom: stored.first { $0.digest == definition.digest }?.renamedFrom ?? renamedFrom[index])
            }
            return before
        }
        await pinFirstSight(batch, findings: findings, server: server, duplicated: duplicated, now: now)
        report(batch.map(\.definition), previous: previous, server: server)
        await prune(batch.map(\.definition.name), server: server.name)
    }

    /// Trust on first use: `onNewTool: allow` (and record mode) pin a tool seen for the first
    /// time — one definition per tool, never one the scanner blocks, never one of a name listed
    /// twice, never a tool that has a decided version (the store checks that too, for replicas).
    private func pinFirstSight(_ batch: [(definition: ToolDefinition, item: JSONValue)], findings: [[ScanFinding]], server: ServerConfig,
                               duplicated: Set<ToolName>, now: Int64) async
    {
        let pinning = server.toolPinning
        guard pinning.mode == .record || pinning.onNewTool == .allow else { return }
        let digests = servers.withLock { all -> [String] in
            guard let state = all[server.name] else { return [] }
            var names: Set<ToolName> = []
            return batch.indices.compactMap { index in
                let definition = batch[index].definition
                let name = ToolName(definition.name)
                guard !duplicated.contains(name), !Self.blocks(findings[index], pinning), names.insert(name).inserted,
                      let status = Self.verdict(name: name, digest: definition.digest, state: state, pinning: pinning)?.status,
                      status == .new || status == .renamed
                else { return nil }
                return definition.digest
            }
        }
        guard !digests.isEmpty else { return }
        let by = pinning.mode == .record ? "gatehouse (record mode)" : "gatehouse (onNewTool: allow)"
        do {
            let decided = try await store.approvePendingToolVersions(server: server.name, digests: digests, by: by, now: now)
            update(server.name) { state in
                for record in decided { Self.merge(record, into: &state) }
            }
        } catch {
            logger.error("cannot pin new tool definitions; they are held", metadata: ["server": "\(server.name)", "error": "\(error)"])
        }
    }

    private func report(_ definitions: [ToolDefinition], previous: [Verdict?], server: ServerConfig) {
        let verdicts = servers.withLock { all in
            definitions.map { definition in
                all[server.name].flatMap { Self.verdict(name: ToolName(definition.name), digest: definition.digest, state: $0, pinning: server.toolPinning) }
            }
        }
        for index in definitions.indices {
            guard let verdict = verdicts[index] else { continue }
            report(definitions[index], verdict: verdict, previous: previous[index], server: server)
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
        var metadata: Logger.Metadata = ["server": "\(server.name)", "tool": "\(Printable.escaped(definition.name))", "digest": "\(definition.digest)",
                                         "status": "\(verdict.status.rawValue)", "visible": "\(verdict.visible)"]
        if let from = verdict.renamedFrom { metadata["renamed_from"] = "\(Printable.escaped(from))" }
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

    /// Keeps at most `maxPendingVersions` undecided versions of each tool and `maxPendingTools`
    /// undecided tools per server, in the store and here: a server inventing definitions or
    /// names on every list must not grow either without bound.
    private func prune(_ tools: [String], server: String) async {
        let (crowded, pendingTools) = servers.withLock { all -> ([String], Int) in
            guard let state = all[server] else { return ([], 0) }
            let crowded = tools.filter { (state.versions[ToolName($0)]?.count ?? 0) > Self.maxPendingVersions }
            return (crowded, state.versions.values.filter { $0.values.allSatisfy { $0.state == .pending } }.count)
        }
        do {
            for tool in crowded { try await store.pruneToolVersions(server: server, tool: tool, keep: Self.maxPendingVersions) }
            if pendingTools > Self.maxPendingTools {
                try await store.pruneUndecidedTools(server: server, keep: Self.maxPendingTools)
                logger.warning("a server offered more undecided tools than are kept; the oldest were dropped", metadata: [
                    "server": "\(server)", "kept": "\(Self.maxPendingTools)",
                ])
            }
            guard !crowded.isEmpty || pendingTools > Self.maxPendingTools else { return }
            let kept = try await store.toolVersions(server: server)
            update(server) { state in
                state.versions = [:]
                for record in kept { Self.merge(record, into: &state) }
            }
        } catch {
            logger.warning("cannot prune old tool definitions", metadata: ["server": "\(server)", "error": "\(error)"])
        }
    }

    func audit(server: String, tool: String, decision: String, by: String?, reasons: [String]) {
        guard let audit = auditLog else { return }
        audit.record(.init(endpoint: "", identity: .init(kind: by == nil ? "gateway" : "operator", subject: by ?? "gatehouse"), method: "tools/list",
                           server: server, target: tool, decision: decision, reasons: reasons, stage: "tool-pin", policyVersion: nil, evaluationMicros: 0))
    }

    static func json(_ finding: ScanFinding) -> JSONValue {
        ["rule": .string(finding.rule), "severity": .string(finding.severity.rawValue), "location": .string(finding.location),
         "message": .string(finding.message), "excerpt": .string(finding.excerpt)]
    }

    // MARK: Prompts and resources

    /// Prompts, resources and resource templates are not pinned; in enforce mode those with a
    /// finding the server's `scan.block` blocks are left out of lists (and logged), and a
    /// blocked prompt is refused by name too (`isBlockedPrompt`).
    func screen(_ items: [JSONValue], kind: ScannedKind, server: ServerConfig) -> [JSONValue] {
        let pinning = server.toolPinning
        guard pinning.mode == .enforce, pinning.blockSeverity != nil else { return items }
        return items.filter { item in
            let findings = scanner.scan(item, kind: kind)
            let blocked = Self.blocks(findings, pinning)
            if kind == .prompt, let name = item["name"]?.stringValue {
                servers.withLock { all in
                    if blocked {
                        all[server.name, default: ServerState()].blockedPrompts.insert(ToolName(name))
                    } else {
                        _ = all[server.name]?.blockedPrompts.remove(ToolName(name))
                    }
                }
            }
            guard blocked else { return true }
            logger.notice("list item hidden by the poisoning scanner", metadata: [
                "server": "\(server.name)", "kind": "\(kind.rawValue)",
                "name": "\(Printable.escaped(item["name"]?.stringValue ?? item["uriTemplate"]?.stringValue ?? item["uri"]?.stringValue ?? ""))",
                "findings": "\(findings.map { "\($0.rule)(\($0.severity.rawValue))@\($0.location)" }.joined(separator: ", "))",
            ])
            metrics.increment("gatehouse_tool_findings_total", [server.name, findings.map(\.severity).max()?.rawValue ?? "high"])
            return false
        }
    }

    /// True when the server's prompt `name` was left out of a list by the scanner.
    func isBlockedPrompt(server: String, name: String) -> Bool {
        servers.withLock { $0[server]?.blockedPrompts.contains(ToolName(name)) ?? false }
    }
}
