import GatehouseConfig
import GatehouseUpstream
import MCPWire
import Synchronization

/// An MCP server in the test process, behind the same `UpstreamBackend` protocol as HTTP and
/// stdio servers: it answers with a handler and records what reached it. No sockets, no
/// processes — the request path under test is the real one.
final class FakeServer: UpstreamBackend {
    /// What the handler answers with: messages sent while working, then the answer (or a failure).
    struct Reply: Sendable {
        var before: [JSONRPCMessage] = []
        var result: JSONValue?
        var error: (code: Int, message: String)?
        var failure: UpstreamError?
        /// Waits this long before answering (concurrency tests).
        var delay: Duration?

        static func result(_ value: JSONValue) -> Reply { Reply(result: value) }
    }

    struct Received: Sendable {
        var message: JSONRPCMessage
        var headers: [(String, String)]
    }

    private struct State {
        var received: [Received] = []
        var notifications: [JSONRPCMessage] = []
        var answers: [JSONRPCMessage] = []
        var failuresLeft = 0
        var failure: UpstreamError.Kind = .unavailable
        var operatorDetail: String?
        var channelsOpened = 0
        var tools: [JSONValue]?
    }

    let name: String
    let upstreamInfo: UpstreamInfo
    private let initialTools: [JSONValue]
    /// The tools it lists now (`setTools` changes them, as a server changing its definitions does).
    var tools: [JSONValue] { state.withLock { $0.tools } ?? initialTools }
    let pageSize: Int?
    let handler: @Sendable (FakeServer, JSONRPCMessage) async -> Reply
    private let state = Mutex(State())

    init(name: String, version: ProtocolVersion = .latestSessionEra, tools: [JSONValue] = FakeServer.standardTools, pageSize: Int? = nil,
         capabilities: JSONObject = ["tools": ["listChanged": true], "prompts": [:], "resources": ["subscribe": true], "logging": [:], "completions": [:]],
         handler: (@Sendable (FakeServer, JSONRPCMessage) async -> Reply)? = nil) {
        self.name = name
        self.upstreamInfo = UpstreamInfo(version: version, capabilities: capabilities, serverInfo: ["name": .string(name), "version": "1"])
        self.initialTools = tools
        self.pageSize = pageSize
        self.handler = handler ?? { server, message in server.standard(message) }
    }

    static let standardTools: [JSONValue] = [
        ["name": "echo", "description": "Echoes its text", "inputSchema": ["type": "object"], "annotations": ["readOnlyHint": true]],
        ["name": "delete_item", "description": "Deletes", "inputSchema": ["type": "object"], "annotations": ["destructiveHint": true]],
        ["name": "progress", "description": "Reports progress, then answers", "inputSchema": ["type": "object"]],
        ["name": "ask", "description": "Asks the client for roots", "inputSchema": ["type": "object"]],
        ["name": "leak", "description": "Answers with an email address", "inputSchema": ["type": "object"], "annotations": ["readOnlyHint": true]],
    ]

    // MARK: What a test reads and sets

    var received: [Received] { state.withLock { $0.received } }
    var requests: [JSONRPCMessage] { received.map(\.message) }
    var notifications: [JSONRPCMessage] { state.withLock { $0.notifications } }
    var answers: [JSONRPCMessage] { state.withLock { $0.answers } }
    var channelsOpened: Int { state.withLock { $0.channelsOpened } }

    func setTools(_ tools: [JSONValue]) { state.withLock { $0.tools = tools } }

    /// The next `count` requests fail with `kind` before reaching the handler.
    func fail(next count: Int, with kind: UpstreamError.Kind = .unavailable, operatorDetail: String? = nil) {
        state.withLock {
            $0.failuresLeft = count
            $0.failure = kind
            $0.operatorDetail = operatorDetail
        }
    }

    // MARK: UpstreamBackend

    var currentInfo: UpstreamInfo? { upstreamInfo }
    func connect() async throws -> UpstreamInfo { upstreamInfo }

    func channel(for owner: ChannelOwner, client: ClientDescription, info: UpstreamInfo) async throws -> any UpstreamChannel {
        state.withLock { $0.channelsOpened += 1 }
        return FakeChannel(server: self)
    }

    func shutdown() async {}

    func exchange(_ request: JSONRPCMessage, headers: [(String, String)]) async -> Reply {
        let failure = state.withLock { state -> UpstreamError? in
            state.received.append(Received(message: request, headers: headers))
            guard state.failuresLeft > 0 else { return nil }
            state.failuresLeft -= 1
            return UpstreamError(upstream: name, kind: state.failure, detail: "connection refused", neverSent: true, operatorDetail: state.operatorDetail)
        }
        if let failure { return Reply(failure: failure) }
        return await handler(self, request)
    }

    func record(notification: JSONRPCMessage) { state.withLock { $0.notifications.append(notification) } }
    func record(answer: JSONRPCMessage) { state.withLock { $0.answers.append(answer) } }

    // MARK: The standard server

    /// Tools (`standardTools`), a prompt, two resources, completion and logging.
    func standard(_ message: JSONRPCMessage) -> Reply {
        let params = message.params ?? [:]
        switch message.mcpMethod ?? .other("") {
        case .ping:
            return .result(.object([:]))
        case .toolsList:
            let start = params["cursor"]?.stringValue.flatMap(Int.init) ?? 0
            let tools = self.tools
            let end = pageSize.map { min(tools.count, start + $0) } ?? tools.count
            var result: JSONObject = ["tools": .array(Array(tools[start..<end]))]
            if end < tools.count { result["nextCursor"] = .string(String(end)) }
            return .result(.object(result))
        case .toolsCall:
            let arguments = params["arguments"]?.objectValue ?? [:]
            switch params["name"]?.stringValue {
            case "echo"?, "delete_item"?:
                let text = arguments["text"]?.stringValue ?? ""
                return .result(["content": [["type": "text", "text": .string("\(name): \(text)")]]])
            case "leak"?:
                return .result(["content": [["type": "text", "text": "write to alice@example.com"]]])
            case "progress"?:
                let token = params["_meta"]?["progressToken"] ?? "t"
                let notes = (1...3).map { step in
                    JSONRPCMessage.notification(method: "notifications/progress", params: ["progressToken": token, "progress": .int(step), "message": "mail bob@example.com"])
                }
                return Reply(before: notes, result: ["content": [["type": "text", "text": "done"]]])
            case "ask"?:
                let ask = JSONRPCMessage.request(id: "ask-1", method: "roots/list", params: [:])
                return Reply(before: [ask], result: ["content": [["type": "text", "text": "asked"]]])
            default:
                return Reply(result: ["content": [["type": "text", "text": "Unknown tool"]], "isError": true])
            }
        case .promptsList:
            return .result(["prompts": [["name": "greet", "description": "Greets"]]])
        case .promptsGet:
            return .result(["messages": [["role": "user", "content": ["type": "text", "text": .string("hello from \(name)")]]]])
        case .resourcesList:
            return .result(["resources": [["uri": .string("file:///\(name)/readme"), "name": "readme"]]])
        case .resourcesRead:
            let uri = params["uri"]?.stringValue ?? ""
            guard uri.hasPrefix("file:///\(name)/") else { return Reply(error: (JSONRPCErrorCode.invalidParams, "no such resource: \(uri)")) }
            return .result(["contents": [["uri": .string(uri), "text": .string("contents of \(uri)")]]])
        case .complete:
            return .result(["completion": ["values": ["one", "two"]]])
        case .setLoggingLevel:
            return .result(.object([:]))
        default:
            return Reply(error: (JSONRPCErrorCode.methodNotFound, "Method not found: \(message.method ?? "")"))
        }
    }
}

/// One channel to a fake server: each request's events come from the server's reply.
final class FakeChannel: UpstreamChannel {
    let server: FakeServer
    init(server: FakeServer) { self.server = server }

    var info: UpstreamInfo { server.upstreamInfo }
    var upstreamSessionID: String? { server.upstreamInfo.version.isStateless ? nil : "fake-session" }

    func send(request: JSONRPCMessage, headers: [(String, String)]) -> UpstreamEvents {
        let server = self.server
        let stream = AsyncThrowingStream<UpstreamEvent, any Error> { continuation in
            let task = Task {
                let reply = await server.exchange(request, headers: headers)
                if let failure = reply.failure {
                    continuation.finish(throwing: failure)
                    return
                }
                for message in reply.before { continuation.yield(.message(message)) }
                if let delay = reply.delay { try? await Task.sleep(for: delay) }
                let id = request.id ?? .null
                if let error = reply.error {
                    continuation.yield(.response(.error(id: id, code: error.code, message: error.message)))
                } else {
                    continuation.yield(.response(.response(id: id, result: reply.result ?? .object([:]))))
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
        return UpstreamEvents(stream)
    }

    func send(notification: JSONRPCMessage) async throws { server.record(notification: notification) }
    func send(response: JSONRPCMessage) async throws { server.record(answer: response) }
    func setUnsolicitedHandler(_ handler: @escaping @Sendable (JSONRPCMessage) -> Void) {}
    func close() async {}
}
