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
public final class UpstreamServer: Sendable {
    public let config: ServerConfig
    let logger: Logger
    /// Fails requests fast while the upstream keeps failing (`spec.resilience.circuitBreaker`).
    public let breaker: CircuitBreaker?

    private struct State {
        var inFlight = 0
        var stopped = false
        var listFailures = 0
        var lastError: String?
    }

    private let state = Mutex(State())

    /// Takes a slot of `spec.maxConcurrentRequests`; false when the upstream is at its limit.
    /// Every successful acquire must be followed by one `releaseSlot()`.
    public func acquireSlot() -> Bool {
        guard let limit = config.maxConcurrentRequests else { return true }
        return state.withLock { state in
            guard state.inFlight < limit else { return false }
            state.inFlight += 1
            return true
        }
    }

    public func releaseSlot() {
        guard config.maxConcurrentRequests != nil else { return }
        state.withLock { $0.inFlight = max(0, $0.inFlight - 1) }
    }

    public var slotsInUse: Int { state.withLock { $0.inFlight } }
    private let backend: any UpstreamBackend

    /// A server reached through `backend` (HTTP, stdio, or an in-process fake in tests).
    public init(config: ServerConfig, backend: any UpstreamBackend, logger: Logger) {
        self.config = config
        self.logger = logger
        self.backend = backend
        self.breaker = config.resilience.breakerFailures.map {
            CircuitBreaker(failureThreshold: $0, openDuration: .milliseconds(Int64(config.resilience.breakerOpenSeconds * 1000)))
        }
    }

    /// A server as its config says: HTTP or stdio.
    public convenience init(config: ServerConfig, httpClient: HTTPClient, streamClient: HTTPClient? = nil, logger: Logger) {
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
            self.init(config: config, backend: HTTPBackend(config: config, transport: transport, httpClient: httpClient, logger: logger), logger: logger)
        case .stdio(let stdio):
            self.init(config: config, backend: StdioUpstream(name: config.name, stdio: stdio, timeouts: config.timeouts, logger: logger), logger: logger)
        }
    }

    /// What the upstream said about itself; nil until it has been reached.
    public var info: UpstreamInfo? { backend.currentInfo }

    public var isReady: Bool { info != nil }

    /// Why the first connection has not succeeded yet, for error messages.
    public var connectProblem: String {
        state.withLock { $0.lastError }.map { "\($0); retrying" } ?? "it has not completed its handshake"
    }

    /// The endpoints of an HTTP server and their health (nil for stdio).
    public var members: UpstreamMembers? { backend.members }

    /// Counts list fan-outs this server was left out of (failed or too slow).
    public func countListFailure() { state.withLock { $0.listFailures += 1 } }
    public var listFailureCount: Int { state.withLock { $0.listFailures } }

    /// Connects for the first time, retrying with backoff until it works or `shutdown` is called,
    /// then runs the active health checks (`spec.healthCheck`) until shutdown.
    public func start() async {
        var delay = 0.25
        while !Task.isCancelled, !state.withLock({ $0.stopped }) {
            do {
                let info = try await backend.connect()
                logger.info("upstream ready", metadata: [
                    "upstream": "\(config.name)", "protocol": "\(info.version)",
                    "server": "\(info.serverInfo?["name"]?.stringValue ?? "?")",
                ])
                await backend.monitor { [weak self] in self?.state.withLock { $0.stopped } ?? true }
                return
            } catch {
                state.withLock { $0.lastError = (error as? UpstreamError)?.detail ?? "\(error)" }
                var metadata: Logger.Metadata = ["upstream": "\(config.name)", "error": "\(error)", "retry_in": "\(delay)s"]
                if let hidden = (error as? UpstreamError)?.operatorDetail { metadata["operator_detail"] = "\(hidden)" }
                logger.warning("upstream not reachable yet", metadata: metadata)
                if backend.reconnectsItself { return }
            }
            try? await Task.sleep(for: .seconds(delay))
            delay = min(delay * 2, 10)
        }
    }

    /// A new channel for a client; close it when done. For a session-era HTTP upstream each
    /// channel is its own upstream session, so callers pool channels of stateless clients per
    /// identity (never across identities).
    public func channel(for owner: ChannelOwner, client: ClientDescription) async throws -> any UpstreamChannel {
        guard let info else {
            throw UpstreamError(upstream: config.name, kind: .notReady, detail: connectProblem)
        }
        return try await backend.channel(for: owner, client: client, info: info)
    }

    /// A channel bound to an upstream session opened earlier (possibly by another replica),
    /// or nil when this server has no such sessions (stdio, stateless HTTP, not reachable).
    public func resume(sessionID: String, client: ClientDescription) -> (any UpstreamChannel)? {
        guard let info else { return nil }
        return backend.resume(sessionID: sessionID, client: client, info: info)
    }

    public func shutdown() async {
        state.withLock { $0.stopped = true }
        await backend.shutdown()
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
