import AsyncHTTPClient
import Foundation
import GatehouseConfig
import Logging
import Testing

@testable import GatehouseServer
@testable import GatehouseUpstream

/// What a reload keeps and what it replaces, without I/O: snapshots are built from configs and
/// compared by object identity (no upstream is contacted).
@Suite(.serialized) struct SnapshotTests {
    static func config(_ servers: [(String, String)], endpoints: [(String, [String])], limits: [GatewayConfig.RateLimit] = []) -> GatewayConfig {
        var config = GatewayConfig(name: "g", servers: servers.map { ServerConfig(name: $0.0, transport: .http(.init(url: $0.1))) },
                                   endpoints: endpoints.map { GatewayConfig.Endpoint(path: $0.0, servers: $0.1) })
        config.rateLimits = limits
        return config
    }

    func withShared(_ body: (GatewayShared) throws -> Void) throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { try? client.syncShutdown() }
        let shared = GatewayShared(httpClient: client, streamClient: client, auth: GatewayAuth(authenticator: nil, authorizationServer: nil),
                                   metrics: Metrics(), sealer: SessionSealer(secret: nil), logger: Logger(label: "test"), tracer: nil, sharedLimits: nil)
        try body(shared)
    }

    @Test func unchangedServersAndEndpointsAreCarriedOver() throws {
        try withShared { shared in
            let limit = GatewayConfig.RateLimit(name: "calls", requestsPerSecond: 1, burst: 2)
            let first = try GatewaySnapshot.build(
                config: Self.config([("a", "http://127.0.0.1:1/mcp"), ("b", "http://127.0.0.1:2/mcp")], endpoints: [("/mcp", ["a"]), ("/b", ["b"])], limits: [limit]),
                version: "v1", generation: 1, previous: nil, shared: shared)
            #expect(first.started.count == 2 && first.retired.isEmpty)
            let old = first.snapshot

            // b changes its URL; a and /mcp stay; /new appears; the limit stays.
            let second = try GatewaySnapshot.build(
                config: Self.config([("a", "http://127.0.0.1:1/mcp"), ("b", "http://127.0.0.1:3/mcp")],
                                    endpoints: [("/mcp", ["a"]), ("/b", ["b"]), ("/new", ["a", "b"])], limits: [limit]),
                version: "v2", generation: 2, previous: old, shared: shared)
            let new = second.snapshot
            #expect(new.upstreams[0] === old.upstreams[0], "an unchanged server keeps its connections")
            #expect(new.upstreams[1] !== old.upstreams[1], "a changed server is replaced")
            #expect(second.started.map(\.config.name) == ["b"])
            #expect(second.retired.map(\.config.name) == ["b"])
            #expect(new.byPath["/mcp"]?.sessions === old.byPath["/mcp"]?.sessions, "an endpoint whose servers were kept keeps its sessions")
            #expect(new.byPath["/b"]?.sessions !== old.byPath["/b"]?.sessions, "an endpoint of a replaced server starts afresh")
            #expect(second.retiredEndpoints.map(\.endpoint.path) == ["/b"])
            #expect(new.rateLimiter === old.rateLimiter, "unchanged limits keep their buckets")
            #expect(new.generation == 2 && new.version == "v2")
        }
    }

    @Test func changedLimitsGetNewBuckets() throws {
        try withShared { shared in
            let config = Self.config([("a", "http://127.0.0.1:1/mcp")], endpoints: [("/mcp", ["a"])],
                                     limits: [GatewayConfig.RateLimit(name: "calls", requestsPerSecond: 1, burst: 2)])
            let first = try GatewaySnapshot.build(config: config, version: "v1", generation: 1, previous: nil, shared: shared).snapshot
            var changed = config
            changed.rateLimits[0].burst = 5
            let second = try GatewaySnapshot.build(config: changed, version: "v2", generation: 2, previous: first, shared: shared).snapshot
            #expect(second.rateLimiter !== first.rateLimiter)
        }
    }

    @Test func processBoundSettingsNeedARestart() {
        let base = Self.config([("a", "http://127.0.0.1:1/mcp")], endpoints: [("/mcp", ["a"])])
        #expect(GatewaySnapshot.restartNeeded(from: base, to: base).isEmpty)
        var changed = base
        changed.listen.port = 9999
        changed.admin = GatewayConfig.Admin(listen: .init())
        changed.sessions.key = Secret(String(repeating: "k", count: 40))
        #expect(GatewaySnapshot.restartNeeded(from: base, to: changed) == ["spec.listen", "spec.admin", "spec.sessions.key"])
        var servers = base
        servers.servers[0].resilience.retries = 2
        #expect(GatewaySnapshot.restartNeeded(from: base, to: servers).isEmpty, "servers reload")
    }
}
