import GatehouseUpstream
import MCPWire

/// Step 1: observability around everything after it. Starts the request's SERVER span (when
/// tracing is on) and, when the answer is complete — returned at once, streamed to its end,
/// refused by a later step, or abandoned by the client — counts the request and its durations
/// once and ends the span.
struct ObserveStep: RequestStep {
    let endpointPath: String
    let metrics: Metrics
    let tracer: Tracer?
    let knownTools: KnownToolNames
    let policy: GatewayPolicy?

    nonisolated(nonsending) func handle(_ exchange: Exchange, next: nonisolated(nonsending) (Exchange) async throws(GatewayError) -> Outcome) async throws(GatewayError) -> Outcome {
        var exchange = exchange
        if let tracer {
            exchange.span = ServerSpan.start(exchange.request, caller: exchange.caller, version: exchange.clientVersion, endpointPath: endpointPath, tracer: tracer)
        }
        let outcome: Outcome
        do {
            outcome = try await next(exchange)
        } catch {
            finish(exchange, outcome: error.outcome, errorType: error.errorType)
            throw error
        }
        switch outcome {
        case .answer(let answer):
            let (result, errorType) = Self.outcome(of: answer)
            finish(exchange, outcome: result, errorType: errorType)
        case .stream(let stream):
            let exchange = exchange
            stream.onEnd { end in
                switch end {
                case .answered(let answer):
                    let (result, errorType) = Self.outcome(of: answer)
                    finish(exchange, outcome: result, errorType: errorType)
                case .failed(let error):
                    finish(exchange, outcome: error.outcome, errorType: error.errorType)
                case .abandoned:
                    finish(exchange, outcome: "cancelled", errorType: "cancelled")
                }
            }
        }
        return outcome
    }

    /// What an answer says about the request: a JSON-RPC error, a tool's error, or success.
    static func outcome(of answer: JSONRPCMessage) -> (String, String) {
        if let code = answer.error?["code"]?.intValue { return ("error", MetricLabels.errorCode(code)) }
        if answer.result?["isError"]?.boolValue == true { return ("tool_error", "tool_error") }
        return ("ok", "")
    }

    /// Counts a finished request and its durations, and ends its spans.
    private func finish(_ exchange: Exchange, outcome: String, errorType: String) {
        let facts = exchange.record.current
        let method = MetricLabels.method(exchange.request.method ?? .other(""))
        let server = facts.server
        let tool = exchange.typed.method == .toolsCall ? toolLabel(exchange.typed.toolName ?? "", server: server, outcome: outcome) : ""
        metrics.increment("gatehouse_requests_total", [endpointPath, method, server ?? "", tool, outcome])
        if outcome != "ok" {
            let type = errorType.isEmpty ? outcome : errorType
            facts.clientSpan?.setErrorIfUnset(type)
            exchange.span?.setErrorIfUnset(type)
        }
        metrics.observe("mcp_server_operation_duration_seconds", [endpointPath, method, tool, errorType.isEmpty && outcome != "ok" ? outcome : errorType],
                        Metrics.seconds(since: facts.started))
        if let server, let upstreamStarted = facts.upstreamStarted {
            metrics.observe("gatehouse_upstream_duration_seconds", [server, method], Metrics.seconds(since: upstreamStarted))
        }
        facts.clientSpan?.end()
        exchange.span?.end()
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
}

/// The SERVER span of a JSON-RPC request (also used for `initialize`, answered by the endpoint):
/// its parent from `params._meta` (the 2026-07-28 way) or else the HTTP headers; named
/// `<method>` or `<method> <tool or prompt>`.
enum ServerSpan {
    static func start(_ message: MCPMessage, caller: Caller, version: ProtocolVersion, endpointPath: String, tracer: Tracer) -> Span? {
        let meta = message.rpc.params?["_meta"]?.objectValue
        let facts = caller.trace
        let parent = meta?["traceparent"]?.stringValue.flatMap { TraceContext.parse(traceparent: $0, tracestate: meta?["tracestate"]?.stringValue) }
            ?? facts?.traceparent.flatMap { TraceContext.parse(traceparent: $0, tracestate: facts?.tracestate) }
        let method = message.method?.name ?? ""
        let target = message.request?.targetName
        guard let span = tracer.startSpan(target.map { "\(method) \($0)" } ?? method, kind: .server, parent: parent) else { return nil }
        span.setAttribute("mcp.method.name", .string(method))
        switch message.request {
        case .toolsCall(let name, _)?: span.setAttribute("gen_ai.tool.name", .string(name))
        case .promptsGet(let name, _)?: span.setAttribute("gen_ai.prompt.name", .string(name))
        default: break
        }
        if let id = message.id { span.setAttribute("jsonrpc.request.id", .string(id.stringValue ?? JSONWriter.string(id))) }
        span.setAttribute("mcp.protocol.version", .string(version.rawValue))
        span.setAttribute("gatehouse.endpoint", .string(endpointPath))
        if let facts, facts.authStarted > 0 {
            tracer.record(SpanRecord(name: "gatehouse.authenticate", kind: .internal, traceID: span.context.traceID, spanID: Tracer.randomID(8),
                                     parentSpanID: span.context.spanID, startUnixNanos: facts.authStarted, endUnixNanos: facts.authEnded,
                                     attributes: [("enduser.id", .string(caller.identity.subject))], error: nil))
        }
        return span
    }
}
