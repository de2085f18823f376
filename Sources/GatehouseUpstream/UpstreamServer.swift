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

    public init(config: ServerConfig, httpClient: HTTPClient, streamClient: HTTPClient? = nil, logger: Logger) {
        self.config = config
        self.logger = logger
        self.breaker = config.resilience.breakerFailures.map {
            CircuitBreaker(failureThreshold: $0, openDuration: .milliseconds(Int64(config.resilience.breakerOpenSeconds * 1000)))
        }
        switch config.transport {
        case .http(let http):
            backend = .http(HTTPTransport(
                serverName: config.name, url: http.url, headers: http.headers,
                credentials: http.clientCredentials.map { ClientCredentialsToken(config: $0, serverName: config.name, client: httpClient, logger: logger) },
                client: httpClient,
                streamClient: streamClient ?? httpClient, logger: logger))
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

    /// Counts list fan-outs this server was left out of (failed or too slow).
    public func countListFailure() { lock.withLock { listFailures += 1 } }
    public var listFailureCount: Int { lock.withLock { listFailures } }

    /// Connects for the first time, retrying with backoff until it works or `shutdown` is called.
    public func start() async {
        var delay = 0.25
        while !Task.isCancelled, !lock.withLock({ stopped }) {
            do {
                let info = try await connect()
                logger.info("upstream ready", metadata: [
                    "upstream": "\(config.name)", "protocol": "\(info.version)",
                    "server": "\(info.serverInfo?["name"]?.stringValue ?? "?")",
                ])
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
        let channel = HTTPChannel(transport: transport, info: info, client: client, sessionID: sessionID, requestTimeout: config.timeouts.requestSeconds)
        channel.startListening()
        return channel
    }

    public func shutdown() async {
        lock.withLock { stopped = true }
        if case .stdio(let stdio) = backend { await stdio.stop() }
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
