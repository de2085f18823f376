import Foundation
import GatehouseAuth
import GatehouseUpstream
import MCPWire
import NIOCore

/// A session-era client's session (`Mcp-Session-Id`), bound to its own upstream channels.
final class DownstreamSession: @unchecked Sendable {
    /// Set once, before the session is stored (a sealed id is known only after its upstream
    /// sessions are open).
    private(set) var id: String
    let version: ProtocolVersion
    let identity: Identity
    let client: ClientDescription
    /// Assigned once, right after creation (the channel set's callbacks refer to the session).
    private(set) var channels: ChannelSet!

    private let lock = NSLock()
    private var lastSeen: ContinuousClock.Instant
    private var activeRequests = 0
    /// The open standalone GET stream, if any.
    private var stream: AsyncStream<[UInt8]>.Continuation?
    private var streamGeneration = 0
    /// Messages that arrived while no GET stream was open (bounded).
    private var backlog: [[UInt8]] = []
    static let maxBacklog = 256

    /// Server-to-client requests relayed to the client: the id the client saw -> the server
    /// that asked and its own id. Ids from different servers never collide on the client side.
    private var outbound: [String: (server: Int, id: JSONValue)] = [:]
    private var nextOutbound = 0
    /// The client's requests in flight -> the server handling each (for cancellation).
    private var inFlight: [String: Int] = [:]

    init(id: String, version: ProtocolVersion, identity: Identity, client: ClientDescription) {
        self.id = id
        self.version = version
        self.identity = identity
        self.client = client
        self.lastSeen = .now
    }

    func assign(id: String) {
        self.id = id
    }

    func attach(_ channels: ChannelSet) {
        self.channels = channels
    }

    /// Gives a server-to-client request an id unique within this session and remembers where
    /// the answer must go.
    func mapOutbound(_ request: JSONRPCMessage, server: Int) -> JSONRPCMessage {
        guard let original = request.id else { return request }
        var copy = request
        lock.withLock {
            nextOutbound += 1
            let id = JSONValue.string("gh-\(server)-\(nextOutbound)")
            outbound[id.idKey] = (server, original)
            copy.id = id
        }
        return copy
    }

    /// The server that asked, and the answer with that server's own id restored.
    func resolveInbound(_ response: JSONRPCMessage) -> (server: Int, message: JSONRPCMessage)? {
        guard let id = response.id, let target = lock.withLock({ outbound.removeValue(forKey: id.idKey) }) else { return nil }
        var copy = response
        copy.id = target.id
        return (target.server, copy)
    }

    func track(_ request: JSONRPCMessage, server: Int) {
        guard let id = request.id else { return }
        lock.withLock { inFlight[id.idKey] = server }
    }

    func untrack(_ request: JSONRPCMessage) {
        guard let id = request.id else { return }
        _ = lock.withLock { inFlight.removeValue(forKey: id.idKey) }
    }

    func server(handling requestID: JSONValue) -> Int? {
        lock.withLock { inFlight[requestID.idKey] }
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

    var hasStream: Bool { lock.withLock { stream != nil } }

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
    /// Ids of sessions ended here (DELETE, expiry), so their sealed ids cannot bring them back
    /// on this replica. Kept for `endedMemory`, at most `maxSessions` entries.
    private var ended: [String: ContinuousClock.Instant] = [:]
    let maxSessions: Int
    var endedMemory: Duration = .seconds(3600)

    init(maxSessions: Int) {
        self.maxSessions = maxSessions
    }

    var count: Int { lock.withLock { sessions.count } }

    func insert(_ session: DownstreamSession) -> Bool {
        lock.withLock {
            guard sessions.count < maxSessions, sessions[session.id] == nil else { return false }
            sessions[session.id] = session
            return true
        }
    }

    func get(_ id: String) -> DownstreamSession? {
        lock.withLock { sessions[id] }
    }

    func remove(_ id: String) -> DownstreamSession? {
        lock.withLock {
            let session = sessions.removeValue(forKey: id)
            if session != nil { remember(ended: id) }
            return session
        }
    }

    /// Whether a session with this id was ended on this replica.
    func wasEnded(_ id: String) -> Bool {
        lock.withLock { ended[id] != nil }
    }

    private func remember(ended id: String) {
        let now = ContinuousClock.now
        if ended.count >= maxSessions {
            ended = ended.filter { now - $0.value < endedMemory }
            if ended.count >= maxSessions, let oldest = ended.min(by: { $0.value < $1.value }) { ended[oldest.key] = nil }
        }
        ended[id] = now
    }

    func removeIdle(longerThan timeout: Duration) -> [DownstreamSession] {
        let now = ContinuousClock.now
        return lock.withLock {
            let idle = sessions.values.filter { $0.isIdle(longerThan: timeout, now: now) }
            for session in idle {
                sessions[session.id] = nil
                remember(ended: session.id)
            }
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
