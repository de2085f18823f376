/// JSON-RPC 2.0 error codes Gatehouse emits. Gateway-specific failures (an upstream that is
/// down or slow) use -32603 with `data.gatehouse` describing the cause, because MCP reserves
/// -32000...-32099 for codes its specification defines.
public enum JSONRPCErrorCode {
    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    /// Gatehouse: the request was refused by policy (an implementation-defined server error).
    public static let policyDenied = -32001
    /// Gatehouse: a rate limit refused the request; `data.gatehouse.retryAfterSeconds` says when to retry.
    public static let rateLimited = -32029
    /// 2026-07-28: HTTP headers do not match the body, or required headers are missing.
    public static let headerMismatch = -32020
    /// 2026-07-28: the request needs a client capability the client did not declare.
    public static let missingRequiredClientCapability = -32021
    /// 2026-07-28: the requested protocol version is not supported.
    public static let unsupportedProtocolVersion = -32022
}

/// Why a JSON value is not a JSON-RPC message.
public struct JSONRPCEnvelopeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// The id, when one could be read, so the error response can name the request.
    public var id: JSONValue?
    public var description: String { message }
}

/// One JSON-RPC message, validated, with its original object kept for forwarding.
public struct JSONRPCMessage: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case request
        case notification
        case response
        case errorResponse
    }

    public var kind: Kind
    public var object: JSONObject

    public var id: JSONValue? {
        get { object["id"] }
        set { object["id"] = newValue }
    }
    public var method: String? { object["method"]?.stringValue }
    public var params: JSONObject? {
        get { object["params"]?.objectValue }
        set { object["params"] = newValue.map(JSONValue.object) }
    }
    public var result: JSONValue? { object["result"] }
    public var error: JSONObject? { object["error"]?.objectValue }

    public var isRequest: Bool { kind == .request }
    public var isNotification: Bool { kind == .notification }
    public var isResponse: Bool { kind == .response || kind == .errorResponse }

    /// Validates the envelope: `jsonrpc: "2.0"`, then exactly one of request, notification,
    /// result or error shapes. Request ids must be strings or integers (MCP forbids null).
    public init(validating value: JSONValue) throws(JSONRPCEnvelopeError) {
        guard case .object(let object) = value else {
            throw JSONRPCEnvelopeError(message: "a JSON-RPC message must be a JSON object, not \(value.typeName)")
        }
        let id = object["id"]
        guard object["jsonrpc"] == .string("2.0") else {
            throw JSONRPCEnvelopeError(message: "missing or wrong \"jsonrpc\" member: it must be \"2.0\"", id: Self.usableID(id))
        }
        if let method = object["method"] {
            guard case .string = method else {
                throw JSONRPCEnvelopeError(message: "\"method\" must be a string", id: Self.usableID(id))
            }
            if let params = object["params"], params.objectValue == nil {
                throw JSONRPCEnvelopeError(message: "\"params\" must be an object", id: Self.usableID(id))
            }
            if let id {
                guard Self.usableID(id) != nil else {
                    throw JSONRPCEnvelopeError(message: "a request id must be a string or an integer")
                }
                self.kind = .request
            } else {
                self.kind = .notification
            }
        } else if object["result"] != nil {
            guard let id, Self.usableID(id) != nil else {
                throw JSONRPCEnvelopeError(message: "a response needs the id of its request")
            }
            self.kind = .response
        } else if let error = object["error"] {
            guard let errorObject = error.objectValue, errorObject["code"]?.intValue != nil,
                errorObject["message"]?.stringValue != nil
            else {
                throw JSONRPCEnvelopeError(message: "\"error\" must be an object with an integer code and a message", id: Self.usableID(id))
            }
            self.kind = .errorResponse
        } else {
            throw JSONRPCEnvelopeError(message: "not a JSON-RPC request, notification or response: \"method\", \"result\" or \"error\" is missing", id: Self.usableID(id))
        }
        self.object = object
    }

    public init(kind: Kind, object: JSONObject) {
        self.kind = kind
        self.object = object
    }

    private static func usableID(_ id: JSONValue?) -> JSONValue? {
        switch id {
        case .string?: return id
        case .number(let text)?: return text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) ? nil : id
        default: return nil
        }
    }

    // MARK: Building messages

    public static func request(id: JSONValue, method: String, params: JSONObject?) -> JSONRPCMessage {
        var object: JSONObject = ["jsonrpc": "2.0", "id": id, "method": .string(method)]
        if let params { object["params"] = .object(params) }
        return JSONRPCMessage(kind: .request, object: object)
    }

    public static func notification(method: String, params: JSONObject?) -> JSONRPCMessage {
        var object: JSONObject = ["jsonrpc": "2.0", "method": .string(method)]
        if let params { object["params"] = .object(params) }
        return JSONRPCMessage(kind: .notification, object: object)
    }

    public static func response(id: JSONValue, result: JSONValue) -> JSONRPCMessage {
        JSONRPCMessage(kind: .response, object: ["jsonrpc": "2.0", "id": id, "result": result])
    }

    public static func error(id: JSONValue?, code: Int, message: String, data: JSONValue? = nil) -> JSONRPCMessage {
        var error: JSONObject = ["code": .int(code), "message": .string(message)]
        if let data { error["data"] = data }
        var object: JSONObject = ["jsonrpc": "2.0"]
        if let id { object["id"] = id }
        object["error"] = .object(error)
        return JSONRPCMessage(kind: .errorResponse, object: object)
    }

    public var bytes: [UInt8] { JSONWriter.bytes(.object(object)) }
}

extension JSONValue {
    /// A stable text form of a JSON-RPC id, for use as a dictionary key.
    public var idKey: String {
        switch self {
        case .string(let s): return "s:" + s
        case .number(let n): return "n:" + n
        default: return "?" + JSONWriter.string(self)
        }
    }
}
