// The MCP surface of the demo server: tools, resources, a resource template and a prompt.
// One `Server` is made per session (one for stdio, one per Streamable HTTP session).

import Foundation
import Logging
import MCP

enum DemoServerInfo {
    /// `--name` (or GATEHOUSE_DEMO_NAME) renames the server, e.g. to tell federated copies apart.
    static let name = ProcessInfo.processInfo.environment["GATEHOUSE_DEMO_NAME"] ?? "gatehouse-demo-server"
    static let version = "0.1.0"
}

/// Per-session facts the handlers need that the SDK's `Server` keeps private.
actor DemoSessionState {
    private(set) var clientInfo: Client.Info?
    private(set) var clientCapabilities: Client.Capabilities?
    private(set) var logLevel: LogLevel?

    func setClient(info: Client.Info, capabilities: Client.Capabilities) {
        clientInfo = info
        clientCapabilities = capabilities
    }

    func setLogLevel(_ level: LogLevel) {
        logLevel = level
    }

    var clientSupportsRoots: Bool {
        clientCapabilities?.roots != nil
    }
}

// MARK: - Catalogue

enum DemoCatalogue {
    static let readmeURI = "demo://readme"
    static let readmeText = "Gatehouse demo server"
    static let itemsTemplate = "demo://items/{id}"
    static let itemsPrefix = "demo://items/"

    /// `--tools a,b` (or GATEHOUSE_DEMO_TOOLS) offers only those tools.
    static let enabledTools: Set<String>? = ProcessInfo.processInfo.environment["GATEHOUSE_DEMO_TOOLS"].map {
        Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
    }

    /// `--page-size N` (or GATEHOUSE_DEMO_PAGE_SIZE) pages tools/list.
    static let pageSize: Int? = ProcessInfo.processInfo.environment["GATEHOUSE_DEMO_PAGE_SIZE"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }

    static var tools: [Tool] { allTools.filter { enabledTools?.contains($0.name) ?? true } }

    static let allTools: [Tool] = [
        Tool(
            name: "echo",
            description: "Returns the given message unchanged.",
            inputSchema: .object([
                "type": "object",
                "properties": .object([
                    "message": .object([
                        "type": "string",
                        "description": "Text to echo back.",
                    ])
                ]),
                "required": .array(["message"]),
                "additionalProperties": false,
            ]),
            annotations: .init(readOnlyHint: true, idempotentHint: true, openWorldHint: false)
        ),
        Tool(
            name: "add",
            description: "Adds two numbers and returns the sum.",
            inputSchema: .object([
                "type": "object",
                "properties": .object([
                    "a": .object(["type": "number", "description": "First addend."]),
                    "b": .object(["type": "number", "description": "Second addend."]),
                ]),
                "required": .array(["a", "b"]),
                "additionalProperties": false,
            ]),
            annotations: .init(readOnlyHint: true, idempotentHint: true, openWorldHint: false),
            outputSchema: .object([
                "type": "object",
                "properties": .object([
                    "sum": .object(["type": "number"])
                ]),
                "required": .array(["sum"]),
            ])
        ),
        Tool(
            name: "slow",
            description: """
                Works for steps × intervalMs milliseconds, sending notifications/progress after \
                each step when the request carries _meta.progressToken.
                """,
            inputSchema: .object([
                "type": "object",
                "properties": .object([
                    "steps": .object([
                        "type": "integer", "minimum": 0, "maximum": 1000, "default": 3,
                        "description": "Number of steps.",
                    ]),
                    "intervalMs": .object([
                        "type": "integer", "minimum": 0, "maximum": 60000, "default": 500,
                        "description": "Milliseconds per step.",
                    ]),
                ]),
                "additionalProperties": false,
            ]),
            annotations: .init(readOnlyHint: true, openWorldHint: false)
        ),
        Tool(
            name: "fail",
            description: "Always returns a tool error (isError: true).",
            inputSchema: .object([
                "type": "object",
                "properties": .object([:]),
                "additionalProperties": false,
            ]),
            annotations: .init(readOnlyHint: true, openWorldHint: false)
        ),
        Tool(
            name: "touch",
            description: "Announces that the tool list changed (notifications/tools/list_changed), for testing change notifications.",
            inputSchema: .object([
                "type": "object",
                "properties": .object([:]),
                "additionalProperties": false,
            ]),
            annotations: .init(readOnlyHint: true, openWorldHint: false)
        ),
        Tool(
            name: "delete_item",
            description: "Pretends to delete an item (nothing is stored; for policy examples of destructive tools).",
            inputSchema: .object([
                "type": "object",
                "properties": .object(["id": .object(["type": "string"])]),
                "required": .array(["id"]),
                "additionalProperties": false,
            ]),
            annotations: .init(readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false)
        ),
        Tool(
            name: "ask_roots",
            description: """
                Sends roots/list to the client and returns the root URIs, one per line \
                ("no roots" when the list is empty).
                """,
            inputSchema: .object([
                "type": "object",
                "properties": .object([:]),
                "additionalProperties": false,
            ]),
            annotations: .init(readOnlyHint: true, openWorldHint: false)
        ),
    ]

    static let resources: [Resource] = [
        Resource(
            name: "readme", uri: readmeURI,
            description: "A static text resource.", mimeType: "text/plain")
    ]

    static let templates: [Resource.Template] = [
        Resource.Template(
            uriTemplate: itemsTemplate, name: "item",
            description: "Reads as \"item {id}\".", mimeType: "text/plain")
    ]

    static let prompts: [Prompt] = [
        Prompt(
            name: "greet",
            description: "Asks the model to greet someone.",
            arguments: [
                Prompt.Argument(name: "name", description: "Who to greet.", required: true)
            ])
    ]
}

// MARK: - Server

func makeDemoServer(state: DemoSessionState, logger: Logger) async -> Server {
    let server = Server(
        name: DemoServerInfo.name,
        version: DemoServerInfo.version,
        capabilities: Server.Capabilities(
            logging: .init(),
            prompts: .init(listChanged: false),
            resources: .init(subscribe: false, listChanged: false),
            tools: .init(listChanged: true)
        )
    )

    await server.withMethodHandler(ListTools.self) { params in
        // With --page-size, tools/list pages (the cursor is the next index), to exercise
        // pagination through the gateway.
        let all = DemoCatalogue.tools
        guard let size = DemoCatalogue.pageSize else { return ListTools.Result(tools: all) }
        guard let start = Int(params.cursor ?? "0"), (0...all.count).contains(start) else {
            throw MCPError.invalidParams("Invalid cursor")
        }
        let end = min(start + size, all.count)
        return ListTools.Result(tools: Array(all[start..<end]), nextCursor: end < all.count ? String(end) : nil)
    }

    // Handlers are stored inside the server, so they hold it weakly.
    await server.withMethodHandler(CallTool.self) { [weak server] params in
        guard let server else { throw MCPError.internalError("server is gone") }
        return try await callTool(params, server: server, state: state, logger: logger)
    }

    await server.withMethodHandler(ListResources.self) { _ in
        ListResources.Result(resources: DemoCatalogue.resources)
    }

    await server.withMethodHandler(ListResourceTemplates.self) { _ in
        ListResourceTemplates.Result(templates: DemoCatalogue.templates)
    }

    await server.withMethodHandler(ReadResource.self) { params in
        try readResource(uri: params.uri)
    }

    await server.withMethodHandler(ListPrompts.self) { _ in
        ListPrompts.Result(prompts: DemoCatalogue.prompts)
    }

    await server.withMethodHandler(GetPrompt.self) { params in
        guard params.name == "greet" else {
            throw MCPError.invalidParams("Unknown prompt: \(params.name)")
        }
        guard let name = params.arguments?["name"] else {
            throw MCPError.invalidParams("Missing required argument: name")
        }
        return GetPrompt.Result(
            description: "Greet \(name)",
            messages: [.user(.text(text: "Say hello to \(name)."))]
        )
    }

    await server.withMethodHandler(SetLoggingLevel.self) { params in
        await state.setLogLevel(params.level)
        return Empty()
    }

    return server
}

// MARK: - Resources

/// MCP's "Resource not found" error code.
private let resourceNotFoundCode = -32002

func readResource(uri: String) throws -> ReadResource.Result {
    if uri == DemoCatalogue.readmeURI {
        return ReadResource.Result(contents: [
            .text(DemoCatalogue.readmeText, uri: uri, mimeType: "text/plain")
        ])
    }
    if uri.hasPrefix(DemoCatalogue.itemsPrefix) {
        let id = String(uri.dropFirst(DemoCatalogue.itemsPrefix.count))
        if !id.isEmpty, !id.contains("/"), !id.contains("?"), !id.contains("#") {
            return ReadResource.Result(contents: [
                .text("item \(id)", uri: uri, mimeType: "text/plain")
            ])
        }
    }
    throw MCPError.serverError(code: resourceNotFoundCode, message: "Resource not found: \(uri)")
}

// MARK: - Tools

private func textResult(_ text: String, isError: Bool = false) -> CallTool.Result {
    CallTool.Result(
        content: [.text(text: text, annotations: nil, _meta: nil)],
        isError: isError ? true : nil
    )
}

/// Argument problems are reported as tool execution errors (isError), as the spec advises,
/// so a model can see and fix them.
private struct ArgumentError: Error {
    let message: String
}

private func callTool(
    _ params: CallTool.Parameters, server: Server, state: DemoSessionState, logger: Logger
) async throws -> CallTool.Result {
    let args = params.arguments ?? [:]
    guard DemoCatalogue.enabledTools?.contains(params.name) ?? true else {
        throw MCPError.invalidParams("Unknown tool: \(params.name)")
    }
    do {
        switch params.name {
        case "echo":
            guard let message = args["message"]?.stringValue else {
                throw ArgumentError(message: "echo: 'message' must be a string")
            }
            return textResult(message)

        case "add":
            return try add(a: number(args, "a"), b: number(args, "b"))

        case "slow":
            let steps = try integer(args, "steps", default: 3, range: 0...1000)
            let intervalMs = try integer(args, "intervalMs", default: 500, range: 0...60000)
            return try await slow(
                steps: steps, intervalMs: intervalMs, token: params._meta?.progressToken,
                server: server, logger: logger)

        case "fail":
            return textResult("the fail tool always fails", isError: true)

        case "delete_item":
            guard let id = args["id"]?.stringValue else {
                throw ArgumentError(message: "delete_item: 'id' must be a string")
            }
            return textResult("deleted item \(id)")

        case "touch":
            try await server.notify(ToolListChangedNotification.message())
            return textResult("announced a tool list change")

        case "ask_roots":
            guard await state.clientSupportsRoots else {
                return textResult(
                    "the client did not declare the roots capability", isError: true)
            }
            let roots = try await server.listRoots()
            return textResult(
                roots.isEmpty ? "no roots" : roots.map(\.uri).joined(separator: "\n"))

        default:
            throw MCPError.invalidParams("Unknown tool: \(params.name)")
        }
    } catch let error as ArgumentError {
        return textResult(error.message, isError: true)
    }
}

private enum Addend {
    case int(Int)
    case double(Double)

    var double: Double {
        switch self {
        case .int(let value): Double(value)
        case .double(let value): value
        }
    }
}

private func number(_ args: [String: Value], _ key: String) throws -> Addend {
    switch args[key] {
    case .int(let value)?: return .int(value)
    case .double(let value)?: return .double(value)
    default: throw ArgumentError(message: "add: '\(key)' must be a number")
    }
}

private func integer(
    _ args: [String: Value], _ key: String, default defaultValue: Int, range: ClosedRange<Int>
) throws -> Int {
    let value: Int
    switch args[key] {
    case nil, .null?:
        return defaultValue
    case .int(let int)?:
        value = int
    case .double(let double)? where double.rounded() == double && abs(double) < 1e15:
        value = Int(double)
    default:
        throw ArgumentError(message: "slow: '\(key)' must be an integer")
    }
    guard range.contains(value) else {
        throw ArgumentError(
            message: "slow: '\(key)' must be between \(range.lowerBound) and \(range.upperBound)")
    }
    return value
}

private func add(a: Addend, b: Addend) -> CallTool.Result {
    let sum: Value
    if case .int(let x) = a, case .int(let y) = b,
        case (let total, false) = x.addingReportingOverflow(y)
    {
        sum = .int(total)
    } else {
        let total = a.double + b.double
        // Integral results print without ".0" (2 + 3.0 → "5").
        if total.rounded() == total, abs(total) < 9.0e15 {
            sum = .int(Int(total))
        } else {
            sum = .double(total)
        }
    }
    let text: String
    switch sum {
    case .int(let value): text = String(value)
    case .double(let value): text = String(value)
    default: text = "\(sum)"
    }
    return CallTool.Result(
        content: [.text(text: text, annotations: nil, _meta: nil)],
        structuredContent: .object(["sum": sum])
    )
}

private func slow(
    steps: Int, intervalMs: Int, token: ProgressToken?, server: Server, logger: Logger
) async throws -> CallTool.Result {
    for step in stride(from: 1, through: steps, by: 1) {
        // Cancellation (notifications/cancelled) throws here; the SDK then sends no response.
        try await Task.sleep(for: .milliseconds(intervalMs))
        if let token {
            let notification = ProgressNotification.message(
                .init(
                    progressToken: token,
                    progress: Double(step),
                    total: Double(steps),
                    message: "step \(step) of \(steps)"
                ))
            do {
                try await server.notify(notification)
            } catch {
                logger.warning("could not send progress", metadata: ["error": "\(error)"])
            }
        }
    }
    return textResult("done after \(steps) steps")
}
