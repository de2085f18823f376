import Foundation
import GatehouseAuth
import GatehouseUpstream
import HTTPTypes
import Hummingbird
import MCPWire
import NIOPosix

/// Policy at the MCP level (docs/policy.md "In the data plane"): every request that reaches a
/// server is decided first; denied requests never reach the upstream; lists show only what the
/// caller may use; answers are redacted as the decision asks.
extension MCPEndpoint {
    func makeCaller(_ request: Request, context: GatewayRequestContext) -> Caller {
        // Without policy nothing reads the request facts: keep the hot path free of them.
        guard policy != nil else { return Caller(identity: context.identity, clientIP: nil, headers: [:], endpoint: endpoint.path) }
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            guard !Caller.hiddenHeaders.contains(name) else { continue }
            headers[name] = headers[name].map { $0 + ", " + field.value } ?? field.value
        }
        let ip = MatchPipeline.clientIP(peer: context.peerAddress, forwardedFor: headers["x-forwarded-for"],
                                        trusted: policy?.config.pipeline?.trustedProxies ?? [])
        return Caller(identity: context.identity, clientIP: ip, headers: headers, endpoint: endpoint.path)
    }

    func caller(_ context: GatewayRequestContext) -> Caller {
        context.caller ?? Caller(identity: context.identity, clientIP: context.peerAddress, headers: [:], endpoint: endpoint.path)
    }

    /// What policy says about a routed request: nil to go ahead (with the decision's obligations
    /// in the returned scope), or the answer that replaces it.
    /// `missing` marks an answer for a tool the server does not list (not a policy denial).
    func authorize(_ route: Route, message: JSONRPCMessage, scope: Scope) async -> (Scope, JSONRPCMessage?, missing: Bool) {
        guard let policy, policy.engine != nil, let method = message.method, Self.listKeys[method] == nil else { return (scope, nil, false) }
        let server: Int?
        let routed: JSONRPCMessage
        switch route {
        case .server(let index, let m): (server, routed) = (index, m)
        case .broadcast: (server, routed) = (nil, message)
        case .answer, .fanOutList: return (scope, nil, false)
        }
        let serverName = server.map { servers[$0].config.name }
        let name = ["tools/call", "prompts/get"].contains(method) ? routed.params?["name"]?.stringValue : nil
        let uri = method.hasPrefix("resources/") ? routed.params?["uri"]?.stringValue : nil
        var tool: JSONValue?
        if method == "tools/call", let server, let name, let serverName {
            tool = policy.tool(server: serverName, name: name)
            if tool == nil {
                await loadToolDefinitions(server: server, scope: scope)
                tool = policy.tool(server: serverName, name: name)
            }
            // A tool the server does not list gets the same answer as a hidden one, so a
            // caller cannot tell "forbidden" from "missing" by comparing the two.
            if tool == nil, policy.config.deniedTools == .hide, policy.knowsTools(of: serverName) {
                return (scope, .error(id: message.id, code: JSONRPCErrorCode.invalidParams, message: "Unknown tool: \(message.params?["name"]?.stringValue ?? name)"), true)
            }
        }
        let decision = policy.decide(caller: scope.caller, message: routed, server: serverName, name: name, uri: uri, tool: tool,
                                     protocolVersion: scope.clientVersion.rawValue, session: scope.session != nil)
        guard decision.allow else { return (scope, denial(message, decision: decision), false) }
        var scope = scope
        scope.redaction = decision.redact
        scope.responseHeaders = decision.responseHeaders
        scope.upstreamHeaders = decision.upstreamHeaders
        scope.rateLimitOverrides = decision.rateLimits
        return (scope, nil, false)
    }

    /// A denied `tools/call` (or `prompts/get`) answers like an unknown one when
    /// `deniedTools: hide`, so a caller cannot tell a forbidden tool from a missing one.
    func denial(_ message: JSONRPCMessage, decision: PolicyDecision) -> JSONRPCMessage {
        let method = message.method ?? ""
        let exposed = message.params?["name"]?.stringValue ?? ""
        if !decision.failed, policy?.config.deniedTools == .hide {
            if method == "tools/call" { return .error(id: message.id, code: JSONRPCErrorCode.invalidParams, message: "Unknown tool: \(exposed)") }
            if method == "prompts/get" { return .error(id: message.id, code: JSONRPCErrorCode.invalidParams, message: "Unknown prompt: \(exposed)") }
        }
        var data = JSONObject()
        data["gatehouse"] = ["reason": .string(decision.failed ? "policy_error" : "policy_denied")]
        let text = decision.failed
            ? "Forbidden: the request could not be authorized (the gateway's policy failed; the operator has the details)"
            : "Forbidden: \(decision.message ?? "the gateway's policy does not allow \(method)\(exposed.isEmpty ? "" : " '\(exposed)'")")"
        return .error(id: message.id, code: JSONRPCErrorCode.policyDenied, message: text, data: .object(data))
    }

    /// The final answer of a request as the client gets it: names and URIs mapped, list items the
    /// caller may not use removed, and the decision's redactions applied.
    func finish(_ response: JSONRPCMessage, request: JSONRPCMessage, server index: Int, scope: Scope) async -> JSONRPCMessage {
        recordAnswer(response, request: request, server: index, scope: scope)
        var mapped = mapResponse(response, server: index)
        let method = request.method ?? ""
        if method == "tools/list", let tools = mapped.result?["tools"]?.arrayValue { knownTools.learn(tools) }
        guard let policy else { return mapped }
        let serverName = servers[index].config.name
        if mapped.kind == .errorResponse, !scope.redaction.isEmpty, let error = mapped.error {
            // An error's message and data can carry the same data as a result would.
            let redactor = Redactor(detectors: scope.redaction.detectors, fields: scope.redaction.fields)
            let (redacted, count) = await Self.offloadIfLarge(.object(error)) { value in
                var count = 0
                let out = redactor.redactError(value.objectValue ?? [:], count: &count)
                return (.object(out), count)
            }
            if count > 0 {
                mapped.object["error"] = redacted
                logger.info("redacted an error answer", metadata: ["method": "\(method)", "server": "\(serverName)", "redactions": "\(count)"])
            }
            return mapped
        }
        guard mapped.kind == .response, let result = mapped.result else { return mapped }
        if let spec = GatewayPolicy.listItems[method], policy.engine != nil, let items = result[spec.key]?.arrayValue, var object = result.objectValue {
            let started = ContinuousClock.now
            let (kept, hidden) = policy.filterItems(items, listMethod: method, server: serverName, caller: scope.caller,
                                                    protocolVersion: scope.clientVersion.rawValue, session: scope.session != nil)
            policy.recordList(caller: scope.caller, message: request, servers: [serverName], hidden: hidden, started: started)
            object[spec.key] = .array(kept)
            mapped.object["result"] = .object(object)
            return mapped
        }
        if !scope.redaction.isEmpty {
            let redactor = Redactor(detectors: scope.redaction.detectors, fields: scope.redaction.fields)
            let (redacted, count) = await Self.offloadIfLarge(result) { value in
                var count = 0
                let out = redactor.redactResult(value, count: &count)
                return (out, count)
            }
            mapped.object["result"] = redacted
            if count > 0 { logger.info("redacted an answer", metadata: ["method": "\(method)", "server": "\(serverName)", "redactions": "\(count)"]) }
        }
        return mapped
    }

    /// What of an upstream's message in the middle of a request reaches the client: redacted as
    /// the request's decision asks; nothing during a list request under a policy (lists are
    /// filtered item by item and have no decision whose redaction could apply to a log line).
    func relayInStream(_ message: JSONRPCMessage, request: JSONRPCMessage, scope: Scope) -> JSONRPCMessage? {
        if policy?.engine != nil, let method = request.method, Self.listKeys[method] != nil {
            logger.debug("not relaying a message sent during a list request", metadata: ["method": "\(message.method ?? "")"])
            return nil
        }
        return redactInStream(message, scope: scope)
    }

    /// Redacts an upstream's message in the middle of a request (notifications, log and
    /// progress messages, an elicitation's text) as the request's decision asks.
    func redactInStream(_ message: JSONRPCMessage, scope: Scope) -> JSONRPCMessage {
        guard !scope.redaction.isEmpty else { return message }
        var count = 0
        let redactor = Redactor(detectors: scope.redaction.detectors, fields: scope.redaction.fields)
        let out = redactor.redactMessage(message, count: &count)
        if count > 0 { logger.info("redacted a message", metadata: ["method": "\(message.method ?? "")", "redactions": "\(count)"]) }
        return out
    }

    /// Text above this size is redacted on NIO's thread pool, not on an event loop, so one
    /// large answer cannot stall the other connections of its loop.
    static let offloadTextBytes = 256 * 1024

    /// Runs `work` here for small values, on the blocking thread pool for large ones.
    static func offloadIfLarge(_ value: JSONValue, _ work: @escaping @Sendable (JSONValue) -> (JSONValue, Int)) async -> (JSONValue, Int) {
        guard Redactor.textSize(value, limit: offloadTextBytes) >= offloadTextBytes else { return work(value) }
        do {
            return try await NIOThreadPool.singleton.runIfActive { work(value) }
        } catch {
            return work(value)  // the pool is shutting down: do it here rather than not at all
        }
    }

    /// Lists one server's tools (all pages, bounded) so a call's decision can see the tool's
    /// definition and annotations.
    func loadToolDefinitions(server index: Int, scope: Scope) async {
        var cursor: String?
        for _ in 0..<20 {
            let pages = await fetchPages(method: "tools/list", positions: [(index, cursor)], scope: scope)
            guard let result = pages.first?.result else { return }
            policy?.remember(tools: result["tools"]?.arrayValue ?? [], server: servers[index].config.name)
            cursor = result["nextCursor"]?.stringValue
            if cursor?.isEmpty ?? true { return }
        }
    }

    /// Adds the decision's response headers (`X-...` only).
    static func withHeaders(_ response: Response, _ headers: [(String, String)]) -> Response {
        guard !headers.isEmpty else { return response }
        var response = response
        for (name, value) in headers {
            if let field = HTTPField.Name(name) { response.headers[field] = value }
        }
        return response
    }
}
