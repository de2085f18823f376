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
///
/// A message read from bytes may keep them (`wire`): while nothing but its id changes, `bytes`
/// relays them as they came (the id replaced in place) instead of writing the object anew, which
/// is most of what a passthrough call costs in JSON. Any other change to `object` drops them.
public struct JSONRPCMessage: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case request
        case notification
        case response
        case errorResponse
    }

    public var kind: Kind
    public var object: JSONObject {
        didSet { wire = nil }
    }

    /// The bytes the message was read from, while they still say exactly what `object` says.
    public private(set) var wire: Wire?

    public struct Wire: Sendable {
        public private(set) var bytes: [UInt8]
        /// Where the top-level `"id"` value lies in `bytes` (nil: the message has no id).
        public private(set) var idRange: Range<Int>?

        /// The same bytes with another id; nil when there is no id to replace.
        func replacingID(with id: JSONValue) -> Wire? {
            guard let idRange else { return nil }
            let text = JSONWriter.bytes(id)
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count - idRange.count + text.count)
            out.append(contentsOf: bytes[..<idRange.lowerBound])
            out.append(contentsOf: text)
            out.append(contentsOf: bytes[idRange.upperBound...])
            return Wire(bytes: out, idRange: idRange.lowerBound..<(idRange.lowerBound + text.count))
        }
    }

    public var id: JSONValue? {
        get { object["id"] }
        set {
            let patched = newValue.flatMap { wire?.replacingID(with: $0) }
            object["id"] = newValue
            wire = patched
        }
    }

    /// Validates a parsed document as one message and keeps its bytes for relaying when they
    /// can go on as they are (`JSONParser.Document.verbatim`).
    public init(document: JSONParser.Document, bytes: some Collection<UInt8>) throws(JSONRPCEnvelopeError) {
        try self.init(validating: document.value)
        if document.verbatim { wire = Wire(bytes: Array(bytes), idRange: document.idRange) }
    }

    /// Equal when kind and object are: the bytes are only a faster way of writing the object.
    public static func == (lhs: JSONRPCMessage, rhs: JSONRPCMessage) -> Bool {
        lhs.kind == rhs.kind && lhs.object == rhs.object
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
            guard object["error"] == nil else {
                throw JSONRPCEnvelopeError(message: "a response has \"result\" or \"error\", not both", id: Self.usableID(id))
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

    /// The message as JSON: the bytes it came as when nothing in it changed but its id.
    public var bytes: [UInt8] { wire?.bytes ?? JSONWriter.bytes(.object(object)) }
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
