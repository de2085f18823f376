import AsyncHTTPClient
import Foundation
import GatehouseConfig
import Logging
import MCPWire
import Synchronization

/// How Gatehouse reaches one upstream server: over HTTP (`HTTPBackend`), as a child process
/// (`StdioUpstream`), or — in tests — a fake in the same process. `UpstreamServer` adds what
/// every backend shares (first connection with backoff, breaker, concurrency slots).
public protocol UpstreamBackend: Sendable {
    /// What the server said about itself; nil until it has been reached (or while a stdio
    /// server restarts).
    var currentInfo: UpstreamInfo? { get }
    /// Reaches the server (its handshake) and remembers what it said.
    func connect() async throws -> UpstreamInfo
    /// True when the backend reconnects by itself after `connect` failed once (stdio restarts
    /// its process); false when `UpstreamServer.start` must retry with backoff.
    var reconnectsItself: Bool { get }
    /// A new channel for a client (for a session-era HTTP server, its own upstream session).
    func channel(for owner: ChannelOwner, client: ClientDescription, info: UpstreamInfo) async throws -> any UpstreamChannel
    /// A channel bound to an upstream session opened earlier (possibly by another replica), or
    /// nil when the backend has no such sessions.
    func resume(sessionID: String, client: ClientDescription, info: UpstreamInfo) -> (any UpstreamChannel)?
    /// Watches the server's health until `isStopped` (active health checks); returns at once
    /// when the backend has none.
    func monitor(isStopped: @escaping @Sendable () -> Bool) async
    /// The endpoints of an HTTP server and their health (nil for others).
    var members: UpstreamMembers? { get }
    func shutdown() async
}

extension UpstreamBackend {
    public var reconnectsItself: Bool { false }
    public func resume(sessionID: String, client: ClientDescription, info: UpstreamInfo) -> (any UpstreamChannel)? { nil }
    public func monitor(isStopped: @escaping @Sendable () -> Bool) async {}
    public var members: UpstreamMembers? { nil }
}

/// A server reached over Streamable HTTP, at one or more URLs.
final class HTTPBackend: UpstreamBackend {
    let config: ServerConfig
    let transport: HTTPTransport
    let httpClient: HTTPClient
    let logger: Logger
    private let probed = Mutex<UpstreamInfo?>(nil)

    init(config: ServerConfig, transport: HTTPTransport, httpClient: HTTPClient, logger: Logger) {
        self.config = config
        self.transport = transport
        self.httpClient = httpClient
        self.logger = logger
    }

    var currentInfo: UpstreamInfo? { probed.withLock { $0 } }
    var members: UpstreamMembers? { transport.members }

    func connect() async throws -> UpstreamInfo {
        let timeout = config.timeouts.requestSeconds
        if let info = try await HTTPChannel.discover(transport: transport, requestTimeout: timeout) {
            probed.withLock { $0 = info }
            return info
        }
        // A session-era server: one handshake to learn its capabilities, then end that session.
        let channel = try await HTTPChannel.initialize(transport: transport, client: .gateway, requestTimeout: timeout)
        probed.withLock { $0 = channel.info }
        await channel.close()
        return channel.info
    }

    func channel(for owner: ChannelOwner, client: ClientDescription, info: UpstreamInfo) async throws -> any UpstreamChannel {
        let timeout = config.timeouts.requestSeconds
        if info.version.isStateless {
            return HTTPChannel(transport: transport, info: info, client: client, sessionID: nil, requestTimeout: timeout)
        }
        return try await HTTPChannel.initialize(transport: transport, client: client, requestTimeout: timeout)
    }

    func resume(sessionID: String, client: ClientDescription, info: UpstreamInfo) -> (any UpstreamChannel)? {
        guard !info.version.isStateless else { return nil }
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

    /// Probes every member each `intervalSeconds` (concurrently, each bounded by `timeoutSeconds`)
    /// and marks members unhealthy or healthy after their thresholds.
    func monitor(isStopped: @escaping @Sendable () -> Bool) async {
        guard let check = config.healthCheck else { return }
        while !Task.isCancelled, !isStopped() {
            await withTaskGroup(of: Void.self) { group in
                for index in transport.members.urls.indices {
                    group.addTask {
                        let passed = (try? await withTimeout(check.timeoutSeconds, upstream: self.config.name) {
                            try await self.probe(member: index, path: check.path)
                        }) ?? false
                        if let healthy = self.transport.members.recordCheck(index, passed: passed) {
                            self.logger.log(level: healthy ? .info : .warning, healthy ? "upstream endpoint healthy again" : "upstream endpoint unhealthy",
                                            metadata: ["upstream": "\(self.config.name)", "url": "\(DisplayURL.redacted(self.transport.members.urls[index]))"])
                        }
                    }
                }
            }
            try? await Task.sleep(for: .milliseconds(Int64(check.intervalSeconds * 1000)))
        }
    }

    /// One active check of one member: an HTTP GET of `path` on its origin (2xx passes), or an
    /// MCP handshake (`server/discover`, or `initialize` and DELETE of that session).
    private func probe(member: Int, path: String?) async throws -> Bool {
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
        if currentInfo?.version.isStateless ?? true, try await HTTPChannel.discover(transport: transport, member: member, probe: true, requestTimeout: timeout) != nil {
            return true
        }
        let channel = try await HTTPChannel.initialize(transport: transport, client: .gateway, member: member, probe: true, requestTimeout: timeout)
        await channel.close()
        return true
    }

    func shutdown() async {
        for client in transport.lean { client?.closeIdle() }
    }
}

extension StdioUpstream: UpstreamBackend {
    public var reconnectsItself: Bool { true }
    public func connect() async throws -> UpstreamInfo { try await start() }
    public func channel(for owner: ChannelOwner, client: ClientDescription, info: UpstreamInfo) async throws -> any UpstreamChannel {
        try openChannel()
    }
    public func shutdown() async { await stop() }
}
