import Foundation
import GatehouseConfig
import GatehouseUpstream
import Hummingbird
import Logging
import MCPWire
import Synchronization
import NIOCore

/// Where a client's request goes among the endpoint's servers (federation).
///
/// Design note: list methods fan out to every server in parallel and merge in server order;
/// methods that name a tool, prompt or resource go to its owner with the server's own name;
/// with one server, everything is forwarded unchanged (no renaming, upstream cursors and
/// caching hints pass through).
extension MCPEndpoint {
    /// What a request is relayed with.
    struct Scope: Sendable {
        let channels: ChannelSet
        let clientVersion: ProtocolVersion
        let session: DownstreamSession?
        let accepts: Accepts
        /// Who asks (identity and request facts), for policy.
        let caller: Caller
        /// What the request's policy decision asks to redact from the answer.
        var redaction = PolicyDecision.Redaction()
        var responseHeaders: [(String, String)] = []
        var upstreamHeaders: [(String, String)] = []
        /// Rate limit numbers the policy decision chose for this caller (by limit name).
        var rateLimitOverrides: [String: RateLimiter.Override] = [:]
        /// When the request arrived and when it went upstream (for the duration metrics).
        var started = ContinuousClock.now
        var upstreamStarted: ContinuousClock.Instant?
        /// Runs once when the request's answer is complete (JSON sent or stream ended).
        var onFinish: (@Sendable () -> Void)?
        /// The request's SERVER span, when tracing is on and the trace is sampled, and the
        /// CLIENT span of its upstream call.
        var span: Span?
        var clientSpan: Span?
        /// Set when a streamed answer takes over ending the spans (at the end of the stream).
        var spanHandoff: SpanHandoff?
    }

    static let listKeys: [String: String] = [
        "tools/list": "tools", "prompts/list": "prompts", "resources/list": "resources",
        "resources/templates/list": "resourceTemplates",
    ]

    enum Route {
        case server(Int, JSONRPCMessage)
        case answer(JSONRPCMessage)
        case fanOutList(String)
        case broadcast
    }

    /// Decides where a request goes; resolves exposed names and URIs to the owner's own.
    func route(_ message: JSONRPCMessage, scope: Scope) async -> Route {
        let method = message.method ?? ""
        if servers.count == 1 { return .server(0, message) }
        if let key = Self.listKeys[method] { return .fanOutList(key) }
        switch method {
        case "tools/call", "prompts/get":
            let kind: FederationNames.Kind = method == "tools/call" ? .tool : .prompt
            guard let exposed = message.params?["name"]?.stringValue else {
                return .answer(.error(id: message.id, code: JSONRPCErrorCode.invalidParams, message: "Invalid params: \(method) needs params.name"))
            }
            var owner = names.resolve(exposed, kind: kind)
            if owner == nil {
                // Aliases and unprefixed names are known from lists: learn them, then retry.
                await learnNames(kind: kind, scope: scope)
                owner = names.resolve(exposed, kind: kind)
            }
            guard let owner else {
                return .answer(.error(id: message.id, code: JSONRPCErrorCode.invalidParams, message: "Unknown \(kind.rawValue): \(exposed)"))
            }
            var rewritten = message
            var params = rewritten.params ?? [:]
            params["name"] = .string(owner.name)
            rewritten.params = params
            return .server(owner.server, rewritten)
        case "resources/read", "resources/subscribe", "resources/unsubscribe":
            guard let exposed = message.params?["uri"]?.stringValue, let owner = names.resolveURI(exposed) else {
                return .answer(.error(id: message.id, code: JSONRPCErrorCode.invalidParams,
                                      message: "Unknown resource: \(message.params?["uri"]?.stringValue ?? "(no uri)"); resource URIs here start with '<server>+'"))
            }
            var rewritten = message
            var params = rewritten.params ?? [:]
            params["uri"] = .string(owner.uri)
            rewritten.params = params
            return .server(owner.server, rewritten)
        case "completion/complete":
            guard let ref = message.params?["ref"]?.objectValue else {
                return .answer(.error(id: message.id, code: JSONRPCErrorCode.invalidParams, message: "Invalid params: completion/complete needs params.ref"))
            }
            var newRef = ref
            let owner: Int?
            if ref["type"] == "ref/prompt", let name = ref["name"]?.stringValue, let resolved = names.resolve(name, kind: .prompt) {
                newRef["name"] = .string(resolved.name)
                owner = resolved.server
            } else if ref["type"] == "ref/resource", let uri = ref["uri"]?.stringValue, let resolved = names.resolveURI(uri) {
                newRef["uri"] = .string(resolved.uri)
                owner = resolved.server
            } else {
                owner = nil
            }
            guard let owner else {
                return .answer(.error(id: message.id, code: JSONRPCErrorCode.invalidParams, message: "Invalid params: unknown completion reference"))
            }
            var rewritten = message
            var params = rewritten.params ?? [:]
            params["ref"] = .object(newRef)
            rewritten.params = params
            return .server(owner, rewritten)
        case "logging/setLevel":
            return .broadcast
        default:
            return .answer(.error(id: message.id, code: JSONRPCErrorCode.methodNotFound,
                                  message: "Method not found: \(method) is not supported on a federated endpoint"))
        }
    }

    /// Routes and relays one request (in its SERVER span when tracing is on).
    func relay(_ message: JSONRPCMessage, scope: Scope) async -> Response {
        guard let tracer, message.kind == .request else { return await relayTraced(message, scope: scope) }
        var scope = scope
        let span = startServerSpan(message, caller: scope.caller, version: scope.clientVersion, tracer: tracer)
        let handoff = SpanHandoff()
        scope.span = span
        scope.spanHandoff = handoff
        let response = await relayTraced(message, scope: scope)
        if response.status.code >= 400 { span?.setErrorIfUnset(String(response.status.code)) }
        if !handoff.isTaken { span?.end() }
        return response
    }

    private func relayTraced(_ message: JSONRPCMessage, scope: Scope) async -> Response {
        let route = await route(message, scope: scope)
        let policySpan = policy == nil ? nil : scope.span?.child("gatehouse.policy", kind: .internal)
        let (scope, denied, missing) = await authorize(route, message: message, scope: scope)
        if let policySpan {
            policySpan.setAttribute("gatehouse.policy.decision", .string(denied == nil ? "allow" : "deny"))
            policySpan.end()
        }
        if let denied {
            var server: String?
            if case .server(let index, _) = route { server = servers[index].config.name }
            recordRequest(message, server: server, outcome: missing ? "error" : "denied", scope: scope)
            return finalJSON(denied, clientVersion: scope.clientVersion, method: message.method)
        }
        if case .answer(let answer) = route {
            recordRequest(message, server: nil, outcome: answer.kind == .errorResponse ? "error" : "ok", scope: scope)
        }
        if let refusal = await rateLimit(route, message: message, scope: scope) {
            return HTTPResponses.json(refusal.answer, status: .tooManyRequests, headers: refusal.headers)
        }
        return Self.withHeaders(await relay(message, route: route, scope: scope), scope.responseHeaders)
    }

    private func relay(_ message: JSONRPCMessage, route: Route, scope: Scope) async -> Response {
        switch route {
        case .answer(let answer):
            return finalJSON(answer, clientVersion: scope.clientVersion, method: message.method)
        case .fanOutList(let key):
            return await fanOutList(message, key: key, scope: scope)
        case .broadcast:
            for (index, _) in servers.enumerated() {
                do {
                    let channel = try await scope.channels.channel(index)
                    for try await _ in channel.send(request: message) {}
                } catch {
                    logger.warning("could not pass on \(message.method ?? "")", metadata: ["upstream": "\(servers[index].config.name)", "error": "\(error)"])
                }
            }
            return finalJSON(.response(id: message.id ?? .null, result: .object([:])), clientVersion: scope.clientVersion, method: message.method)
        case .server(let index, let routed):
            let channel: any UpstreamChannel
            do {
                channel = try await scope.channels.channel(index)
            } catch {
                return HTTPResponses.json(failure(error, id: message.id))
            }
            // The upstream's concurrency limit: refused at once, never queued behind slow calls.
            guard servers[index].acquireSlot() else {
                let name = servers[index].config.name
                metrics.increment("gatehouse_rate_limited_total", ["concurrency:\(name)"])
                recordRequest(message, server: name, outcome: "rate_limited", scope: scope)
                var data = JSONObject()
                data["gatehouse"] = ["reason": "upstream_busy", "upstream": .string(name), "retryAfterSeconds": 1]
                var headers = HTTPFields()
                headers[.retryAfter] = "1"
                return HTTPResponses.json(.error(id: message.id, code: JSONRPCErrorCode.rateLimited,
                                                 message: "Too many requests: upstream '\(name)' is at its limit of \(servers[index].config.maxConcurrentRequests ?? 0) concurrent requests; retry shortly",
                                                 data: .object(data)), status: .tooManyRequests, headers: headers)
            }
            var scope = scope
            let slot = UpstreamSlot(servers[index])
            scope.onFinish = { slot.release() }
            scope.session?.track(message, server: index)
            guard tracer != nil else { return await forward(routed, server: index, channel: channel, scope: scope) }
            // The context the upstream gets: the CLIENT span of this call, or (a caller that
            // asked not to sample) the caller's own context, passed on unchanged (W3C).
            let propagated: (traceparent: String, tracestate: String?)
            if let span = scope.span {
                let client = span.child(span.name, kind: .client)
                client.setAttribute("gatehouse.server", .string(servers[index].config.name))
                if case .http(let http) = servers[index].config.transport, let url = URLComponents(string: http.url) {
                    client.setAttribute("server.address", .string(url.host ?? ""))
                    if let port = url.port { client.setAttribute("server.port", .int(port)) }
                }
                scope.clientSpan = client
                scope.spanHandoff?.take()
                scope.onFinish = {
                    slot.release()
                    client.end()
                    span.end()
                }
                propagated = (client.context.traceparent, client.context.traceState)
            } else if let meta = message.params?["_meta"], let parent = meta["traceparent"]?.stringValue {
                propagated = (parent, meta["tracestate"]?.stringValue)
            } else if let parent = scope.caller.trace?.traceparent {
                propagated = (parent, scope.caller.trace?.tracestate)
            } else {
                return await forward(routed, server: index, channel: channel, scope: scope)
            }
            scope.upstreamHeaders.append(("traceparent", propagated.traceparent))
            if let state = propagated.tracestate { scope.upstreamHeaders.append(("tracestate", state)) }
            var traced = routed
            if servers[index].info?.version.isStateless == true || routed.params?["_meta"]?["traceparent"] != nil {
                var params = traced.params ?? [:]
                var meta = params["_meta"]?.objectValue ?? [:]
                meta["traceparent"] = .string(propagated.traceparent)
                meta["tracestate"] = propagated.tracestate.map { .string($0) }
                params["_meta"] = .object(meta)
                traced.params = params
            }
            let response = await forward(traced, server: index, channel: channel, scope: scope)
            if response.status.code >= 400 { scope.clientSpan?.setErrorIfUnset(String(response.status.code)) }
            return response
        }
    }

    /// Maps a message from server `index` to what the client sees.
    func mapFromServer(_ message: JSONRPCMessage, server index: Int, session: DownstreamSession?) -> JSONRPCMessage {
        var mapped = message
        if names.rewritesURIs, message.method == "notifications/resources/updated", let params = message.params {
            mapped.params = names.exposeURIs(in: .object(params), server: index).objectValue
        }
        if mapped.kind == .request, let session { mapped = session.mapOutbound(mapped, server: index) }
        return mapped
    }

    func mapResponse(_ response: JSONRPCMessage, server index: Int) -> JSONRPCMessage {
        guard names.rewritesURIs, response.kind == .response, let result = response.result else { return response }
        var mapped = response
        mapped.object["result"] = names.exposeURIs(in: result, server: index)
        return mapped
    }

    // MARK: Lists

    /// Fans a list request out to every server in parallel and merges the pages in server
    /// order. A server that fails or is slower than `listTimeoutSeconds` is left out (logged,
    /// named in `_meta`) and not asked again for later pages of this listing.
    func fanOutList(_ message: JSONRPCMessage, key: String, scope: Scope) async -> Response {
        let serverNames = servers.map(\.config.name)
        var positions: [(index: Int, cursor: String?)]
        if let cursorText = message.params?["cursor"]?.stringValue {
            guard let cursor = FederatedCursor(decoding: cursorText, servers: serverNames) else {
                return finalJSON(.error(id: message.id, code: JSONRPCErrorCode.invalidParams, message: "Invalid params: unknown or damaged cursor; list again without a cursor"),
                                 clientVersion: scope.clientVersion, method: message.method)
            }
            positions = cursor.positions.compactMap { position in
                serverNames.firstIndex(of: position.server).map { ($0, position.cursor.isEmpty ? nil : position.cursor) }
            }
        } else {
            positions = servers.indices.map { ($0, nil) }
        }
        let pages = await fetchPages(method: message.method ?? "", positions: positions, scope: scope)
        var items: [JSONValue] = []
        var next: [(server: String, cursor: String)] = []
        var missing: [JSONValue] = []
        let kind: FederationNames.Kind? = key == "tools" ? .tool : key == "prompts" ? .prompt : nil
        if let kind {
            for page in pages {
                let names = (page.result?[key]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
                self.names.learn(names, server: page.index, kind: kind)
            }
        }
        let started = ContinuousClock.now
        var hiddenItems = 0
        for page in pages.sorted(by: { $0.index < $1.index }) {
            guard let result = page.result else {
                missing.append(.string(serverNames[page.index]))
                continue
            }
            var pageItems = result[key]?.arrayValue ?? []
            if let policy {
                let (kept, hidden) = policy.filterItems(pageItems, listMethod: message.method ?? "", server: serverNames[page.index], caller: scope.caller,
                                                        protocolVersion: scope.clientVersion.rawValue, session: scope.session != nil)
                pageItems = kept
                hiddenItems += hidden
            }
            for item in pageItems {
                guard case .object(var object) = item else { continue }
                if let kind, let name = object["name"]?.stringValue {
                    if let (a, b) = names.collision(for: name, kind: kind) {
                        return finalJSON(.error(id: message.id, code: JSONRPCErrorCode.internalError,
                                                message: "\(kind.rawValue) name '\(name)' is offered by both '\(a)' and '\(b)'; set naming.prefix to always or on-collision for this endpoint"),
                                         clientVersion: scope.clientVersion, method: message.method)
                    }
                    let exposed = names.expose(name, server: page.index, kind: kind)
                    names.remember(exposed: exposed, server: page.index, name: name, kind: kind)
                    object["name"] = .string(exposed)
                    items.append(.object(object))
                } else {
                    items.append(names.exposeURIs(in: .object(object), server: page.index))
                }
            }
            if let cursor = result["nextCursor"]?.stringValue, !cursor.isEmpty {
                next.append((serverNames[page.index], cursor))
            }
        }
        policy?.recordList(caller: scope.caller, message: message, servers: serverNames, hidden: hiddenItems, started: started)
        if kind == .tool { knownTools.learn(items) }
        recordRequest(message, server: "*", outcome: "ok", scope: scope)
        var result: JSONObject = [key: .array(items)]
        if !next.isEmpty { result["nextCursor"] = .string(FederatedCursor(positions: next).encoded) }
        if !missing.isEmpty { result["_meta"] = ["gatehouse/unavailableServers": .array(missing)] }
        if scope.clientVersion.isStateless {
            result["ttlMs"] = 0
            result["cacheScope"] = "private"
        }
        return finalJSON(.response(id: message.id ?? .null, result: .object(result)), clientVersion: scope.clientVersion, method: message.method)
    }

    struct Page: Sendable {
        var index: Int
        var result: JSONObject?
    }

    func fetchPages(method: String, positions: [(index: Int, cursor: String?)], scope: Scope) async -> [Page] {
        let timeout = endpoint.listTimeoutSeconds
        return await withTaskGroup(of: Page.self) { group in
            for position in positions {
                group.addTask { [self] in
                    let name = servers[position.index].config.name
                    do {
                        let result = try await withTimeout(timeout, upstream: name) {
                            let channel = try await scope.channels.channel(position.index)
                            var params = JSONObject()
                            if let cursor = position.cursor { params["cursor"] = .string(cursor) }
                            let request = JSONRPCMessage.request(id: "list", method: method, params: params)
                            for try await event in channel.send(request: request) {
                                if case .response(let response) = event { return response }
                            }
                            throw UpstreamError(upstream: name, kind: .protocolViolation, detail: "no answer")
                        }
                        guard let object = result.result?.objectValue else {
                            logger.warning("server left out of a list", metadata: ["upstream": "\(name)", "method": "\(method)", "error": "\(result.error?["message"]?.stringValue ?? "no result")"])
                            servers[position.index].countListFailure()
                            return Page(index: position.index, result: nil)
                        }
                        return Page(index: position.index, result: object)
                    } catch {
                        logger.warning("server left out of a list", metadata: ["upstream": "\(name)", "method": "\(method)", "error": "\(error)"])
                        servers[position.index].countListFailure()
                        return Page(index: position.index, result: nil)
                    }
                }
            }
            var pages: [Page] = []
            for await page in group { pages.append(page) }
            return pages
        }
    }

    /// Lists every page of every server for `kind`, so aliases and unprefixed names resolve.
    func learnNames(kind: FederationNames.Kind, scope: Scope) async {
        let method = kind == .tool ? "tools/list" : "prompts/list"
        let key = kind == .tool ? "tools" : "prompts"
        var positions: [(index: Int, cursor: String?)] = servers.indices.map { ($0, nil) }
        var rounds = 0
        while !positions.isEmpty, rounds < 20 {
            rounds += 1
            let pages = await fetchPages(method: method, positions: positions, scope: scope)
            positions = []
            for page in pages {
                guard let result = page.result else { continue }
                let found = (result[key]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
                names.learn(found, server: page.index, kind: kind)
                if let cursor = result["nextCursor"]?.stringValue, !cursor.isEmpty { positions.append((page.index, cursor)) }
            }
            for page in pages {
                for name in (page.result?[key]?.arrayValue ?? []).compactMap({ $0["name"]?.stringValue }) {
                    names.remember(exposed: names.expose(name, server: page.index, kind: kind), server: page.index, name: name, kind: kind)
                }
            }
        }
    }
}

// MARK: Tracing

/// What tracing needs from the HTTP request: W3C trace context headers and when
/// authentication ran (its span is recorded once the request's span exists).
struct TraceFacts: Sendable {
    var traceparent: String?
    var tracestate: String?
    var authStarted: UInt64
    var authEnded: UInt64
}

extension MCPEndpoint {
    /// The SERVER span of one JSON-RPC request: its parent from `params._meta` (the 2026-07-28
    /// way) or else the HTTP headers; named `<method>` or `<method> <tool or prompt>`.
    func startServerSpan(_ message: JSONRPCMessage, caller: Caller, version: ProtocolVersion, tracer: Tracer) -> Span? {
        let meta = message.params?["_meta"]?.objectValue
        let facts = caller.trace
        let parent = meta?["traceparent"]?.stringValue.flatMap { TraceContext.parse(traceparent: $0, tracestate: meta?["tracestate"]?.stringValue) }
            ?? facts?.traceparent.flatMap { TraceContext.parse(traceparent: $0, tracestate: facts?.tracestate) }
        let method = message.method ?? ""
        let target = method == "tools/call" || method == "prompts/get" ? message.params?["name"]?.stringValue : nil
        guard let span = tracer.startSpan(target.map { "\(method) \($0)" } ?? method, kind: .server, parent: parent) else { return nil }
        span.setAttribute("mcp.method.name", .string(method))
        if method == "tools/call", let target { span.setAttribute("gen_ai.tool.name", .string(target)) }
        if method == "prompts/get", let target { span.setAttribute("gen_ai.prompt.name", .string(target)) }
        if let id = message.id { span.setAttribute("jsonrpc.request.id", .string(id.stringValue ?? JSONWriter.string(id))) }
        span.setAttribute("mcp.protocol.version", .string(version.rawValue))
        span.setAttribute("gatehouse.endpoint", .string(endpoint.path))
        if let facts, facts.authStarted > 0 {
            tracer.record(SpanRecord(name: "gatehouse.authenticate", kind: .internal, traceID: span.context.traceID, spanID: Tracer.randomID(8),
                                     parentSpanID: span.context.spanID, startUnixNanos: facts.authStarted, endUnixNanos: facts.authEnded,
                                     attributes: [("enduser.id", .string(caller.identity.subject))], error: nil))
        }
        return span
    }
}

/// Who ends a request's spans: the request (when its answer is complete at once) or the
/// streamed answer (when its stream ends).
final class SpanHandoff: Sendable {
    private let taken = Mutex(false)
    func take() { taken.withLock { $0 = true } }
    var isTaken: Bool { taken.withLock { $0 } }
}
