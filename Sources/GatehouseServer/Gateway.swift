import AsyncHTTPClient
import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseUpstream
import Hummingbird
import HummingbirdCore
import Logging
import MCPWire
import NIOCore
import ServiceLifecycle
import UnixSignals

/// Gatehouse assembled: the HTTP front, the MCP endpoint, the upstream, and the services that
/// run them, in one ServiceGroup with graceful shutdown on SIGTERM and SIGINT.
public struct Gateway: Sendable {
    public let config: GatewayConfig
    public let logger: Logger
    /// The file the config came from (nil: no reloads) and whether to watch it for changes.
    public let source: ConfigSource?
    public let watch: Bool

    public init(config: GatewayConfig, logger: Logger, source: ConfigSource? = nil, watch: Bool = true) {
        self.config = config
        self.logger = logger
        self.source = source
        self.watch = watch
    }

    /// Runs until SIGTERM/SIGINT, then stops accepting, lets in-flight requests finish up to
    /// `spec.shutdown.gracePeriodSeconds`, and stops upstream children.
    /// `onListening` gets the bound address (useful with port 0).
    public func run(onListening: @escaping @Sendable (String, Int) -> Void = { _, _ in }) async throws {
        var clientConfig = HTTPClient.Configuration()
        // Requests (including SSE answers of long tool calls) share this pool per upstream host.
        clientConfig.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 512
        clientConfig.timeout.connect = .milliseconds(Int64((config.servers.map(\.timeouts.connectSeconds).max() ?? 5) * 1000))
        clientConfig.decompression = .disabled
        // An upstream's answer must not steer the gateway elsewhere (the lean client for http://
        // endpoints does not follow redirects either); the error names the Location instead.
        clientConfig.redirectConfiguration = .disallow
        // A refused connection is an answer: fail the request now (the client gets an error
        // naming the upstream) instead of retrying until the connect timeout.
        clientConfig.connectionPool.retryConnectionEstablishment = false
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfig)
        // Session GET streams hold a connection each for as long as a client session lives.
        var streamConfig = clientConfig
        streamConfig.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 1 << 20
        let streamClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: streamConfig)

        // Auth state (API keys, the authorization server's clients, grants and keys) lives in the
        // store; PostgreSQL's pool runs as a child task for as long as the gateway does.
        let store: AuthStore?
        if config.needsStore {
            do {
                store = try await AuthStore.open(config.storage, logger: logger)
            } catch {
                try? await httpClient.shutdown()
                try? await streamClient.shutdown()
                throw error
            }
        } else {
            store = nil
        }
        var fetcherConfig = HTTPClient.Configuration()
        // Client metadata documents are fetched once and never follow redirects (SSRF).
        fetcherConfig.redirectConfiguration = .disallow
        fetcherConfig.timeout.connect = .seconds(5)
        let fetcher = HTTPClient(eventLoopGroupProvider: .singleton, configuration: fetcherConfig)
        defer { _ = fetcher.shutdown() }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                if let store { group.addTask { await store.run() } }
                try await serve(store: store, httpClient: httpClient, streamClient: streamClient, fetcher: fetcher, onListening: onListening)
                group.cancelAll()
            }
        } catch {
            await store?.close()
            try? await httpClient.shutdown()
            try? await streamClient.shutdown()
            throw error
        }
        await store?.close()
        try? await httpClient.shutdown()
        try? await streamClient.shutdown()
        logger.info("stopped")
    }

    private func serve(store: AuthStore?, httpClient: HTTPClient, streamClient: HTTPClient, fetcher: HTTPClient,
                       onListening: @escaping @Sendable (String, Int) -> Void) async throws
    {
        try await Self.prepare(store)
        let auth = try await GatewayAuth.make(config: config, store: store, httpClient: httpClient, fetcher: fetcher, logger: logger)
        let metrics = Metrics()
        let tracer = config.tracing.map { Tracer(serviceName: $0.serviceName ?? config.name, sampleRatio: $0.sampleRatio, scopeVersion: GatehouseVersion.current) }
        let sharedLimits = store.flatMap { $0.canShareRateLimits ? SharedRateLimits(store: $0, logger: logger) : nil }
        // Derived once: sealing and opening session ids never derive keys per request.
        let pins = store.map { ToolPins(store: $0, metrics: metrics, logger: logger) }
        let shared = GatewayShared(httpClient: httpClient, streamClient: streamClient, auth: auth, metrics: metrics,
                                   sealer: SessionSealer(secret: config.sessions.key?.value), logger: logger, tracer: tracer, sharedLimits: sharedLimits,
                                   pins: pins)
        let first = try GatewaySnapshot.build(config: config, version: source?.version(of: config) ?? "static", generation: 1, previous: nil, shared: shared)
        let state = GatewayState(first.snapshot)
        pins?.useAuditLog(first.snapshot.policy?.audit)
        if let version = first.snapshot.policy?.engine?.version { logger.info("policy loaded", metadata: ["version": "\(version)"]) }
        logger.info("config loaded", metadata: ["version": "\(first.snapshot.version)"])

        let router = Router(context: GatewayRequestContext.self)
        auth.addRoutes(to: router, config: config, guards: RequestGuards(security: config.security), logger: logger)
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        router.get("/readyz") { _, _ in Self.readiness(state.snapshot) }
        let responder = GatewayResponder(state: state, auth: auth, fallback: router.buildResponder())
        let certificates = try config.listen.tls.map { try TLSCertificates(config: $0, logger: logger) }
        let scheme = certificates == nil ? "http" : "https"
        let app = Application(
            responder: responder,
            server: try certificates?.serverBuilder(idleTimeoutSeconds: config.limits.idleTimeoutSeconds) ?? HTTPServerBuilder { _ in
                // Our own front calls the gateway's responder itself (see GatehouseHTTP1Channel).
                GatehouseHTTP1Channel(
                    respond: { [logger] request, channel in
                        try await responder.respond(to: request, context: GatewayRequestContext(source: .init(channel: channel, logger: logger)))
                    },
                    maxBodyBytes: { state.snapshot.config.limits.maxBodyBytes }, serverName: "gatehouse",
                    limits: { ConnectionLimits(state.snapshot.config.limits) }, connections: ConnectionCounter())
            },
            configuration: .init(address: .hostname(config.listen.bind, port: config.listen.port), serverName: "gatehouse"),
            onServerRunning: { [logger, config] channel in
                let port = channel.localAddress?.port ?? config.listen.port
                for endpoint in config.endpoints {
                    logger.info("listening", metadata: ["url": "\(scheme)://\(config.listen.bind):\(port)\(endpoint.path)", "servers": "\(endpoint.servers.joined(separator: ","))"])
                }
                onListening(config.listen.bind, port)
            },
            logger: logger)

        let (newUpstreams, starter) = AsyncStream<UpstreamServer>.makeStream()
        for upstream in first.started { starter.yield(upstream) }
        let upstreamService = UpstreamService(state: state, newUpstreams: newUpstreams)
        Self.collectGauges(into: metrics, state: state, tracer: tracer, pins: pins)
        let streamCloser = StreamCloser(state: state)
        let reloader = ConfigReloader(source: source, watch: watch, state: state, shared: shared, starter: starter, certificates: certificates)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let tracer, let tracing = config.tracing {
            // First in, last out: spans of requests that finish during the drain are still sent.
            services.append(.init(service: TraceExporter(tracer: tracer, tracing: tracing, client: httpClient, logger: logger), successTerminationBehavior: .ignore))
        }
        if let pins { services.append(.init(service: ToolPinSync(pins: pins), successTerminationBehavior: .ignore)) }
        services += [
            .init(service: upstreamService),
            .init(service: app),
            .init(service: streamCloser, successTerminationBehavior: .ignore),
            .init(service: reloader, successTerminationBehavior: .ignore),
        ]
        if let admin = config.admin {
            services.append(.init(service: AdminListener.application(admin: admin, state: state, metrics: metrics, reloader: reloader, pins: pins, logger: logger)))
        }
        var groupConfig = ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger)
        groupConfig.maximumGracefulShutdownDuration = .seconds(config.shutdown.gracePeriodSeconds)
        let group = ServiceGroup(configuration: groupConfig)
        try await group.run()
    }

    private static func prepare(_ store: AuthStore?) async throws {
        guard let store else { return }
        do {
            try await store.migrate()
        } catch {
            throw StorageError("cannot prepare the auth store: \(error)")
        }
    }

    /// Gauges read from the running snapshot when `/metrics` is scraped.
    private static func collectGauges(into metrics: Metrics, state: GatewayState, tracer: Tracer?, pins: ToolPins?) {
        metrics.addCollector {
            let snapshot = state.snapshot
            var samples: [(name: String, labels: [String], value: Double)] = [(name: "gatehouse_config_info", labels: [snapshot.version], value: 1)]
            for endpoint in snapshot.endpoints {
                samples.append((name: "gatehouse_sessions_active", labels: [endpoint.endpoint.path], value: Double(endpoint.sessions.count)))
                samples.append((name: "gatehouse_streams_active", labels: [endpoint.endpoint.path], value: Double(endpoint.openStreams)))
            }
            for upstream in snapshot.upstreams {
                samples.append((name: "gatehouse_upstream_ready", labels: [upstream.config.name], value: upstream.isReady ? 1 : 0))
                if let breaker = upstream.breaker {
                    samples.append((name: "gatehouse_circuit_breaker_open", labels: [upstream.config.name], value: breaker.isOpen ? 1 : 0))
                }
                for member in upstream.members?.status() ?? [] {
                    samples.append((name: "gatehouse_upstream_endpoint_healthy", labels: [upstream.config.name, DisplayURL.redacted(member.url)], value: member.healthy && !member.ejected ? 1 : 0))
                    samples.append((name: "gatehouse_upstream_endpoint_requests_total", labels: [upstream.config.name, DisplayURL.redacted(member.url)], value: Double(member.requests)))
                }
            }
            for (server, held) in pins?.heldCounts(snapshot.config.servers) ?? [] {
                samples.append((name: "gatehouse_tools_held", labels: [server], value: Double(held)))
            }
            if let tracer {
                samples.append((name: "gatehouse_trace_spans_dropped_total", labels: [], value: Double(tracer.droppedCount)))
            }
            return samples
        }
    }

    /// Ready when every endpoint can reach at least one of its servers.
    static func readiness(_ snapshot: GatewaySnapshot) -> Response {
        let ready = snapshot.endpoints.allSatisfy(\.isReady)
        let states = JSONObject(snapshot.upstreams.map { (key: $0.config.name, value: JSONValue.string($0.isReady ? "ready" : "connecting")) })
        let body = JSONWriter.bytes(["status": .string(ready ? "ready" : "waiting for upstreams"), "servers": .object(states)])
        return Response(status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Serves each request from the snapshot current when it arrives: MCP endpoints and their
/// protected-resource metadata by path (both change on reload), the rest through the router.
struct GatewayResponder: HTTPResponder {
    typealias Context = GatewayRequestContext
    let state: GatewayState
    let auth: GatewayAuth
    let fallback: RouterResponder<GatewayRequestContext>

    func respond(to request: Request, context: GatewayRequestContext) async throws -> Response {
        let snapshot = state.snapshot
        let path = request.uri.path
        if let endpoint = snapshot.byPath[path] { return await endpoint.handle(request, context: context) }
        if request.method == .get, path.hasPrefix(GatewayAuth.protectedResourcePrefix),
            let answer = GatewayAuth.protectedResourceResponse(path: path, config: snapshot.config)
        {
            return answer
        }
        return try await fallback.respond(to: request, context: context)
    }
}

/// Connects upstream servers (those of the first snapshot and those a reload adds), expires idle
/// sessions, and on shutdown ends sessions and stops upstream children (it is shut down last,
/// after the HTTP server has drained).
struct UpstreamService: Service {
    let state: GatewayState
    let newUpstreams: AsyncStream<UpstreamServer>

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                await withDiscardingTaskGroup { running in
                    for await upstream in newUpstreams {
                        running.addTask { await upstream.start() }
                    }
                }
            }
            group.addTask {
                var rounds = 0
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(15))
                    for endpoint in state.snapshot.endpoints { await endpoint.expireIdleSessions() }
                    rounds += 1
                    if rounds % 20 == 0 { await state.snapshot.rateLimiter.sweepSharedBuckets() }  // every 5 minutes
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        let snapshot = state.snapshot
        for endpoint in snapshot.endpoints { await endpoint.shutdown() }
        for upstream in snapshot.upstreams { await upstream.shutdown() }
    }
}

/// Shut down first: ends long-lived streams (GET streams, listen streams) so the HTTP server's
/// drain only waits for real requests.
struct StreamCloser: Service {
    let state: GatewayState

    func run() async throws {
        try? await gracefulShutdown()
        for endpoint in state.snapshot.endpoints { endpoint.closeStreams() }
    }
}

extension Gateway {
    /// Compiles the config's policy (for `gatehouse validate`): nil when it compiles, else every error.
    public static func policyProblems(_ config: GatewayConfig) -> String? {
        guard let policy = config.policy, !policy.regoPaths.isEmpty || policy.inlineModule != nil else { return nil }
        do {
            _ = try PolicyEngine.compile(policy)
            return nil
        } catch {
            return "\(error)"
        }
    }
}
