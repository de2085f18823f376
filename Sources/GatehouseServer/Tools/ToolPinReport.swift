import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseTools
import MCPWire

/// What operators see of the pins, from the store alone (so the CLI, the admin API and any
/// replica show the same): each tool's current and approved definitions, its status, and
/// the diff between them.
public enum ToolPinReport {
    public struct Tool: Sendable {
        public var server: String
        public var name: String
        public var status: String
        public var held: Bool
        public var current: AuthStore.ToolVersionRecord
        public var approved: AuthStore.ToolVersionRecord?
        public var findings: [JSONValue]
    }

    /// One entry per tool of the servers that pin (in config order, tools by name).
    public static func tools(_ records: [AuthStore.ToolVersionRecord], servers: [ServerConfig]) -> [Tool] {
        var out: [Tool] = []
        for server in servers where server.toolPinning.mode != .off {
            let mine = records.filter { $0.server == server.name }
            // What the server's other tools say counts too (a body rejected under another name).
            var state = ToolPins.ServerState()
            for record in mine { ToolPins.merge(record, into: &state) }
            let byTool = Dictionary(grouping: mine, by: { ToolName($0.tool) })
            var currents: [(name: ToolName, current: AuthStore.ToolVersionRecord, findings: [JSONValue])] = []
            for (name, versions) in byTool {
                guard let current = versions.max(by: { $0.lastSeen < $1.lastSeen }) else { continue }
                let findings = (try? JSONParser.parse(Array(current.findings.utf8)))?.arrayValue ?? []
                state.seen[current.digest] = .init(bodyDigest: current.bodyDigest, findings: scanFindings(findings), renamedFrom: current.renamedFrom)
                currents.append((name, current, findings))
            }
            for entry in currents.sorted(by: { $0.name.text.unicodeScalars.lexicographicallyPrecedes($1.name.text.unicodeScalars) }) {
                guard let verdict = ToolPins.verdict(name: entry.name, digest: entry.current.digest, state: state, pinning: server.toolPinning) else { continue }
                let approved = (byTool[entry.name] ?? []).filter { $0.state == .approved }.max { ($0.decidedAt ?? 0) < ($1.decidedAt ?? 0) }
                out.append(Tool(server: server.name, name: entry.name.text, status: verdict.status.rawValue, held: !verdict.visible,
                                current: entry.current, approved: approved, findings: entry.findings))
            }
        }
        return out
    }

    /// One tool, judged with what the store says of the server's tools.
    static func tool(_ name: String, records: [AuthStore.ToolVersionRecord], server: ServerConfig) -> Tool? {
        tools(records, servers: [server]).first { ToolName($0.name) == ToolName(name) }
    }

    static func scanFindings(_ findings: [JSONValue]) -> [ScanFinding] {
        findings.compactMap { finding in
            guard let severity = finding["severity"]?.stringValue.flatMap(FindingSeverity.init(rawValue:)) else { return nil }
            return ScanFinding(rule: finding["rule"]?.stringValue ?? "", severity: severity, location: finding["location"]?.stringValue ?? "",
                               excerpt: finding["excerpt"]?.stringValue ?? "", message: finding["message"]?.stringValue ?? "")
        }
    }

    public static func json(_ tool: Tool) -> JSONValue {
        var object: JSONObject = [
            "server": .string(tool.server), "tool": .string(tool.name), "status": .string(tool.status), "held": .bool(tool.held),
            "current": .object(["digest": .string(tool.current.digest), "state": .string(tool.current.state.rawValue),
                                "firstSeen": .string(time(tool.current.firstSeen)), "lastSeen": .string(time(tool.current.lastSeen))]),
            "findings": .array(tool.findings),
        ]
        if let from = tool.current.renamedFrom { object["renamedFrom"] = .string(from) }
        if let approved = tool.approved {
            object["approved"] = .object(["digest": .string(approved.digest), "by": .string(approved.decidedBy ?? ""),
                                          "at": .string(time(approved.decidedAt ?? 0))])
        } else {
            object["approved"] = .null
        }
        return .object(object)
    }

    /// The approved and current definitions and a readable diff of the two (the whole current
    /// definition as added lines when nothing was approved yet).
    public static func diff(_ tool: Tool) -> JSONValue {
        let current = definition(tool.current)
        let approved = tool.approved.map(definition)
        let new = Canonical.pretty(current)
        let lines = approved.map { DefinitionDiff.lines(old: Canonical.pretty($0), new: new) }
            ?? new.split(separator: "\n", omittingEmptySubsequences: false).map { .added(String($0)) }
        var object = json(tool).objectValue ?? [:]
        object["currentDefinition"] = current
        object["approvedDefinition"] = approved ?? .null
        object["diff"] = .string(DefinitionDiff.render(lines))
        return .object(object)
    }

    static func definition(_ record: AuthStore.ToolVersionRecord) -> JSONValue {
        (try? JSONParser.parse(Array(record.definition.utf8))) ?? .string(record.definition)
    }

    static func time(_ millis: Int64) -> String { Timestamp.rfc3339(Date(timeIntervalSince1970: Double(millis) / 1000)) }
}
