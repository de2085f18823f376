import AsyncHTTPClient
import Foundation
import GatehouseConfig
import Logging
import MCPWire
import Synchronization

/// One configured upstream MCP server: connects to it (HTTP or stdio), learns its revision and
/// capabilities, and hands out channels to it on behalf of clients.
///
/// Channels and identities (design note): a session-era client gets its own upstream session
/// (HTTP), created with that client's own capabilities so sampling, elicitation and roots reach
/// the right client. Stateless clients share one pooled upstream session per identity, never
/// across identities. A stateless upstream needs no sessions at all. Stdio servers are one
/// shared process (see `StdioUpstream`).
public final class UpstreamServer: @unchecked Sendable {
    public let config: ServerConfig
    let logger: Logger
    /// Fails requests fast while the upstream keeps failing (`spec.resilience.circuitBreaker`).
    public let breaker: CircuitBreaker?
    private var inFlight = 0

    /// Takes a slot of `spec.maxConcurrentRequests`; false when the upstream is at its limit.
    /// Every successful acquire must be followed by one `releaseSlot()`.
    public func acquireSlot() -> Bool {
        guard let limit = config.maxConcurrentRequests else { return true }
        return lock.withLock {
            guard inFlight < limit else { return false }
            inFlight += 1
            return true
        }
    }

    public func releaseSlot() {
        guard config.maxConcurrentRequests != nil else { return }
        lock.withLock { inFlight = max(0, inFlight - 1) }
    }

    public var slotsInUse: Int { lock.withLock { inFlight } }
    private let backend: Backend
    private let lock = NSLock()
    private var probed: UpstreamInfo?
    private var stopped = false
    private var listFailures = 0
    private var lastError: String?

    enum Backend {
        case http(HTTPTransport)
        case stdio(StdioUpstream)
    }

    private let httpClient: HTTPClient

    public init(config: ServerConfig, httpClient: HTTPClient, streamClient: HTTPClient? = nil, logger: Logger) {
        self.config = config
        self.httpClient = httpClient
        self.logger = logger
        self.breaker = config.resilience.breakerFailures.map {
            CircuitBreaker(failureThreshold: $0, openDuration: .milliseconds(Int64(config.resilience.breakerOpenSeconds * 1000)))
        }
        switch config.transport {
        case .http(let http):
            var transport = HTTPTransport(
                serverName: config.name,
                members: UpstreamMembers(urls: http.urls, balance: http.balance, outlier: config.outlierDetection, check: config.healthCheck),
                headers: http.headers,
                credentials: http.clientCredentials.map { ClientCredentialsToken(config: $0, serverName: config.name, client: httpClient, logger: logger) },
                client: httpClient,
                streamClient: streamClient ?? httpClient, logger: logger, tls: HTTPTransport.tlsConfiguration(http.tls))
            // Plain-HTTP endpoints take the lean client; https (and spec.http.tls) AsyncHTTPClient.
            // GATEHOUSE_UPSTREAM_CLIENT=asynchttpclient sends everything through AsyncHTTPClient.
            let leanAllowed = http.tls == nil && ProcessInfo.processInfo.environment["GATEHOUSE_UPSTREAM_CLIENT"] != "asynchttpclient"
            transport.lean = http.urls.map { url in
                guard leanAllowed, let endpoint = UpstreamHTTPClient.Endpoint(url: url) else { return nil }
                return UpstreamHTTPClient(endpoint: endpoint, connectTimeout: .milliseconds(Int64(config.timeouts.connectSeconds * 1000)),
                                          maxBody: HTTPTransport.maxJSONBody)
            }
            backend = .http(transport)
        case .stdio(let stdio):
            backend = .stdio(StdioUpstream(name: config.name, stdio: stdio, timeouts: config.timeouts, logger: logger))
        }
    }

    /// What the upstream said about itself; nil until it has been reached.
    public var info: UpstreamInfo? {
        switch backend {
        case .http: return lock.withLock { probed }
        case .stdio(let stdio): return stdio.currentInfo
        }
    }

    public var isReady: Bool { info != nil }

    /// Why the first connection has not succeeded yet, for error messages.
    public var connectProblem: String {
        lock.withLock { lastError }.map { "\($0); retrying" } ?? "it has not completed its handshake"
    }

    /// The endpoints of an HTTP server and their health (nil for stdio).
    public var members: UpstreamMembers? {
        if case .http(let transport) = backend { return transport.members }
        return nil
    }

    /// Counts list fan-outs this server was left out of (failed or too slow).
    public func countListFailure() { lock.withLock { listFailures += 1 } }
    public var listFailureCount: Int { lock.withLock { listFailures } }

    /// Connects for the first time, retrying with backoff until it works or `shutdown` is called,
    /// then runs the active health checks (`spec.healthCheck`) until shutdown.
    public func start() async {
        var delay = 0.25
        while !Task.isCancelled, !lock.withLock({ stopped }) {
            do {
                let info = try await connect()
                logger.info("upstream ready", metadata: [
                    "upstream": "\(config.name)", "protocol": "\(info.version)",
                    "server": "\(info.serverInfo?["name"]?.stringValue ?? "?")",
                ])
                await runHealthChecks()
                return
            } catch {
                lock.withLock { lastError = (error as? UpstreamError)?.detail ?? "\(error)" }
                logger.warning("upstream not reachable yet", metadata: ["upstream": "\(config.name)", "error": "\(error)", "retry_in": "\(delay)s"])
                if case .stdio = backend { return }  // StdioUpstream restarts by itself
            }
            try? await Task.sleep(for: .seconds(delay))
            delay = min(delay * 2, 10)
        }
    }

    /// Probes every member each `intervalSeconds` (concurrently, each bounded by `timeoutSeconds`)
    /// and marks members unhealthy or healthy after their thresholds.
    private func runHealthChecks() async {
        guard let check = config.healthCheck, case .http(let transport) = backend else { return }
        while !Task.isCancelled, !lock.withLock({ stopped }) {
            await withTaskGroup(of: Void.self) { group in
                for index in transport.members.urls.indices {
                    group.addTask {
                        let passed = (try? await withTimeout(check.timeoutSeconds, upstream: self.config.name) {
                            try await self.probe(member: index, transport: transport, path: check.path)
                        }) ?? false
                        if let healthy = transport.members.recordCheck(index, passed: passed) {
                            self.logger.log(level: healthy ? .info : .warning, healthy ? "upstream endpoint healthy again" : "upstream endpoint unhealthy",
                                            metadata: ["upstream": "\(self.config.name)", "url": "\(DisplayURL.redacted(transport.members.urls[index]))"])
                        }
                    }
                }
            }
            try? await Task.sleep(for: .milliseconds(Int64(check.intervalSeconds * 1000)))
        }
    }

    /// One active check of one member: an HTTP GET of `path` on its origin (2xx passes), or an
    /// MCP handshake (`server/discover`, or `initialize` and DELETE of that session).
    private func probe(member: Int, transport: HTTPTransport, path: String?) async throws -> Bool {
        if let path {
            guard var components = URLComponents(string: transport.members.urls[member]) else { return false }
            components.path = path
            components.query = nil
            guard let url = components.string else { return false }
            var request = HTTPClientRequest(url: url)
            request.tlsConfiguration = transport.tls
            let response = try await httpClient.execute(request, timeout: .seconds(Int64(max(1, config.healthCheck?.timeoutSeconds ?? 2))))
            return (200..<300).contains(response.status.code)
        }
        let timeout = config.timeouts.requestSeconds
        if info?.version.isStateless ?? true, try await HTTPChannel.discover(transport: transport, member: member, probe: true, requestTimeout: timeout) != nil {
            return true
        }
        let channel = try await HTTPChannel.initialize(transport: transport, client: .gateway, member: member, probe: true, requestTimeout: timeout)
        await channel.close()
        return true
    }

    private func connect() async throws -> UpstreamInfo {
        switch backend {
        case .stdio(let stdio):
            return try await stdio.start()
        case .http(let transport):
            let timeout = config.timeouts.requestSeconds
            if let info = try await HTTPChannel.discover(transport: transport, requestTimeout: timeout) {
                lock.withLock { probed = info }
                return info
            }
            // A session-era server: one handshake to learn its capabilities, then end that session.
            let channel = try await HTTPChannel.initialize(transport: transport, client: .gateway, requestTimeout: timeout)
            lock.withLock { probed = channel.info }
            await channel.close()
            return channel.info
        }
    }

    /// A new channel for a client; close it when done. For a session-era HTTP upstream each
    /// channel is its own upstream session, so callers pool channels of stateless clients per
    /// identity (never across identities).
    public func channel(for owner: ChannelOwner, client: ClientDescription) async throws -> any UpstreamChannel {
        guard let info else {
            throw UpstreamError(upstream: config.name, kind: .notReady, detail: connectProblem)
        }
        switch backend {
        case .stdio(let stdio):
            return try stdio.openChannel()
        case .http(let transport):
            let timeout = config.timeouts.requestSeconds
            if info.version.isStateless {
                return HTTPChannel(transport: transport, info: info, client: client, sessionID: nil, requestTimeout: timeout)
            }
            return try await HTTPChannel.initialize(transport: transport, client: client, requestTimeout: timeout)
        }
    }

    /// A channel bound to an upstream session opened earlier (possibly by another replica),
    /// or nil when this server has no such sessions (stdio, stateless HTTP, not reachable).
    public func resume(sessionID: String, client: ClientDescription) -> (any UpstreamChannel)? {
        guard case .http(let transport) = backend, let info, !info.version.isStateless else { return nil }
        var id = sessionID
        var member = 0
        if transport.members.count > 1, let mark = sessionID.firstIndex(of: "~"), let index = Int(sessionID[..<mark]), transport.members.urls.indices.contains(index) {
            member = index
            id = String(sessionID[sessionID.index(after: mark)...])
        }
        let channel = HTTPChannel(transport: transport, info: info, client: client, sessionID: id, member: member, requestTimeout: config.timeouts.requestSeconds)
        channel.startListening()
        return channel
    }

    public func shutdown() async {
        lock.withLock { stopped = true }
        switch backend {
        case .stdio(let stdio): await stdio.stop()
        case .http(let transport): for client in transport.lean { client?.closeIdle() }
        }
    }
}

/// One acquired concurrency slot: released once, explicitly when the answer is complete, or at
/// the latest when the request's last reference goes away (a client that vanished before its
/// stream was written must not leak the slot).
public final class UpstreamSlot: Sendable {
    let upstream: UpstreamServer
    let released = Mutex(false)

    public init(_ upstream: UpstreamServer) { self.upstream = upstream }

    public func release() {
        let first = released.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        if first { upstream.releaseSlot() }
    }

    deinit { release() }
}
