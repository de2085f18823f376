import Foundation
import GatehouseUpstream
import MCPWire
import NIOCore

/// A session-era client's session (`Mcp-Session-Id`), bound to its own upstream channel.
final class DownstreamSession: @unchecked Sendable {
    let id: String
    let version: ProtocolVersion
    let identity: Identity
    let client: ClientDescription
    let channel: any UpstreamChannel

    private let lock = NSLock()
    private var lastSeen: ContinuousClock.Instant
    private var activeRequests = 0
    /// The open standalone GET stream, if any.
    private var stream: AsyncStream<[UInt8]>.Continuation?
    private var streamGeneration = 0
    /// Messages that arrived while no GET stream was open (bounded).
    private var backlog: [[UInt8]] = []
    static let maxBacklog = 256

    init(id: String, version: ProtocolVersion, identity: Identity, client: ClientDescription, channel: any UpstreamChannel) {
        self.id = id
        self.version = version
        self.identity = identity
        self.client = client
        self.channel = channel
        self.lastSeen = .now
    }

    func touch() {
        lock.withLock { lastSeen = .now }
    }

    func beginRequest() {
        lock.withLock {
            activeRequests += 1
            lastSeen = .now
        }
    }

    func endRequest() {
        lock.withLock {
            activeRequests -= 1
            lastSeen = .now
        }
    }

    /// Idle: no request in flight, no open stream, nothing seen for `timeout`.
    func isIdle(longerThan timeout: Duration, now: ContinuousClock.Instant) -> Bool {
        lock.withLock { activeRequests == 0 && stream == nil && now - lastSeen > timeout }
    }

    /// A message from the upstream that belongs to no request: onto the GET stream, or kept
    /// until one opens.
    func deliver(_ message: JSONRPCMessage) {
        let frame = SSEEncoder.message(message.bytes)
        lock.withLock {
            if let stream {
                stream.yield(frame)
            } else {
                if backlog.count >= Self.maxBacklog { backlog.removeFirst() }
                backlog.append(frame)
            }
        }
    }

    /// Opens the standalone stream; a newer GET replaces an older one.
    func openStream(keepAlive: Duration) -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let (previous, generation) = lock.withLock { () -> (AsyncStream<[UInt8]>.Continuation?, Int) in
            let previous = self.stream
            self.stream = continuation
            streamGeneration += 1
            for frame in backlog { continuation.yield(frame) }
            backlog = []
            lastSeen = .now
            return (previous, streamGeneration)
        }
        previous?.finish()
        let ticker = KeepAlive.start(continuation, every: keepAlive)
        continuation.onTermination = { [weak self] _ in
            ticker.cancel()
            guard let self else { return }
            self.lock.withLock {
                if self.streamGeneration == generation {
                    self.stream = nil
                    self.lastSeen = .now
                }
            }
        }
        return stream
    }

    /// Ends the standalone stream (session closed or gateway shutting down).
    func closeStream() {
        let stream = lock.withLock { () -> AsyncStream<[UInt8]>.Continuation? in
            defer { self.stream = nil }
            return self.stream
        }
        stream?.finish()
    }
}

/// All live sessions. Sessions are held in memory by the replica that created them.
final class SessionStore: @unchecked Sendable {
    private let lock = NSLock()
    private var sessions: [String: DownstreamSession] = [:]
    let maxSessions: Int

    init(maxSessions: Int) {
        self.maxSessions = maxSessions
    }

    var count: Int { lock.withLock { sessions.count } }

    func insert(_ session: DownstreamSession) -> Bool {
        lock.withLock {
            guard sessions.count < maxSessions else { return false }
            sessions[session.id] = session
            return true
        }
    }

    func get(_ id: String) -> DownstreamSession? {
        lock.withLock { sessions[id] }
    }

    func remove(_ id: String) -> DownstreamSession? {
        lock.withLock { sessions.removeValue(forKey: id) }
    }

    func removeIdle(longerThan timeout: Duration) -> [DownstreamSession] {
        let now = ContinuousClock.now
        return lock.withLock {
            let idle = sessions.values.filter { $0.isIdle(longerThan: timeout, now: now) }
            for session in idle { sessions[session.id] = nil }
            return idle
        }
    }

    func all() -> [DownstreamSession] {
        lock.withLock { Array(sessions.values) }
    }

    func removeAll() -> [DownstreamSession] {
        lock.withLock {
            defer { sessions = [:] }
            return Array(sessions.values)
        }
    }
}
