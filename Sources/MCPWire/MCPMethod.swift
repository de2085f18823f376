/// The methods of every MCP revision from 2025-03-26 to 2026-07-28, read from a message's
/// `method` once. This type's `init` is the one place where method names are compared as
/// text; everything downstream switches over cases.
public enum MCPMethod: Sendable, Hashable {
    // Client to server.
    case initialize
    case ping
    case discover
    case listen
    case toolsList
    case toolsCall
    case promptsList
    case promptsGet
    case resourcesList
    case resourceTemplatesList
    case resourcesRead
    case resourcesSubscribe
    case resourcesUnsubscribe
    case complete
    case setLoggingLevel
    case tasksGet
    case tasksList
    case tasksCancel
    case tasksResult
    // Server to client.
    case rootsList
    case samplingCreateMessage
    case elicitationCreate
    // Notifications.
    case initialized
    case cancelled
    case progress
    case message
    case rootsListChanged
    case toolsListChanged
    case promptsListChanged
    case resourcesListChanged
    case resourcesUpdated
    case elicitationComplete
    case tasksStatus
    case subscriptionsAcknowledged
    /// A method no MCP revision defines (forwarded as it is where the gateway forwards).
    case other(String)

    private static let byName: [String: MCPMethod] = {
        var table: [String: MCPMethod] = [:]
        for method in known { table[method.name] = method }
        return table
    }()

    /// Every method an MCP revision defines.
    public static let known: [MCPMethod] = [
        .initialize, .ping, .discover, .listen, .toolsList, .toolsCall, .promptsList, .promptsGet,
        .resourcesList, .resourceTemplatesList, .resourcesRead, .resourcesSubscribe, .resourcesUnsubscribe,
        .complete, .setLoggingLevel, .tasksGet, .tasksList, .tasksCancel, .tasksResult,
        .rootsList, .samplingCreateMessage, .elicitationCreate,
        .initialized, .cancelled, .progress, .message, .rootsListChanged, .toolsListChanged, .promptsListChanged,
        .resourcesListChanged, .resourcesUpdated, .elicitationComplete, .tasksStatus, .subscriptionsAcknowledged,
    ]

    public init(_ name: String) {
        self = Self.byName[name] ?? .other(name)
    }

    /// The wire name.
    public var name: String {
        switch self {
        case .initialize: "initialize"
        case .ping: "ping"
        case .discover: "server/discover"
        case .listen: "subscriptions/listen"
        case .toolsList: "tools/list"
        case .toolsCall: "tools/call"
        case .promptsList: "prompts/list"
        case .promptsGet: "prompts/get"
        case .resourcesList: "resources/list"
        case .resourceTemplatesList: "resources/templates/list"
        case .resourcesRead: "resources/read"
        case .resourcesSubscribe: "resources/subscribe"
        case .resourcesUnsubscribe: "resources/unsubscribe"
        case .complete: "completion/complete"
        case .setLoggingLevel: "logging/setLevel"
        case .tasksGet: "tasks/get"
        case .tasksList: "tasks/list"
        case .tasksCancel: "tasks/cancel"
        case .tasksResult: "tasks/result"
        case .rootsList: "roots/list"
        case .samplingCreateMessage: "sampling/createMessage"
        case .elicitationCreate: "elicitation/create"
        case .initialized: "notifications/initialized"
        case .cancelled: "notifications/cancelled"
        case .progress: "notifications/progress"
        case .message: "notifications/message"
        case .rootsListChanged: "notifications/roots/list_changed"
        case .toolsListChanged: "notifications/tools/list_changed"
        case .promptsListChanged: "notifications/prompts/list_changed"
        case .resourcesListChanged: "notifications/resources/list_changed"
        case .resourcesUpdated: "notifications/resources/updated"
        case .elicitationComplete: "notifications/elicitation/complete"
        case .tasksStatus: "notifications/tasks/status"
        case .subscriptionsAcknowledged: "notifications/subscriptions/acknowledged"
        case .other(let name): name
        }
    }

    public var isKnown: Bool {
        if case .other = self { return false }
        return true
    }

    /// For the four list methods: the result member that holds the items.
    public var listKey: String? {
        switch self {
        case .toolsList: "tools"
        case .promptsList: "prompts"
        case .resourcesList: "resources"
        case .resourceTemplatesList: "resourceTemplates"
        default: nil
        }
    }

    public var isList: Bool { listKey != nil }

    /// Lists and reads: a repeat cannot change anything on the server.
    public var isReadOnly: Bool {
        switch self {
        case .toolsList, .promptsList, .resourcesList, .resourceTemplatesList, .resourcesRead, .promptsGet, .complete, .ping: true
        default: false
        }
    }

    /// The methods whose 2026-07-28 results say how long they may be cached.
    public var isCacheable: Bool {
        switch self {
        case .toolsList, .promptsList, .resourcesList, .resourceTemplatesList, .resourcesRead: true
        default: false
        }
    }
}

extension JSONRPCMessage {
    /// The message's method, decoded (nil for responses).
    public var mcpMethod: MCPMethod? { method.map(MCPMethod.init) }
}

/// Why a request's params do not fit its method: answered with -32602 before anything else.
public struct MCPParamsError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// A client's request, decoded once at the edge: the methods the gateway acts on, with the
/// params it reads; everything else is `other` and forwarded as it came. The message's bytes
/// stay with the `JSONRPCMessage` it was decoded from, for verbatim relay.
public enum MCPRequest: Sendable, Equatable {
    case initialize(protocolVersion: String?)
    case ping
    case discover
    case listen
    case toolsList(cursor: String?)
    case promptsList(cursor: String?)
    case resourcesList(cursor: String?)
    case resourceTemplatesList(cursor: String?)
    case toolsCall(name: String, arguments: JSONObject?)
    case promptsGet(name: String, arguments: JSONObject?)
    case resourcesRead(uri: String)
    case resourcesSubscribe(uri: String)
    case resourcesUnsubscribe(uri: String)
    case complete(ref: CompletionReference)
    case setLoggingLevel
    case other(method: MCPMethod)

    /// What a `completion/complete` request completes.
    public enum CompletionReference: Sendable, Equatable {
        case prompt(name: String)
        case resource(uri: String)
        /// A reference type this revision of the gateway does not know, forwarded as is.
        case other
    }

    /// Decodes a request's params for its method; a method the gateway acts on whose params
    /// lack what it reads (a `tools/call` without a name) is an error the client must fix.
    public init(method: MCPMethod, params: JSONObject?) throws(MCPParamsError) {
        func string(_ key: String) throws(MCPParamsError) -> String {
            guard let value = params?[key]?.stringValue else {
                throw MCPParamsError(message: "Invalid params: \(method.name) needs params.\(key) (a string)")
            }
            return value
        }
        func cursor() throws(MCPParamsError) -> String? {
            switch params?["cursor"] {
            case nil, .null?: return nil
            case .string(let cursor)?: return cursor
            default: throw MCPParamsError(message: "Invalid params: \(method.name) needs params.cursor to be a string (the nextCursor of the previous page)")
            }
        }
        func arguments() throws(MCPParamsError) -> JSONObject? {
            guard let value = params?["arguments"] else { return nil }
            guard let object = value.objectValue else {
                if case .null = value { return nil }
                throw MCPParamsError(message: "Invalid params: \(method.name) needs params.arguments to be an object")
            }
            return object
        }
        switch method {
        case .initialize: self = .initialize(protocolVersion: params?["protocolVersion"]?.stringValue)
        case .ping: self = .ping
        case .discover: self = .discover
        case .listen: self = .listen
        case .toolsList: self = .toolsList(cursor: try cursor())
        case .promptsList: self = .promptsList(cursor: try cursor())
        case .resourcesList: self = .resourcesList(cursor: try cursor())
        case .resourceTemplatesList: self = .resourceTemplatesList(cursor: try cursor())
        case .toolsCall: self = .toolsCall(name: try string("name"), arguments: try arguments())
        case .promptsGet:
            let arguments = try arguments()
            // Prompt arguments are strings (the schema's `{[key: string]: string}`).
            if let arguments, arguments.contains(where: { $0.value.stringValue == nil }) {
                throw MCPParamsError(message: "Invalid params: prompts/get needs every params.arguments value to be a string")
            }
            self = .promptsGet(name: try string("name"), arguments: arguments)
        case .resourcesRead: self = .resourcesRead(uri: try string("uri"))
        case .resourcesSubscribe: self = .resourcesSubscribe(uri: try string("uri"))
        case .resourcesUnsubscribe: self = .resourcesUnsubscribe(uri: try string("uri"))
        case .complete:
            guard let ref = params?["ref"]?.objectValue else {
                throw MCPParamsError(message: "Invalid params: completion/complete needs params.ref (an object)")
            }
            switch ref["type"]?.stringValue {
            case "ref/prompt": self = .complete(ref: ref["name"]?.stringValue.map { .prompt(name: $0) } ?? .other)
            case "ref/resource": self = .complete(ref: ref["uri"]?.stringValue.map { .resource(uri: $0) } ?? .other)
            default: self = .complete(ref: .other)
            }
        case .setLoggingLevel:
            guard let level = params?["level"]?.stringValue, Self.loggingLevels.contains(level) else {
                throw MCPParamsError(message: "Invalid params: logging/setLevel needs params.level, one of \(Self.loggingLevels.joined(separator: ", "))")
            }
            self = .setLoggingLevel
        default: self = .other(method: method)
        }
    }

    /// The syslog levels of `logging/setLevel` (RFC 5424), lowest first.
    public static let loggingLevels = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]

    /// Decodes a request message.
    public init(_ message: JSONRPCMessage) throws(MCPParamsError) {
        try self.init(method: MCPMethod(message.method ?? ""), params: message.params)
    }

    public var method: MCPMethod {
        switch self {
        case .initialize: .initialize
        case .ping: .ping
        case .discover: .discover
        case .listen: .listen
        case .toolsList: .toolsList
        case .promptsList: .promptsList
        case .resourcesList: .resourcesList
        case .resourceTemplatesList: .resourceTemplatesList
        case .toolsCall: .toolsCall
        case .promptsGet: .promptsGet
        case .resourcesRead: .resourcesRead
        case .resourcesSubscribe: .resourcesSubscribe
        case .resourcesUnsubscribe: .resourcesUnsubscribe
        case .complete: .complete
        case .setLoggingLevel: .setLoggingLevel
        case .other(let method): method
        }
    }

    /// The tool a `tools/call` names.
    public var toolName: String? {
        if case .toolsCall(let name, _) = self { return name }
        return nil
    }

    /// The tool or prompt the request names (`tools/call`, `prompts/get`).
    public var targetName: String? {
        switch self {
        case .toolsCall(let name, _), .promptsGet(let name, _): name
        default: nil
        }
    }

    /// The resource URI the request names.
    public var uri: String? {
        switch self {
        case .resourcesRead(let uri), .resourcesSubscribe(let uri), .resourcesUnsubscribe(let uri): uri
        default: nil
        }
    }
}

/// A client's notification, decoded once.
public enum MCPNotification: Sendable, Equatable {
    case initialized
    case cancelled(requestID: JSONValue?)
    case other(method: MCPMethod)

    public init(_ message: JSONRPCMessage) {
        switch MCPMethod(message.method ?? "") {
        case .initialized: self = .initialized
        case .cancelled: self = .cancelled(requestID: message.params?["requestId"])
        case let method: self = .other(method: method)
        }
    }

    public var method: MCPMethod {
        switch self {
        case .initialized: .initialized
        case .cancelled: .cancelled
        case .other(let method): method
        }
    }
}

/// One client message, decoded once at the edge: the JSON-RPC envelope (with the bytes it came
/// as) and what it is.
public struct MCPMessage: Sendable {
    public var rpc: JSONRPCMessage
    public var body: Body

    public enum Body: Sendable, Equatable {
        case request(MCPRequest)
        case notification(MCPNotification)
        case response
    }

    /// Decodes a validated JSON-RPC message.
    public init(_ rpc: JSONRPCMessage) throws(MCPParamsError) {
        self.rpc = rpc
        switch rpc.kind {
        case .request: body = .request(try MCPRequest(rpc))
        case .notification: body = .notification(MCPNotification(rpc))
        case .response, .errorResponse: body = .response
        }
    }

    public init(rpc: JSONRPCMessage, request: MCPRequest) {
        self.rpc = rpc
        self.body = .request(request)
    }

    public var id: JSONValue? { rpc.id }

    /// The request, when the message is one.
    public var request: MCPRequest? {
        if case .request(let request) = body { return request }
        return nil
    }

    public var method: MCPMethod? {
        switch body {
        case .request(let request): request.method
        case .notification(let notification): notification.method
        case .response: nil
        }
    }
}
