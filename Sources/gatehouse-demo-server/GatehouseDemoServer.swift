// gatehouse-demo-server: a small MCP server used by the quickstart and by the
// gateway's end-to-end tests.
//
//   gatehouse-demo-server                 MCP over stdio (default)
//   gatehouse-demo-server --stdio         same, explicitly
//   gatehouse-demo-server --http [--host 127.0.0.1] [--port 3000] [--path /mcp]
//                                         MCP Streamable HTTP (stateful, SSE)
//
// Logs always go to stderr; stdout carries nothing but MCP messages (stdio mode).

import ArgumentParser
import Foundation
import Logging
import MCP

@main
struct GatehouseDemoServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse-demo-server",
        abstract: "Demo MCP server (tools, resources, prompts) for Gatehouse.",
        discussion: """
            Without options (or with --stdio) it speaks MCP over stdin/stdout. With --http it \
            serves MCP Streamable HTTP at http://HOST:PORT/PATH and prints \
            "listening on http://HOST:PORT/PATH" to stderr once bound (use --port 0 for a free port).
            """,
        version: DemoServerInfo.version
    )

    @Flag(name: .long, help: "Serve MCP over stdin/stdout (the default).")
    var stdio = false

    @Flag(name: .long, help: "Serve MCP Streamable HTTP instead of stdio.")
    var http = false

    @Option(name: .long, help: "Address to bind in --http mode. (default: 127.0.0.1)")
    var host: String?

    @Option(name: .long, help: "Port to bind in --http mode; 0 picks a free port. (default: 3000)")
    var port: Int?

    @Option(name: .long, help: "Endpoint path in --http mode. (default: /mcp)")
    var path: String?

    @Option(name: .long, help: "Server name in serverInfo (default: gatehouse-demo-server).")
    var name: String?

    @Option(name: .long, help: "Comma-separated tools to offer (default: all).")
    var tools: String?

    @Option(name: .long, help: "Page tools/list by this many tools (default: no paging).")
    var pageSize: Int?

    @Option(
        name: .long,
        help: "Log level for stderr logs: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        if stdio && http {
            throw ValidationError("--stdio and --http are mutually exclusive.")
        }
        if let port, !(0...65535).contains(port) {
            throw ValidationError("--port must be between 0 and 65535.")
        }
        if let host, host.isEmpty {
            throw ValidationError("--host must not be empty.")
        }
        if Logger.Level(rawValue: logLevel.lowercased()) == nil {
            throw ValidationError("Unknown --log-level '\(logLevel)'.")
        }
        if !http && (host != nil || port != nil || path != nil) {
            // Only meaningful for HTTP; reject rather than silently ignore.
            throw ValidationError("--host, --port and --path require --http.")
        }
    }

    func run() async throws {
        // The catalogue reads these once, on first use.
        if let name { setenv("GATEHOUSE_DEMO_NAME", name, 1) }
        if let tools { setenv("GATEHOUSE_DEMO_TOOLS", tools, 1) }
        if let pageSize { setenv("GATEHOUSE_DEMO_PAGE_SIZE", String(pageSize), 1) }
        let level = Logger.Level(rawValue: logLevel.lowercased()) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "gatehouse-demo-server")

        if http {
            let rawPath = path ?? "/mcp"
            try await DemoHTTPHost(
                host: host ?? "127.0.0.1",
                port: port ?? 3000,
                path: rawPath.hasPrefix("/") ? rawPath : "/" + rawPath,
                logger: logger
            ).run()
        } else {
            try await runStdio(logger: logger)
        }
    }

    private func runStdio(logger: Logger) async throws {
        let transport = StdioTransport(logger: logger)
        let state = DemoSessionState()
        let server = await makeDemoServer(state: state, logger: logger)
        try await server.start(transport: transport) { clientInfo, capabilities in
            await state.setClient(info: clientInfo, capabilities: capabilities)
        }
        logger.info("serving MCP over stdio")
        await server.waitUntilCompleted()
        await server.stop()
        logger.info("stdin closed; exiting")
    }
}

/// Writes one line to stderr, unbuffered (tests wait for the "listening on" line).
func writeStderrLine(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
