import GatehouseUpstream
import HTTPTypes
import Hummingbird
import Logging
import MCPWire

/// Every refusal and failure on the MCP request path, as one type with one mapping to what
/// the client sees (HTTP status, JSON-RPC code, message, `data.gatehouse.reason`, headers),
/// what the log says (level) and what the metrics count (outcome label).
///
/// Messages say what happened and what to do about it; none carries an upstream's internals.
enum GatewayError: Error, Sendable {
    // The HTTP request, before any JSON-RPC message is read.
    case hostOrOrigin(String)
    case pipelineDenied
    case httpMethodNotAllowed(String)
    case notAcceptable(String)
    case unsupportedMediaType
    case bodyTooLarge(limit: Int)
    case parseError(String)
    case tooDeep(limit: Int)
    /// Bad JSON-RPC or MCP framing; the text follows "Invalid Request: ".
    case invalidRequest(String)
    /// Missing or contradicting headers; the text follows "Bad Request: ".
    case badRequest(String)
    /// The 2026-07-28 header and version rules (status and code as the rules say).
    case wire(WireRejection)
    case sessionNotFound
    case tooManySessions
    case callerSessionsFull(limit: Int)
    // One JSON-RPC request.
    case invalidParams(String)
    /// A tool or prompt that does not exist for this caller; `hidden` when policy hides it.
    case unknownTarget(kind: String, name: String, hidden: Bool)
    case methodNotFound(String)
    case nameCollision(kind: String, name: String, servers: (String, String))
    case policyDenied(String)
    case policyFailed
    /// A tool whose definition is not approved (tool pinning, enforce mode, `deniedTools: error`).
    case toolHeld(name: String, status: String)
    case rateLimited(limit: String, retryAfterSeconds: Int)
    case upstreamBusy(upstream: String, limit: Int)
    case circuitOpen(upstream: String)
    case upstream(UpstreamError)
    case `internal`

    /// Wraps any error from the path: gateway and upstream errors as they are, anything else
    /// as an internal error (logged, never shown).
    init(_ error: any Error) {
        switch error {
        case let error as GatewayError: self = error
        case let error as UpstreamError: self = .upstream(error)
        default: self = .internal
        }
    }

    var status: HTTPResponse.Status {
        switch self {
        case .hostOrOrigin, .pipelineDenied: .forbidden
        case .httpMethodNotAllowed: .methodNotAllowed
        case .notAcceptable: .notAcceptable
        case .unsupportedMediaType: .unsupportedMediaType
        case .bodyTooLarge: .contentTooLarge
        case .parseError, .tooDeep, .invalidRequest, .badRequest: .badRequest
        case .wire(let rejection): .init(code: rejection.httpStatus)
        case .sessionNotFound: .notFound
        case .tooManySessions: .serviceUnavailable
        case .callerSessionsFull, .rateLimited, .upstreamBusy: .tooManyRequests
        // JSON-RPC-level errors of a request the gateway accepted travel in a 200 answer.
        case .invalidParams, .unknownTarget, .methodNotFound, .nameCollision, .policyDenied, .policyFailed, .toolHeld,
             .circuitOpen, .upstream, .internal:
            .ok
        }
    }

    var code: Int {
        switch self {
        case .parseError: JSONRPCErrorCode.parseError
        case .hostOrOrigin, .httpMethodNotAllowed, .notAcceptable, .unsupportedMediaType, .bodyTooLarge, .tooDeep,
             .invalidRequest, .badRequest, .sessionNotFound:
            JSONRPCErrorCode.invalidRequest
        case .wire(let rejection): rejection.code
        case .invalidParams, .unknownTarget: JSONRPCErrorCode.invalidParams
        case .methodNotFound: JSONRPCErrorCode.methodNotFound
        case .pipelineDenied, .policyDenied, .policyFailed, .toolHeld: JSONRPCErrorCode.policyDenied
        case .rateLimited, .upstreamBusy: JSONRPCErrorCode.rateLimited
        case .tooManySessions, .callerSessionsFull, .nameCollision, .circuitOpen, .upstream, .internal: JSONRPCErrorCode.internalError
        }
    }

    var message: String {
        switch self {
        case .hostOrOrigin(let text): text
        case .pipelineDenied: "Forbidden: the gateway's access rules do not allow this request"
        case .httpMethodNotAllowed(let method):
            "method \(method) is not allowed on the MCP endpoint; use POST (GET and DELETE for sessions)"
        case .notAcceptable(let text): "Not Acceptable: " + text
        case .unsupportedMediaType: "Unsupported Media Type: send the JSON-RPC message with Content-Type: application/json"
        case .bodyTooLarge(let limit): "Payload Too Large: the body exceeds \(limit) bytes (spec.limits.maxBodyBytes)"
        case .parseError(let text): "Parse error: \(text); send one JSON-RPC message as UTF-8 JSON"
        case .tooDeep(let limit): "Invalid Request: the JSON nests deeper than \(limit) levels (spec.limits.maxJSONDepth)"
        case .invalidRequest(let text): "Invalid Request: " + text
        case .badRequest(let text): "Bad Request: " + text
        case .wire(let rejection): rejection.message
        case .sessionNotFound: "Session not found: it expired or was ended; send initialize without Mcp-Session-Id to start a new one"
        case .tooManySessions:
            "the gateway has too many open sessions (spec.sessions.maxSessions); retry later or end unused sessions with DELETE"
        case .callerSessionsFull(let limit):
            "you hold \(limit) sessions, all in use (spec.sessions.maxPerCaller); end one with DELETE before starting another"
        case .invalidParams(let text): text
        case .unknownTarget(let kind, let name, _): "Unknown \(kind): \(name)"
        case .methodNotFound(let text): "Method not found: " + text
        case .nameCollision(let kind, let name, let servers):
            "\(kind) name '\(name)' is offered by both '\(servers.0)' and '\(servers.1)'; set naming.prefix to always or on-collision for this endpoint"
        case .policyDenied(let text): "Forbidden: " + text
        case .policyFailed: "Forbidden: the request could not be authorized (the gateway's policy failed; the operator has the details)"
        case .toolHeld(let name, let status):
            "Forbidden: tool '\(name)' is held: its definition is \(status == "changed" ? "changed since it was approved" : status == "rejected" ? "rejected" : "not approved yet"); an operator must review and approve it (gatehouse tools diff / approve)"
        case .rateLimited(let limit, let seconds): "Too many requests: the rate limit '\(limit)' allows no more now; retry in \(seconds) s"
        case .upstreamBusy(let upstream, let limit):
            "Too many requests: upstream '\(upstream)' is at its limit of \(limit) concurrent requests; retry shortly"
        case .circuitOpen(let upstream):
            UpstreamError(upstream: upstream, kind: .unavailable, detail: "its circuit breaker is open after repeated failures; try again in a few seconds").description
        case .upstream(let error): error.description
        case .internal: "internal gateway error; see the gateway log"
        }
    }

    /// `error.data.gatehouse.reason`, for clients that act on the cause.
    var reason: String? {
        switch self {
        case .pipelineDenied, .policyDenied: "policy_denied"
        case .policyFailed: "policy_error"
        case .toolHeld: "tool_held"
        case .rateLimited: "rate_limited"
        case .upstreamBusy: "upstream_busy"
        case .circuitOpen: "upstream_unavailable"
        case .upstream(let error): error.reason
        default: nil
        }
    }

    var data: JSONValue? {
        switch self {
        case .wire(let rejection):
            return rejection.data
        case .rateLimited(let limit, let seconds):
            return ["gatehouse": ["reason": "rate_limited", "limit": .string(limit), "retryAfterSeconds": .int(seconds)]]
        case .upstreamBusy(let upstream, _):
            return ["gatehouse": ["reason": "upstream_busy", "upstream": .string(upstream), "retryAfterSeconds": 1]]
        case .circuitOpen(let upstream):
            return ["gatehouse": ["upstream": .string(upstream), "reason": "upstream_unavailable"]]
        case .upstream(let error):
            return ["gatehouse": ["upstream": .string(error.upstream), "reason": .string(error.reason)]]
        default:
            return reason.map { ["gatehouse": ["reason": .string($0)]] }
        }
    }

    var headers: HTTPFields {
        var headers = HTTPFields()
        switch self {
        case .httpMethodNotAllowed: headers[.allow] = "GET, POST, DELETE"
        case .rateLimited(_, let seconds): headers[.retryAfter] = String(seconds)
        case .upstreamBusy: headers[.retryAfter] = "1"
        default: break
        }
        return headers
    }

    /// The outcome label of `gatehouse_requests_total`.
    var outcome: String {
        switch self {
        case .policyDenied, .policyFailed, .pipelineDenied, .toolHeld: "denied"
        case .unknownTarget(_, _, let hidden): hidden ? "denied" : "error"
        case .rateLimited, .upstreamBusy: "rate_limited"
        default: "error"
        }
    }

    /// The `error.type` of the duration metric and of the span.
    var errorType: String {
        switch self {
        case .circuitOpen: "circuit_open"
        case .upstream(let error): error.reason
        default: outcome
        }
    }

    var logLevel: Logger.Level {
        switch self {
        case .internal: .error
        case .upstream, .circuitOpen: .warning
        case .hostOrOrigin, .tooManySessions, .callerSessionsFull: .notice
        default: .debug
        }
    }

    /// The JSON-RPC error answer.
    func answer(id: JSONValue?) -> JSONRPCMessage {
        .error(id: id, code: code, message: message, data: data)
    }

    /// The HTTP answer; `id` names the request when one could be read.
    func response(id: JSONValue?) -> Response {
        HTTPResponses.json(answer(id: id), status: status, headers: headers)
    }

    /// Logs the error once, at its level, with what the operator needs (upstream details).
    func log(_ logger: Logger) {
        switch self {
        case .upstream(let error):
            var metadata: Logger.Metadata = ["upstream": "\(error.upstream)", "reason": "\(error.reason)", "detail": "\(error.detail)"]
            if let hidden = error.operatorDetail { metadata["operator_detail"] = "\(hidden)" }
            logger.warning("upstream failure", metadata: metadata)
        case .internal:
            logger.error("internal error")
        default:
            logger.log(level: logLevel, "refused request", metadata: ["reason": "\(message)"])
        }
    }
}
