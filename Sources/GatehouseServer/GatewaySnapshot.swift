import AsyncHTTPClient
import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseUpstream
import Logging
import Synchronization

/// What every snapshot shares for the life of the process: HTTP clients, the auth store and
/// authenticator, metrics, the session sealer. Changing what these were built from needs a
/// restart (see `GatewaySnapshot.restartNeeded`).
struct GatewayShared: Sendable {
    let httpClient: HTTPClient
    let streamClient: HTTPClient
    let auth: GatewayAuth
    let metrics: Metrics
    let sealer: SessionSealer
    let logger: Logger
    let tracer: Tracer?
    let sharedLimits: SharedRateLimits?
    /// Pinned tool definitions; there whenever the store is.
    var pins: ToolPins? = nil
}

/// One immutable version of the running configuration: endpoints, upstreams, policy and limits
/// built from one `GatewayConfig`. Requests take the current snapshot when they arrive and keep
/// it to the end, so a reload never changes the rules under a request in flight.
final class GatewaySnapshot: Sendable {
    let config: GatewayConfig
    let version: String
    let generation: Int
    let loadedAt: Date
    let upstreams: [UpstreamServer]
    let endpoints: [MCPEndpoint]
    let byPath: [String: MCPEndpoint]
    let policy: GatewayPolicy?
    let rateLimiter: RateLimiter

    private init(config: GatewayConfig, version: String, generation: Int, upstreams: [UpstreamServer], endpoints: [MCPEndpoint],
                 policy: GatewayPolicy?, rateLimiter: RateLimiter)
    {
        self.config = config
        self.version = version
        self.generation = generation
        self.loadedAt = Date()
        self.upstreams = upstreams
        self.endpoints = endpoints
        self.byPath = Dictionary(endpoints.map { ($0.endpoint.path, $0) }, uniquingKeysWith: { a, _ in a })
        self.policy = policy
        self.rateLimiter = rateLimiter
    }

    /// A built snapshot and what changed against the previous one.
    struct Built: Sendable {
        var snapshot: GatewaySnapshot
        /// New upstream servers: to be started.
        var started: [UpstreamServer]
        /// Upstream servers no longer used (removed or changed): stopped after a grace period.
        var retired: [UpstreamServer]
        /// Endpoints whose sessions were not carried over: ended after a grace period.
        var retiredEndpoints: [MCPEndpoint]
        /// A compiled policy to install into a reused engine when the snapshot is swapped in.
        var policyInstall: (@Sendable () -> Void)?
    }

    /// Builds a snapshot from `config`, reusing from `previous` every upstream server whose spec
    /// did not change (its connections and sessions live on) and the sessions of endpoints whose
    /// servers are all reused. Throws (and changes nothing) when the policy does not compile.
    static func build(config: GatewayConfig, version: String, generation: Int, previous: GatewaySnapshot?, shared: GatewayShared) throws -> Built {
        // The policy first: it is the part that can fail.
        var policy: GatewayPolicy?
        var install: (@Sendable () -> Void)?
        if let policyConfig = config.policy {
            if let old = previous?.policy, previous?.config.policy == policyConfig, previous?.config.servers == config.servers {
                // Same settings: keep the engine (and its list cache and decision log), recompile the files.
                if let engine = old.engine {
                    let compiled = try PolicyEngine.compile(policyConfig)
                    install = { engine.install(compiled) }
                }
                policy = old
            } else {
                policy = try GatewayPolicy(config: policyConfig, servers: config.servers, logger: shared.logger, metrics: shared.metrics)
            }
        }

        var reused: [String: UpstreamServer] = [:]
        for upstream in previous?.upstreams ?? [] where config.server(named: upstream.config.name) == upstream.config {
            reused[upstream.config.name] = upstream
        }
        var started: [UpstreamServer] = []
        let upstreams = config.servers.map { server -> UpstreamServer in
            if let existing = reused[server.name] { return existing }
            let created = UpstreamServer(config: server, httpClient: shared.httpClient, streamClient: shared.streamClient, logger: shared.logger)
            started.append(created)
            return created
        }
        let retired = (previous?.upstreams ?? []).filter { old in !upstreams.contains { $0 === old } }

        let rateLimiter: RateLimiter
        if let old = previous?.rateLimiter, previous?.config.rateLimits == config.rateLimits {
            rateLimiter = old  // keeps its buckets
        } else {
            rateLimiter = RateLimiter(limits: config.rateLimits, shared: shared.sharedLimits, metrics: shared.metrics, logger: shared.logger)
        }

        let byName = Dictionary(upstreams.map { ($0.config.name, $0) }, uniquingKeysWith: { a, _ in a })
        let endpoints = config.endpoints.map { endpoint in
            MCPEndpoint(config: config, endpoint: endpoint, servers: endpoint.servers.compactMap { byName[$0] }, sealer: shared.sealer, logger: shared.logger,
                        authenticator: shared.auth.authenticator, policy: policy, metrics: shared.metrics, rateLimiter: rateLimiter,
                        tracer: shared.tracer, pins: shared.pins, carrying: previous?.byPath[endpoint.path])
        }
        let retiredEndpoints = (previous?.endpoints ?? []).filter { old in !endpoints.contains { $0.sessions === old.sessions } }
        let snapshot = GatewaySnapshot(config: config, version: version, generation: generation, upstreams: upstreams, endpoints: endpoints,
                                       policy: policy, rateLimiter: rateLimiter)
        return Built(snapshot: snapshot, started: started, retired: retired, retiredEndpoints: retiredEndpoints, policyInstall: install)
    }

    /// The settings a running process cannot change: what they differ in, empty when none.
    static func restartNeeded(from old: GatewayConfig, to new: GatewayConfig) -> [String] {
        var changed: [String] = []
        if old.listen != new.listen { changed.append("spec.listen") }
        if old.admin != new.admin { changed.append("spec.admin") }
        if old.storage != new.storage { changed.append("spec.storage") }
        if old.auth != new.auth { changed.append("spec.auth") }
        if old.sessions.key != new.sessions.key { changed.append("spec.sessions.key") }
        if old.tracing != new.tracing { changed.append("spec.tracing") }
        if !old.needsStore, new.needsStore { changed.append("spec.storage (the new config needs the store, which this process did not open)") }
        return changed
    }
}

/// The current snapshot, swapped atomically.
final class GatewayState: Sendable {
    private let current: Mutex<GatewaySnapshot>

    init(_ snapshot: GatewaySnapshot) { self.current = Mutex(snapshot) }

    var snapshot: GatewaySnapshot { current.withLock { $0 } }

    /// Installs `new` and returns the snapshot it replaced.
    func swap(_ new: GatewaySnapshot) -> GatewaySnapshot {
        current.withLock { state in
            let old = state
            state = new
            return old
        }
    }
}
