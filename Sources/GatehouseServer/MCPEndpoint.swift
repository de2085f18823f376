import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseUpstream
import HTTPTypes
import Hummingbird
import Logging
import MCPWire
import NIOCore
import Synchronization

/// The MCP endpoint: Streamable HTTP for every revision from 2025-03-26 to 2026-07-28.
///
/// The request path is declared in two places that read in order: `HTTPPipeline` (guards,
/// authentication, match pipeline, then POST/GET/DELETE here) and `RequestPipeline` (observe,
/// route, authorize, rate limit, concurrency, relay) for each JSON-RPC request that goes to a
/// server. This type holds the endpoint's state (servers, sessions, pooled channels) and the
/// parts in between: reading the body, choosing the era, and writing the answer.
final class MCPEndpoint: Sendable {
    let config: GatewayConfig
    let endpoint: GatewayConfig.Endpoint
    /// The servers this endpoint federates, in merge order.
    let servers: [UpstreamServer]
    let federation: Federation
    var names: FederationNames { federation.names }
    /// Tool names this endpoint has listed, for metric labels.
    let knownTools = KnownToolNames()
    let sessions: SessionStore
    let hub: NotificationHub
    let statelessChannels: StatelessChannels
    let sealer: SessionSealer
    let logger: Logger
    let keepAlive: Duration
    let policy: GatewayPolicy?
    let metrics: Metrics
    let tracer: Tracer?
    let finisher: AnswerFinisher
    private let httpPipeline: HTTPPipeline
    let requestPipeline: RequestPipeline

    init(config: GatewayConfig, endpoint: GatewayConfig.Endpoint, servers: [UpstreamServer], sealer: SessionSealer, logger: Logger,
         authenticator: Authenticator? = nil, policy: GatewayPolicy? = nil, metrics: Metrics = Metrics(), rateLimiter: RateLimiter? = nil,
         tracer: Tracer? = nil, pins: ToolPins? = nil, keepAlive: Duration = .seconds(15), carrying previous: MCPEndpoint? = nil)
    {
        self.tracer = tracer
        self.config = config
        self.policy = policy
        self.metrics = metrics
        self.sealer = sealer
        self.endpoint = endpoint
        self.servers = servers
        self.logger = logger
        self.keepAlive = keepAlive
        let federation = Federation(servers: servers, naming: endpoint.naming, prefix: endpoint.prefix,
                                    listTimeoutSeconds: endpoint.listTimeoutSeconds, logger: logger, pins: pins,
                                    toolOverrides: endpoint.toolOverrides, onlyListedTools: endpoint.onlyListedTools)
        self.federation = federation
        // After a reload, an endpoint whose servers are the very same objects keeps the sessions,
        // listen streams and pooled channels of the one it replaces.
        let sessions: SessionStore
        if let previous, previous.canCarry(to: servers, naming: endpoint.naming, prefix: endpoint.prefix) {
            sessions = previous.sessions
            self.hub = previous.hub
            self.statelessChannels = previous.statelessChannels
        } else {
            sessions = SessionStore(maxSessions: config.sessions.maxSessions, maxPerCaller: config.sessions.maxPerCaller)
            self.hub = NotificationHub()
            self.statelessChannels = StatelessChannels()
        }
        self.sessions = sessions
        // An ended session stays unresumable here at least as long as an idle one would live.
        sessions.endedMemory = .seconds(max(3600, config.sessions.idleTimeoutSeconds))
        let finisher = AnswerFinisher(federation: federation, policy: policy, knownTools: knownTools, logger: logger)
        self.finisher = finisher
        let limiter = rateLimiter.flatMap { $0.isEmpty ? nil : $0 }
        self.requestPipeline = RequestPipeline(RequestPipeline.steps(
            observe: ObserveStep(endpointPath: endpoint.path, metrics: metrics, tracer: tracer, knownTools: knownTools, policy: policy),
            route: RouteStep(federation: federation),
            pins: pins.flatMap { pins in
                servers.contains { $0.config.toolPinning.mode == .enforce }
                    ? PinStep(pins: pins, federation: federation, explainHolds: policy?.config.deniedTools == .error) : nil
            },
            authorize: policy?.engine == nil ? nil : PolicyStep(policy: policy, federation: federation),
            rateLimit: limiter.map { RateLimitStep(rateLimiter: $0, federation: federation, metrics: metrics) },
            concurrency: servers.contains { $0.config.maxConcurrentRequests != nil } ? ConcurrencyStep(federation: federation, metrics: metrics) : nil,
            relay: RelayStep(federation: federation, finisher: finisher, policy: policy, metrics: metrics, logger: logger) { session in
                if sessions.remove(session.id) != nil { await MCPEndpoint.end(session, logger: logger) }
            }))
        let authGate = AuthGate(mode: endpoint.auth.mode, scopes: endpoint.auth.scopes, resource: config.resourceURL(for: endpoint),
                                metadataURL: config.publicBaseURL + "/.well-known/oauth-protected-resource" + endpoint.path,
                                authenticator: authenticator, logger: logger, metrics: metrics, endpointPath: endpoint.path)
        let endpointPath = endpoint.path
        let trustedProxies = policy?.config.pipeline?.trustedProxies ?? []
        let readsPolicy = policy != nil
        self.httpPipeline = HTTPPipeline([
            HostOriginStep(guards: RequestGuards(security: config.security)),
            AuthenticationStep(authGate: authGate, tracing: tracer != nil, readsClientCertificates: config.listen.tls?.clientCAFile != nil) { request, context in
                Caller.of(request, context: context, endpoint: endpointPath, readsFacts: readsPolicy, trustedProxies: trustedProxies)
            },
        ] + (policy?.pipeline == nil ? [] : [MatchPipelineStep(policy: policy, logger: logger)]))
    }

    /// True when a replacement endpoint with these servers can take over this one's sessions.
    func canCarry(to servers: [UpstreamServer], naming: GatewayConfig.Naming, prefix: GatewayConfig.Naming.Prefix) -> Bool {
        servers.count == self.servers.count && zip(servers, self.servers).allSatisfy { $0 === $1 }
            && naming == endpoint.naming && prefix == endpoint.prefix
    }

    static let serverInfo: JSONObject = ["name": "gatehouse", "version": .string(GatehouseVersion.current)]

    // MARK: The HTTP request

    func handle(_ request: Request, context: GatewayRequestContext) async -> Response {
        let id = RequestID.accept(request.headers.value(.xRequestID))
        var response = await RequestID.$current.withValue(id) { () async -> Response in
            do {
                var context = context
                if let answer = try await httpPipeline.admit(request, context: &context) { return answer }
                return try await serve(request, context: context)
            } catch {
                let error = GatewayError(error)
                error.log(logger)
                // Refusals before a message was read name no request; the pipeline's a null one.
                if case .pipelineDenied = error { return error.response(id: .null) }
                return error.response(id: nil)
            }
        }
        response.headers[.xRequestID] = id
        metrics.increment("gatehouse_http_requests_total", [endpoint.path, MetricLabels.httpMethod(request.method.rawValue), String(response.status.code)])
        return response
    }

    /// After the HTTP steps: the endpoint's methods.
    private func serve(_ request: Request, context: GatewayRequestContext) async throws(GatewayError) -> Response {
        switch request.method {
        case .post: return try await post(request, context: context)
        case .get: return try get(request, context: context)
        case .delete: return try await delete(request, context: context)
        default: throw .httpMethodNotAllowed(request.method.rawValue)
        }
    }

    // MARK: GET and DELETE

    private func get(_ request: Request, context: GatewayRequestContext) throws(GatewayError) -> Response {
        if let version = request.headers.value(.mcpProtocolVersion).flatMap(ProtocolVersion.init), version.isStateless {
            throw .wire(WireRejection(httpStatus: 405, code: JSONRPCErrorCode.invalidRequest,
                                      message: "Method Not Allowed: 2026-07-28 has no GET stream; use subscriptions/listen"))
        }
        guard let sessionID = request.headers.value(.mcpSessionID) else {
            throw .badRequest("GET opens a session's stream and needs the Mcp-Session-Id header")
        }
        // Another caller's session is answered like an unknown one.
        guard let session = sessions.get(sessionID), session.identity.channelKey == context.identity.channelKey else { throw .sessionNotFound }
        guard Accepts(request.headers.value(.accept)).sse else { throw .notAcceptable("the GET stream is text/event-stream") }
        let frames = session.openStream(keepAlive: keepAlive)
        return HTTPResponses.sse { writer in
            for await frame in frames {
                try await writer.write(ByteBuffer(bytes: frame))
            }
            try await writer.finish(nil)
        }
    }

    private func delete(_ request: Request, context: GatewayRequestContext) async throws(GatewayError) -> Response {
        guard let sessionID = request.headers.value(.mcpSessionID) else {
            if let version = request.headers.value(.mcpProtocolVersion).flatMap(ProtocolVersion.init), version.isStateless {
                throw .wire(WireRejection(httpStatus: 405, code: JSONRPCErrorCode.invalidRequest,
                                          message: "Method Not Allowed: 2026-07-28 has no sessions to delete"))
            }
            throw .badRequest("DELETE ends a session and needs the Mcp-Session-Id header")
        }
        guard sessions.get(sessionID)?.identity.channelKey == context.identity.channelKey, let session = sessions.remove(sessionID) else {
            throw .sessionNotFound
        }
        await end(session)
        return Response(status: .noContent)
    }

    // MARK: Lifecycle

    func end(_ session: DownstreamSession) async {
        await Self.end(session, logger: logger)
    }

    static func end(_ session: DownstreamSession, logger: Logger) async {
        session.closeStream()
        await session.channels.close()
        logger.info("session ended")
    }

    /// Ends idle sessions; called periodically.
    func expireIdleSessions() async {
        for session in sessions.removeIdle(longerThan: .seconds(config.sessions.idleTimeoutSeconds)) {
            await end(session)
        }
    }

    /// Open long-lived streams: listen streams and session GET streams.
    var openStreams: Int { hub.count + sessions.all().filter(\.hasStream).count }

    /// Ends long-lived streams so graceful shutdown does not wait on them.
    func closeStreams() {
        hub.closeAll()
        for session in sessions.all() { session.closeStream() }
    }

    func shutdown() async {
        closeStreams()
        // End sessions concurrently: each may DELETE an upstream session.
        await withDiscardingTaskGroup { group in
            for session in sessions.removeAll() { group.addTask { await self.end(session) } }
            for channels in statelessChannels.removeAll() { group.addTask { await channels.close() } }
        }
    }
}

/// How a session's channels reach the session: what servers send outside requests goes to it
/// once it is bound, and is kept (bounded) until then — a session is created only after its
/// upstream sessions are open, because its id is sealed around theirs.
final class SessionLink: Sendable {
    private struct State {
        weak var session: DownstreamSession?
        var bound = false
        var early: [(message: JSONRPCMessage, server: Int)] = []
    }

    private let state = Mutex(State())

    var session: DownstreamSession? { state.withLock { $0.session } }

    /// Delivers to the session, or keeps the message until the session is bound.
    func deliver(_ message: JSONRPCMessage, server: Int, map: (JSONRPCMessage, Int, DownstreamSession) -> JSONRPCMessage) {
        let session = state.withLock { state -> DownstreamSession? in
            if !state.bound {
                if state.early.count < DownstreamSession.maxBacklog { state.early.append((message, server)) }
                return nil
            }
            return state.session
        }
        if let session { session.deliver(map(message, server, session)) }
    }

    /// Binds the session and hands it what arrived before.
    func bind(_ session: DownstreamSession, map: (JSONRPCMessage, Int, DownstreamSession) -> JSONRPCMessage) {
        let early = state.withLock { state -> [(message: JSONRPCMessage, server: Int)] in
            state.session = session
            state.bound = true
            defer { state.early = [] }
            return state.early
        }
        for (message, server) in early { session.deliver(map(message, server, session)) }
    }
}

/// Pooled channel sets of stateless clients, one per identity (never shared across identities).
final class StatelessChannels: Sendable {
    private let channels = Mutex<[String: ChannelSet]>([:])

    func channels(for owner: ChannelOwner, make: () -> ChannelSet) -> ChannelSet {
        channels.withLock { channels in
            if let existing = channels[owner.identity] { return existing }
            let created = make()
            channels[owner.identity] = created
            return created
        }
    }

    func removeAll() -> [ChannelSet] {
        channels.withLock { channels in
            defer { channels = [:] }
            return Array(channels.values)
        }
    }
}
