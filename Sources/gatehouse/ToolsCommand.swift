import ArgumentParser
import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseServer
import GatehouseTools
import MCPWire

/// `gatehouse tools`: the pinned tool definitions in the config's store, as every replica
/// sees them (docs/security.md "Tool pinning"). Decisions take effect on running gateways
/// within two seconds.
struct ToolsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tools",
        abstract: "List, diff, approve and reject pinned tool definitions (servers with spec.toolPinning).",
        subcommands: [List.self, Diff.self, Approve.self, Reject.self])

    struct Options: ParsableArguments {
        @Option(name: .shortAndLong, help: "The gateway's config file (its spec.storage is used).")
        var config: String
        @Flag(help: "Print JSON instead of text.") var json = false
    }

    static func withStore<T: Sendable>(_ options: Options, _ body: @Sendable @escaping (AuthStore, GatewayConfig) async throws -> T) async throws -> T {
        try await StoreCommand.withStore(configPath: options.config, requiring: { config in
            guard config.pinsTools else {
                throw ValidationError("no server in \(options.config) pins its tools: set spec.toolPinning.mode (record or enforce) on an MCPServer")
            }
        }, body)
    }

    static func find(_ server: String, _ tool: String, store: AuthStore, config: GatewayConfig) async throws -> ToolPinReport.Tool {
        guard let serverConfig = config.server(named: server), serverConfig.toolPinning.mode != .off else {
            throw ValidationError("server '\(server)' does not pin its tools in this config")
        }
        let records = try await store.toolVersions(server: server)
        guard let found = ToolPinReport.tools(records, servers: [serverConfig]).first(where: { $0.name.utf8.elementsEqual(tool.utf8) }) else {
            throw ValidationError("no definition of tool '\(tool)' on server '\(server)' was recorded yet; a gateway records them when it lists the server's tools")
        }
        return found
    }

    static func print(_ value: JSONValue) { Swift.print(JSONWriter.string(value)) }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every recorded tool with its status (approved, changed, new, renamed, rejected).")
        @OptionGroup var options: Options
        @Option(help: "Only this server's tools.") var server: String?

        func run() async throws {
            let server = self.server
            let tools = try await ToolsCommand.withStore(options) { store, config in
                ToolPinReport.tools(try await store.toolVersions(server: server), servers: config.servers)
            }
            if options.json {
                ToolsCommand.print(.object(["tools": .array(tools.map(ToolPinReport.json))]))
                return
            }
            for tool in tools {
                // Names come from the upstream: escaped, so they cannot drive the terminal.
                var line = "\(tool.server)/\(Printable.escaped(tool.name))  \(tool.status)\(tool.held ? " (held)" : "")  \(tool.current.digest)"
                if let from = tool.current.renamedFrom { line += "  renamed from \(Printable.escaped(from))" }
                if !tool.findings.isEmpty { line += "  findings: \(tool.findings.compactMap { $0["rule"]?.stringValue }.joined(separator: ","))" }
                Swift.print(line)
            }
            if tools.isEmpty { Swift.print("no tool definitions recorded yet") }
        }
    }

    struct Diff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show how a tool's current definition differs from the approved one.")
        @OptionGroup var options: Options
        @Argument(help: "The server's name.") var server: String
        @Argument(help: "The tool's name (the server's own).") var tool: String

        func run() async throws {
            let (server, name) = (self.server, self.tool)
            let tool = try await ToolsCommand.withStore(options) { store, config in try await ToolsCommand.find(server, name, store: store, config: config) }
            let diff = ToolPinReport.diff(tool)
            if options.json {
                ToolsCommand.print(diff)
                return
            }
            Swift.print("\(server)/\(Printable.escaped(name)): \(tool.status)\(tool.held ? " (held)" : "")")
            Swift.print("approved: \(tool.approved.map { "\($0.digest) by \(Printable.escaped($0.decidedBy ?? ""))" } ?? "none")")
            Swift.print("current:  \(tool.current.digest)")
            for finding in tool.findings {
                let text = "finding:  \(finding["rule"]?.stringValue ?? "") (\(finding["severity"]?.stringValue ?? "")) at \(finding["location"]?.stringValue ?? ""): \(finding["message"]?.stringValue ?? "")"
                Swift.print(Printable.escaped(text))
            }
            Swift.print((diff["diff"]?.stringValue ?? "").split(separator: "\n", omittingEmptySubsequences: false).map { Printable.escaped(String($0)) }.joined(separator: "\n"))
            if tool.status != "approved" { Swift.print("\nto approve: gatehouse tools approve -c \(options.config) \(server) \(name) --digest \(tool.current.digest)") }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve a tool's current definition, named by its digest.")
        @OptionGroup var decision: Decision
        func run() async throws { try await decision.run(approve: true) }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reject a tool's current definition: it stays held in enforce mode.")
        @OptionGroup var decision: Decision
        func run() async throws { try await decision.run(approve: false) }
    }

    struct Decision: ParsableArguments {
        @OptionGroup var options: Options
        @Argument(help: "The server's name.") var server: String
        @Argument(help: "The tool's name (the server's own).") var tool: String
        @Option(help: "The digest of the definition you reviewed (gatehouse tools diff shows it).") var digest: String
        @Option(help: "Who decides (recorded with the decision; default: $USER).") var by: String?

        func run(approve: Bool) async throws {
            let (server, tool, digest) = (self.server, self.tool, self.digest)
            let by = self.by ?? ProcessInfo.processInfo.environment["USER"] ?? "cli"
            let outcome = try await ToolsCommand.withStore(options) { store, config in
                _ = try await ToolsCommand.find(server, tool, store: store, config: config)
                return try await store.decideToolVersion(server: server, tool: tool, digest: digest, approve: approve, by: by,
                                                         now: Int64(Date().timeIntervalSince1970 * 1000))
            }
            switch outcome {
            case .decided(let record):
                Swift.print("\(approve ? "approved" : "rejected") \(server)/\(tool) \(record.digest) (by \(by)); running gateways apply it within 2 s")
            case .unknown:
                FileHandle.standardError.write(Data("no definition of \(server)/\(tool) has digest \(digest); see gatehouse tools diff\n".utf8))
                throw ExitCode(1)
            case .stale(let current):
                FileHandle.standardError.write(Data("the definition of \(server)/\(tool) changed again: it is now \(current); review it with gatehouse tools diff\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
