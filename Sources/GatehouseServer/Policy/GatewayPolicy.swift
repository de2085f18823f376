import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehousePolicy
import Logging
import MCPWire
import Synchronization

/// Policy for the data plane: the match pipeline per HTTP request, the Rego decision per MCP
/// request, list filtering, redaction obligations and the decision log. Fails closed.
final class GatewayPolicy: Sendable {
    let config: PolicyConfig
    let engine: PolicyEngine?
    let pipeline: MatchPipeline?
    let audit: AuditLog
    let servers: [String: ServerConfig]
    let logger: Logger
    let metrics: Metrics
    /// List-item decisions: "may this caller use this tool?", per policy version and caller,
    /// reused for `itemTTL` so lists are not re-decided item by item on every request.
    let itemDecisions = Mutex<[ItemKey: (allow: Bool, at: Date)]>([:])

    /// The whole input document but its clock: any fact a policy may read (caller, IP, headers,
    /// protocol era, tool definition) gives its own entry.
    struct ItemKey: Hashable, Sendable {
        var version: String
        var facts: [Value: Value]
        var request: Value
        var tool: Value
    }
    static let itemTTL: TimeInterval = 10
    /// Tool definitions seen in lists, per server: what `input.tool` shows for a call.
    let tools = Mutex<[String: [String: JSONValue]]>([:])

    init(config: PolicyConfig, servers: [ServerConfig], logger: Logger, metrics: Metrics = Metrics()) throws {
        self.config = config
        self.metrics = metrics
        self.engine = config.regoPaths.isEmpty && config.inlineModule == nil ? nil : try PolicyEngine(config: config, logger: logger)
        self.pipeline = config.pipeline.map(MatchPipeline.init)
        self.audit = AuditLog(config: config.audit, logger: logger)
        self.servers = Dictionary(servers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.logger = logger
    }

    // MARK: Phase 1: the pipeline, once per HTTP request

    func checkPipeline(_ caller: Caller) -> Bool {
        guard let pipeline else { return true }
        let started = ContinuousClock.now
        let (allow, verdicts, _) = pipeline.decide(caller)
        metrics.increment("gatehouse_policy_decisions_total", ["pipeline", allow ? "allow" : "deny"])
        let reasons = verdicts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + ["expression: \(pipeline.config.expressionText)"]
        audit.record(.init(endpoint: caller.endpoint, identity: caller.summary, method: "http", clientIP: caller.clientIP,
                           decision: allow ? "allow" : "deny", reasons: reasons, stage: "pipeline", policyVersion: nil,
                           evaluationMicros: Self.micros(since: started)))
        return allow
    }

    // MARK: Phase 2: Rego, per MCP request

    /// The input document (docs/policy.md "The input document").
    func input(caller: Caller, method: MCPMethod, phase: String, server: String?, name: String?, uri: String?, arguments: JSONValue?,
               tool: JSONValue?, protocolVersion: String, session: Bool) -> Value
    {
        var object = facts(caller: caller, server: server, now: Date())
        object[.string("request")] = request(method: method, phase: phase, server: server, name: name, uri: uri, arguments: arguments,
                                             protocolVersion: protocolVersion, session: session)
        object[.string("tool")] = tool.map(Value.init(json:)) ?? .null
        return .object(object)
    }

    /// The parts of the input that do not depend on the MCP request: identity, server, context
    /// and analysis (built once per list, not once per item).
    func facts(caller: Caller, server: String?, now: Date) -> [Value: Value] {
        let identity = caller.identity
        var serverValue: Value = .null
        if let server, let config = servers[server] {
            serverValue = Value.record([("name", .string(server)), ("labels", Value.strings(config.labels)), ("annotations", Value.strings(config.annotations))])
        }
        let identityValue = Value.record([
            ("kind", .string(identity.kind.rawValue)), ("subject", .string(identity.subject)),
            ("issuer", identity.issuer.map(Value.string) ?? .null), ("client_id", identity.clientID.map(Value.string) ?? .null),
            ("scopes", .array(identity.scopes.map(Value.string))), ("groups", .array(identity.groups.map(Value.string))),
            ("roles", .array(identity.roles.map(Value.string))), ("claims", Value(json: .object(identity.claims))),
            ("source", .string(identity.source.rawValue)),
        ])
        let context = Value.record([
            ("client_ip", caller.clientIP.map(Value.string) ?? .null), ("headers", Value.strings(caller.headers)), ("endpoint", .string(caller.endpoint)),
            ("time", .string(Timestamp.rfc3339(now))), ("time_ns", .int(Int(now.timeIntervalSince1970 * 1e9))),
        ])
        return [
            .string("identity"): identityValue, .string("server"): serverValue, .string("context"): context,
            .string("analysis"): Value(json: MatchPipeline.analyze(caller).json),
        ]
    }

    func request(method: MCPMethod, phase: String, server: String?, name: String?, uri: String?, arguments: JSONValue?,
                 protocolVersion: String, session: Bool) -> Value
    {
        var request: [Value: Value] = [
            .string("method"): .string(method.name), .string("phase"): .string(phase), .string("protocol_version"): .string(protocolVersion),
            .string("session"): .bool(session),
        ]
        if let server { request[.string("server")] = .string(server) }
        if let name { request[.string("name")] = .string(name) }
        if method == .toolsCall, let name { request[.string("tool")] = .string(name) }
        if method == .promptsGet || method == .complete, let name { request[.string("prompt")] = .string(name) }
        if let uri { request[.string("resource")] = .string(uri) }
        request[.string("arguments")] = arguments.map(Value.init(json:)) ?? .object([:])
        return .object(request)
    }

    /// Decides one request that reaches a server (or is answered by the endpoint).
    func decide(caller: Caller, message: JSONRPCMessage, server: String?, name: String?, uri: String?, tool: JSONValue?,
                protocolVersion: String, session: Bool) -> PolicyDecision
    {
        guard let engine else { return PolicyDecision(allow: true) }
        let started = ContinuousClock.now
        let method = message.mcpMethod ?? .other("")
        let arguments = message.params?["arguments"]
        let (decision, version) = engine.decide(input(caller: caller, method: method, phase: "call", server: server, name: name, uri: uri,
                                                      arguments: arguments, tool: tool, protocolVersion: protocolVersion, session: session))
        metrics.increment("gatehouse_policy_decisions_total", ["request", decision.failed ? "error" : decision.allow ? "allow" : "deny"])
        metrics.observe("gatehouse_policy_evaluation_seconds", ["request"], Metrics.seconds(since: started))
        audit.record(.init(endpoint: caller.endpoint, identity: caller.summary, method: method.name, server: server, target: name ?? uri,
                           requestID: message.id, arguments: arguments, clientIP: caller.clientIP, decision: decision.allow ? "allow" : "deny",
                           reasons: decision.reasons, stage: "request", policyVersion: version, evaluationMicros: Self.micros(since: started)))
        return decision
    }

    /// For each list method: the call each item stands for, the result's key, the item's name field.
    static let listItems: [MCPMethod: (call: MCPMethod, key: String, field: String)] = [
        .toolsList: (.toolsCall, "tools", "name"), .promptsList: (.promptsGet, "prompts", "name"),
        .resourcesList: (.resourcesRead, "resources", "uri"), .resourceTemplatesList: (.resourcesRead, "resourceTemplates", "uriTemplate"),
    ]

    /// Keeps the list items the caller may use (as if calling each without arguments).
    func filterItems(_ items: [JSONValue], listMethod: MCPMethod, server: String, caller: Caller, protocolVersion: String, session: Bool,
                     annotate: ((JSONValue) -> JSONValue)? = nil) -> (kept: [JSONValue], hidden: Int)
    {
        guard let engine, let spec = Self.listItems[listMethod] else { return (items, 0) }
        if listMethod == .toolsList { remember(tools: items, server: server) }
        let version = engine.version
        let now = Date()
        // Everything but the item is the same for the whole list: build it (and its clock-free
        // cache key) once.
        let facts = facts(caller: caller, server: server, now: now)
        let factsKey = Self.withoutClock(facts)
        var kept: [JSONValue] = []
        var hidden = 0
        for item in items {
            guard let name = item[spec.field]?.stringValue else { continue }
            let isURI = spec.field != "name"
            let request = request(method: spec.call, phase: "list", server: server, name: isURI ? nil : name, uri: isURI ? name : nil,
                                  arguments: nil, protocolVersion: protocolVersion, session: session)
            let tool = listMethod == .toolsList ? Value(json: annotate?(item) ?? item) : Value.null
            let key = ItemKey(version: version, facts: factsKey, request: request, tool: tool)
            let cached = itemDecisions.withLock { cache -> Bool? in
                guard let entry = cache[key], now.timeIntervalSince(entry.at) < Self.itemTTL else { return nil }
                return entry.allow
            }
            let allow: Bool
            if let cached {
                allow = cached
            } else {
                var input = facts
                input[.string("request")] = request
                input[.string("tool")] = tool
                let evaluation = ContinuousClock.now
                let (decision, _) = engine.decide(.object(input))
                metrics.increment("gatehouse_policy_decisions_total", ["list", decision.failed ? "error" : decision.allow ? "allow" : "deny"])
                metrics.observe("gatehouse_policy_evaluation_seconds", ["list"], Metrics.seconds(since: evaluation))
                allow = decision.allow
                itemDecisions.withLock { cache in
                    if cache.count > 100_000 { cache.removeAll(keepingCapacity: true) }
                    cache[key] = (allow, now)
                }
            }
            if allow { kept.append(item) } else { hidden += 1 }
        }
        return (kept, hidden)
    }

    static func withoutClock(_ facts: [Value: Value]) -> [Value: Value] {
        guard case .object(var context)? = facts[.string("context")] else { return facts }
        context[.string("time")] = nil
        context[.string("time_ns")] = nil
        var copy = facts
        copy[.string("context")] = .object(context)
        return copy
    }

    func recordList(caller: Caller, message: JSONRPCMessage, servers: [String], hidden: Int, started: ContinuousClock.Instant) {
        guard engine != nil else { return }
        audit.record(.init(endpoint: caller.endpoint, identity: caller.summary, method: message.method ?? "", server: servers.count == 1 ? servers[0] : nil,
                           requestID: message.id, clientIP: caller.clientIP, decision: "filter", reasons: hidden > 0 ? ["items the caller may not use are hidden"] : [],
                           stage: "list", policyVersion: engine?.version, evaluationMicros: Self.micros(since: started), hidden: hidden))
    }

    // MARK: Tool definitions

    func remember(tools items: [JSONValue], server: String) {
        var definitions: [String: JSONValue] = [:]
        for item in items { if let name = item["name"]?.stringValue { definitions[name] = item } }
        tools.withLock { known in known[server, default: [:]].merge(definitions) { _, new in new } }  // an empty list still marks the server as known
    }

    func tool(server: String, name: String) -> JSONValue? { tools.withLock { $0[server]?[name] } }

    /// Whether the server's tool list has been seen (so a name missing from it is really missing).
    func knowsTools(of server: String) -> Bool { tools.withLock { $0[server] != nil } }

    static func micros(since start: ContinuousClock.Instant) -> Int {
        let elapsed = ContinuousClock.now - start
        return Int(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000)
    }
}
