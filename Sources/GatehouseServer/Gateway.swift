import AsyncHTTPClient
import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseUpstream
import Hummingbird
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

    public init(config: GatewayConfig, logger: Logger) {
        self.config = config
        self.logger = logger
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
        if let store {
            do {
                try await store.migrate()
            } catch {
                throw StorageError("cannot prepare the auth store: \(error)")
            }
        }
        let auth = try await GatewayAuth.make(config: config, store: store, httpClient: httpClient, fetcher: fetcher, logger: logger)
        let metrics = Metrics()
        let policy = try config.policy.map { try GatewayPolicy(config: $0, servers: config.servers, logger: logger, metrics: metrics) }
        let rateLimiter = RateLimiter(limits: config.rateLimits)
        if let version = policy?.engine?.version { logger.info("policy loaded", metadata: ["version": "\(version)"]) }
        let upstreams = config.servers.map { UpstreamServer(config: $0, httpClient: httpClient, streamClient: streamClient, logger: logger) }
        let byName = Dictionary(uniqueKeysWithValues: upstreams.map { ($0.config.name, $0) })
        // Derived once: sealing and opening session ids never derive keys per request.
        let sealer = SessionSealer(secret: config.sessions.key?.value)
        let endpoints = config.endpoints.map { endpoint in
            MCPEndpoint(config: config, endpoint: endpoint, servers: endpoint.servers.compactMap { byName[$0] }, sealer: sealer, logger: logger,
                        authenticator: auth.authenticator, policy: policy, metrics: metrics, rateLimiter: rateLimiter)
        }
        let router = Router(context: GatewayRequestContext.self)
        for endpoint in endpoints {
            let path = RouterPath(stringLiteral: endpoint.endpoint.path)
            for method in [HTTPRequest.Method.post, .get, .delete, .put, .patch, .options] {
                router.on(path, method: method) { request, context in await endpoint.handle(request, context: context) }
            }
        }
        auth.addRoutes(to: router, config: config, guards: RequestGuards(security: config.security), logger: logger)
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        router.get("/readyz") { _, _ in
            // Ready when every endpoint can reach at least one of its servers.
            let ready = endpoints.allSatisfy(\.isReady)
            let states = JSONObject(upstreams.map { (key: $0.config.name, value: JSONValue.string($0.isReady ? "ready" : "connecting")) })
            let body = JSONWriter.bytes(["status": .string(ready ? "ready" : "waiting for upstreams"), "servers": .object(states)])
            return Response(status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(config.listen.bind, port: config.listen.port), serverName: "gatehouse"),
            onServerRunning: { [logger, config] channel in
                let port = channel.localAddress?.port ?? config.listen.port
                for endpoint in config.endpoints {
                    logger.info("listening", metadata: ["url": "http://\(config.listen.bind):\(port)\(endpoint.path)", "servers": "\(endpoint.servers.joined(separator: ","))"])
                }
                onListening(config.listen.bind, port)
            },
            logger: logger)

        let upstreamService = UpstreamService(upstreams: upstreams, endpoints: endpoints)
        metrics.addCollector {
            endpoints.map { (name: "gatehouse_sessions_active", labels: [$0.endpoint.path], value: Double($0.sessions.count)) }
                + upstreams.map { (name: "gatehouse_upstream_ready", labels: [$0.config.name], value: $0.isReady ? 1 : 0) }
        }
        let streamCloser = StreamCloser(endpoints: endpoints)
        let reloader = PolicyReloader(policy: policy, metrics: metrics, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: upstreamService),
            .init(service: app),
            .init(service: streamCloser, successTerminationBehavior: .ignore),
            .init(service: reloader, successTerminationBehavior: .ignore),
        ]
        if let admin = config.admin {
            services.append(.init(service: AdminListener.application(config: config, listen: admin, metrics: metrics, policy: policy,
                                                                     upstreams: upstreams, reloader: reloader, logger: logger)))
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
}

/// Connects the upstream, expires idle sessions, and on shutdown ends sessions and stops
/// upstream children (it is shut down last, after the HTTP server has drained).
struct UpstreamService: Service {
    let upstreams: [UpstreamServer]
    let endpoints: [MCPEndpoint]

    func run() async throws {
        await withDiscardingTaskGroup { group in
            for upstream in upstreams {
                group.addTask { await upstream.start() }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(15))
                    for endpoint in endpoints { await endpoint.expireIdleSessions() }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        for endpoint in endpoints { await endpoint.shutdown() }
        for upstream in upstreams { await upstream.shutdown() }
    }
}

/// Shut down first: ends long-lived streams (GET streams, listen streams) so the HTTP server's
/// drain only waits for real requests.
struct StreamCloser: Service {
    let endpoints: [MCPEndpoint]

    func run() async throws {
        try? await gracefulShutdown()
        for endpoint in endpoints { endpoint.closeStreams() }
    }
}

/// Reloads the policy on SIGHUP: a policy that does not compile is refused (logged with its
/// errors) and the running one keeps deciding.
struct PolicyReloader: Service {
    let policy: GatewayPolicy?
    let metrics: Metrics
    let logger: Logger

    /// Reloads now (SIGHUP or the admin API): the new version, or why it was refused.
    @discardableResult
    func reload() -> Result<String, any Error> {
        guard let engine = policy?.engine else { return .failure(PolicyEngine.CompileError(description: "no Rego policy is configured")) }
        let result = engine.reload()
        if case .success = result { metrics.increment("gatehouse_policy_reloads_total", ["success"]) } else {
            metrics.increment("gatehouse_policy_reloads_total", ["refused"])
        }
        return result
    }

    func run() async throws {
        guard policy?.engine != nil else {
            try? await gracefulShutdown()
            return
        }
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in signals {
                    logger.info("SIGHUP: reloading the policy")
                    reload()
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
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
