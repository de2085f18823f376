import GatehouseConfig
import GatehouseUpstream
import MCPWire

/// Step 4: the Rego decision on the routed, typed request (docs/policy.md "In the data plane").
/// A denied request never reaches the upstream; an allowed one carries the decision's
/// obligations (redaction, headers, rate numbers) on to the later steps. Lists are not decided
/// here: their items are filtered one by one when the answer is finished.
struct PolicyStep: RequestStep {
    let policy: GatewayPolicy?
    let federation: Federation

    nonisolated(nonsending) func handle(_ exchange: Exchange, next: nonisolated(nonsending) (Exchange) async throws(GatewayError) -> Outcome) async throws(GatewayError) -> Outcome {
        guard let policy, policy.engine != nil, !exchange.typed.method.isList else { return try await next(exchange) }
        let server: Int?
        switch exchange.target {
        case .server(let index, _): server = index
        case .broadcast: server = nil
        case .fanOutList, .unrouted: return try await next(exchange)
        }
        let routed = exchange.routedMessage
        let serverName = server.map { federation.servers[$0].config.name }
        var tool: JSONValue?
        if case .toolsCall(let name, _)? = routed.request, let server, let serverName {
            tool = policy.tool(server: serverName, name: name)
            if tool == nil {
                await loadToolDefinitions(server: server, channels: exchange.channels)
                tool = policy.tool(server: serverName, name: name)
            }
            if let annotate = federation.annotator(server: server) { tool = tool.map(annotate) }
            // A tool the server does not list gets the same answer as a hidden one, so a
            // caller cannot tell "forbidden" from "missing" by comparing the two.
            if tool == nil, policy.config.deniedTools == .hide, policy.knowsTools(of: serverName) {
                throw .unknownTarget(kind: "tool", name: exchange.typed.targetName ?? name, hidden: false)
            }
        }
        let span = exchange.span?.child("gatehouse.policy", kind: .internal)
        // What the request names: a tool or prompt, a resource, or what a completion completes
        // (a rule on a prompt or resource covers completions on it too).
        var name = routed.request?.targetName
        var uri = routed.request?.uri
        if case .complete(let ref)? = routed.request {
            switch ref {
            case .prompt(let prompt): name = prompt
            case .resource(let resource): uri = resource
            case .other: break
            }
        }
        let decision = policy.decide(caller: exchange.caller, message: routed.rpc, server: serverName, name: name,
                                     uri: uri, tool: tool, protocolVersion: exchange.clientVersion.rawValue,
                                     session: exchange.session != nil)
        span?.setAttribute("gatehouse.policy.decision", .string(decision.allow ? "allow" : "deny"))
        span?.end()
        guard decision.allow else { throw denial(exchange, decision: decision, hide: policy.config.deniedTools == .hide) }
        exchange.record.update { $0.responseHeaders = decision.responseHeaders }
        var exchange = exchange
        exchange.obligations = .init(redaction: decision.redact,
                                     upstreamHeaders: decision.upstreamHeaders, rateLimitOverrides: decision.rateLimits)
        return try await next(exchange)
    }

    /// A denied `tools/call` (or `prompts/get`) answers like an unknown one when
    /// `deniedTools: hide`, so a caller cannot tell a forbidden tool from a missing one.
    func denial(_ exchange: Exchange, decision: PolicyDecision, hide: Bool) -> GatewayError {
        if decision.failed { return .policyFailed }
        switch exchange.typed {
        case .toolsCall(let name, _) where hide: return .unknownTarget(kind: "tool", name: name, hidden: true)
        case .promptsGet(let name, _) where hide: return .unknownTarget(kind: "prompt", name: name, hidden: true)
        default:
            let name = exchange.typed.targetName.map { " '\($0)'" } ?? ""
            return .policyDenied(decision.message ?? "the gateway's policy does not allow \(exchange.typed.method.name)\(name)")
        }
    }

    /// Lists one server's tools (all pages, bounded) so a call's decision can see the tool's
    /// definition and annotations.
    func loadToolDefinitions(server index: Int, channels: ChannelSet) async {
        guard federation.mayList("tools:\(index)") else { return }
        var cursor: String?
        for _ in 0..<20 {
            let pages = await federation.fetchPages(.toolsList, positions: [(index, cursor)], channels: channels)
            guard let result = pages.first?.result else { return }
            policy?.remember(tools: result["tools"]?.arrayValue ?? [], server: federation.servers[index].config.name)
            cursor = result["nextCursor"]?.stringValue
            if cursor?.isEmpty ?? true { return }
        }
    }
}
