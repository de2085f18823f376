import Foundation
import GatehouseUpstream
import HTTPTypes
import Hummingbird
import MCPWire

/// Rate limits and request metrics at the MCP level.
extension MCPEndpoint {
    struct RateRefusal {
        var answer: JSONRPCMessage
        var headers: HTTPFields
    }

    /// After policy allowed the request and before it goes upstream: denied requests do not use
    /// up tokens, and a limited request never reaches the upstream.
    func rateLimit(_ route: Route, message: JSONRPCMessage, scope: Scope) async -> RateRefusal? {
        guard let rateLimiter, let method = message.method else { return nil }
        let server: Int?
        let routed: JSONRPCMessage
        switch route {
        case .server(let index, let m): (server, routed) = (index, m)
        case .fanOutList, .broadcast: (server, routed) = (nil, message)
        case .answer: return nil
        }
        let serverName = server.map { servers[$0].config.name }
        let tool = method == "tools/call" ? routed.params?["name"]?.stringValue : nil
        let subject = RateLimiter.Subject(identity: scope.caller.identity.channelKey, client: scope.caller.identity.clientID,
                                          server: serverName, tool: tool, method: method, overrides: scope.rateLimitOverrides)
        guard let refusal = await rateLimiter.take(subject) else { return nil }
        let seconds = max(1, Int(refusal.retryAfter.rounded(.up)))
        metrics.increment("gatehouse_rate_limited_total", [refusal.limit])
        recordRequest(message, server: serverName, outcome: "rate_limited", scope: scope)
        var data = JSONObject()
        data["gatehouse"] = ["reason": "rate_limited", "limit": .string(refusal.limit), "retryAfterSeconds": .int(seconds)]
        var headers = HTTPFields()
        headers[.retryAfter] = String(seconds)
        let answer = JSONRPCMessage.error(id: message.id, code: JSONRPCErrorCode.rateLimited,
                                          message: "Too many requests: the rate limit '\(refusal.limit)' allows no more now; retry in \(seconds) s",
                                          data: .object(data))
        return RateRefusal(answer: answer, headers: headers)
    }

    /// Counts a finished MCP request and its durations.
    func recordRequest(_ message: JSONRPCMessage, server: String?, outcome: String, scope: Scope, errorType: String = "") {
        // Labels from bounded sets only (MetricLabels): never a client's raw method or tool name.
        let method = MetricLabels.method(message.method ?? "")
        let tool = method == "tools/call" ? toolLabel(message.params?["name"]?.stringValue ?? "", server: server, outcome: outcome) : ""
        metrics.increment("gatehouse_requests_total", [endpoint.path, method, server ?? "", tool, outcome])
        if outcome != "ok" {
            scope.span?.setErrorIfUnset(errorType.isEmpty ? outcome : errorType)
            scope.clientSpan?.setErrorIfUnset(errorType.isEmpty ? outcome : errorType)
        }
        metrics.observe("mcp_server_operation_duration_seconds", [endpoint.path, method, tool, errorType.isEmpty && outcome != "ok" ? outcome : errorType],
                        Metrics.seconds(since: scope.started))
        if let server, let upstreamStarted = scope.upstreamStarted {
            metrics.observe("gatehouse_upstream_duration_seconds", [server, method], Metrics.seconds(since: upstreamStarted))
        }
    }

    /// A tool name as a label value: a tool some list showed, the policy knows, or the server
    /// ran successfully (a tool error does not count: servers answer unknown names with
    /// `isError`). Anything else — names a client made up — and names over 128 bytes are `other`.
    func toolLabel(_ name: String, server: String?, outcome: String) -> String {
        guard name.utf8.count <= KnownToolNames.maxLength else { return MetricLabels.other }
        if outcome == "ok" {
            knownTools.learn(name)
            return name
        }
        if let server, policy?.tool(server: server, name: name) != nil { return name }
        return knownTools.label(name)
    }

    /// The metrics of a request that got its final answer from a server.
    func recordAnswer(_ response: JSONRPCMessage, request: JSONRPCMessage, server index: Int, scope: Scope) {
        let outcome: String
        var errorType = ""
        if let code = response.error?["code"]?.intValue {
            outcome = "error"
            errorType = MetricLabels.errorCode(code)
        } else if response.result?["isError"]?.boolValue == true {
            outcome = "tool_error"
            errorType = "tool_error"
        } else {
            outcome = "ok"
        }
        recordRequest(request, server: servers[index].config.name, outcome: outcome, scope: scope, errorType: errorType)
    }
}
