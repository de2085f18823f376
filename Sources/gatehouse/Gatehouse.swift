import ArgumentParser
import Foundation
import GatehouseConfig
import GatehouseServer
import Logging

/// The entry point: before anything else runs, Swift concurrency's global executor becomes
/// SwiftNIO's event loops (see `Runtime.installEventLoopExecutor`), then the command runs.
@main
enum Main {
    static func main() async {
        let environment = ProcessInfo.processInfo.environment
        if let loops = environment["GATEHOUSE_EVENT_LOOPS"].flatMap(Int.init), loops > 0 { Runtime.setEventLoopCount(loops) }
        if environment["GATEHOUSE_NIO_EXECUTOR"] != "0" { Runtime.installEventLoopExecutor() }
        await Gatehouse.main()
    }
}

struct Gatehouse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "An MCP gateway: one safe endpoint in front of your MCP servers.",
        version: "0.1.0",
        subcommands: [Serve.self, Validate.self, PolicyCommand.self, APIKeyCommand.self, ToolsCommand.self, HashPassword.self])
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve MCP Streamable HTTP in front of the configured upstream.")

    @Option(name: .shortAndLong, help: "The config file (YAML manifests).")
    var config: String

    @Option(help: "Address to bind (overrides spec.listen.bind).")
    var bind: String?

    @Option(help: "Port to listen on (overrides spec.listen.port; 0 picks a free port).")
    var port: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Log format: text (for people) or json (one object per line, for log shippers).")
    var logFormat: String = "text"

    @Flag(inversion: .prefixedNo, help: "Reload when the config file or its policy files change (polled every second).")
    var watch = true

    func run() async throws {
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be between 0 and 65535") }
        let source = ConfigSource(path: config, bind: bind, port: port)
        let gatewayConfig: GatewayConfig
        do {
            gatewayConfig = try source.load()
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(1)
        }
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format must be text or json") }
        let json = logFormat == "json"
        LoggingSystem.bootstrap({ label, provider in
            if json {
                var handler = JSONLogHandler(label: label, metadataProvider: provider)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label, metadataProvider: provider)
            handler.logLevel = level
            return handler
        }, metadataProvider: .gatehouse)
        let logger = Logger(label: "gatehouse")
        try await Gateway(config: gatewayConfig, logger: logger, source: source, watch: watch).run()
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a config file and print every problem with file:line:column.")

    @Argument(help: "The config file to check.")
    var file: String

    func run() throws {
        do {
            let config = try ConfigLoader().load(path: file)
            if let problems = Gateway.policyProblems(config) {
                print("\(file): spec.policy: \(problems)")
                throw ExitCode(1)
            }
            let endpoints = config.endpoints.map { "\($0.path) → \($0.servers.joined(separator: ", "))" }
            print("\(file): OK (gateway '\(config.name)'; \(endpoints.joined(separator: "; ")))")
        } catch let error as ConfigError {
            print(error.description)
            throw ExitCode(1)
        }
    }
}
