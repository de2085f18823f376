import Foundation
import GatehouseAuth
import GatehouseUpstream
import MCPWire
import NIOCore
import Synchronization

/// A session-era client's session (`Mcp-Session-Id`), bound to its own upstream channels.
/// Fully built before anything can see it: its id (sealed around its upstream sessions) and its
/// channels are fixed at creation; what changes is in one `Mutex`.
final class DownstreamSession: Sendable {
    let id: String
    let version: ProtocolVersion
    let identity: Identity
    let client: ClientDescription
    let channels: ChannelSet

    private struct State {
        var lastSeen: ContinuousClock.Instant = .now
        var activeRequests = 0
        /// The open standalone GET stream, if any.
        var stream: AsyncStream<[UInt8]>.Continuation?
        var streamGeneration = 0
        /// Messages that arrived while no GET stream was open (bounded).
        var backlog: [[UInt8]] = []
        /// Server-to-client requests relayed to the client: the id the client saw -> the server
        /// that asked and its own id. Ids from different servers never collide on the client side.
        var outbound: [String: (server: Int, id: JSONValue)] = [:]
        var nextOutbound = 0
        /// The client's requests in flight -> the server handling each (for cancellation).
        var inFlight: [String: Int] = [:]
    }

    private let state = Mutex(State())
    static let maxBacklog = 256

    init(id: String, version: ProtocolVersion, identity: Identity, client: ClientDescription, channels: ChannelSet) {
        self.id = id
        self.version = version
        self.identity = identity
        self.client = client
        self.channels = channels
    }

    /// Gives a server-to-client request an id unique within this session and remembers where
    /// the answer must go.
    func mapOutbound(_ request: JSONRPCMessage, server: Int) -> JSONRPCMessage {
        guard let original = request.id else { return request }
        let id = state.withLock { state -> JSONValue in
            state.nextOutbound += 1
            let id = JSONValue.string("gh-\(server)-\(state.nextOutbound)")
            state.outbound[id.idKey] = (server, original)
            return id
        }
        var copy = request
        copy.id = id
        return copy
    }

    /// The server that asked, and the answer with that server's own id restored.
    func resolveInbound(_ response: JSONRPCMessage) -> (server: Int, message: JSONRPCMessage)? {
        guard let id = response.id, let target = state.withLock({ $0.outbound.removeValue(forKey: id.idKey) }) else { return nil }
        var copy = response
        copy.id = target.id
        return (target.server, copy)
    }

    func track(_ request: JSONRPCMessage, server: Int) {
        guard let id = request.id else { return }
        state.withLock { $0.inFlight[id.idKey] = server }
    }

    func untrack(_ request: JSONRPCMessage) {
        guard let id = request.id else { return }
        _ = state.withLock { $0.inFlight.removeValue(forKey: id.idKey) }
    }

    func server(handling requestID: JSONValue) -> Int? {
        state.withLock { $0.inFlight[requestID.idKey] }
    }

    func touch() {
        state.withLock { $0.lastSeen = .now }
    }

    func beginRequest() {
        state.withLock {
            $0.activeRequests += 1
            $0.lastSeen = .now
        }
    }

    func endRequest() {
        state.withLock {
            $0.activeRequests -= 1
            $0.lastSeen = .now
        }
    }

    var hasStream: Bool { state.withLock { $0.stream != nil } }

    /// How long the session has gone unused; nil while a request or its stream is open.
    func idleTime(now: ContinuousClock.Instant) -> Duration? {
        state.withLock { $0.activeRequests == 0 && $0.stream == nil ? now - $0.lastSeen : nil }
    }

    /// Idle: no request in flight, no open stream, nothing seen for `timeout`.
    func isIdle(longerThan timeout: Duration, now: ContinuousClock.Instant) -> Bool {
        state.withLock { $0.activeRequests == 0 && $0.stream == nil && now - $0.lastSeen > timeout }
    }

    /// A message from the upstream that belongs to no request: onto the GET stream, or kept
    /// until one opens.
    func deliver(_ message: JSONRPCMessage) {
        let frame = SSEEncoder.message(message.bytes)
        state.withLock { state in
            if let stream = state.stream {
                stream.yield(frame)
            } else {
                if state.backlog.count >= Self.maxBacklog { state.backlog.removeFirst() }
                state.backlog.append(frame)
            }
        }
    }

    /// Opens the standalone stream; a newer GET replaces an older one.
    func openStream(keepAlive: Duration) -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let (previous, generation) = state.withLock { state -> (AsyncStream<[UInt8]>.Continuation?, Int) in
            let previous = state.stream
            state.stream = continuation
            state.streamGeneration += 1
            for frame in state.backlog { continuation.yield(frame) }
            state.backlog = []
            state.lastSeen = .now
            return (previous, state.streamGeneration)
        }
        previous?.finish()
        let ticker = KeepAlive.start(continuation, every: keepAlive)
        continuation.onTermination = { [weak self] _ in
            ticker.cancel()
            self?.state.withLock { state in
                if state.streamGeneration == generation {
                    state.stream = nil
                    state.lastSeen = .now
                }
            }
        }
        return stream
    }

    /// Ends the standalone stream (session closed or gateway shutting down).
    func closeStream() {
        let stream = state.withLock { state -> AsyncStream<[UInt8]>.Continuation? in
            defer { state.stream = nil }
            return state.stream
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
    /// `ended` in the order the ids were added, to forget the oldest in O(1) (a scan per ended
    /// session made churn quadratic once the memory was full).
    private var endedOrder: [(id: String, at: ContinuousClock.Instant)] = []
    private var endedHead = 0
    /// Session ids by caller (identity, or client address when anonymous), for the per-caller limit.
    private var byCaller: [String: Set<String>] = [:]
    private var callerOf: [String: String] = [:]
    let maxSessions: Int
    let maxPerCaller: Int
    var endedMemory: Duration = .seconds(3600)

    init(maxSessions: Int, maxPerCaller: Int = .max) {
        self.maxSessions = maxSessions
        self.maxPerCaller = maxPerCaller
    }

    var count: Int { lock.withLock { sessions.count } }

    enum Insertion {
        case inserted(evicted: DownstreamSession?)
        /// The gateway holds `maxSessions`.
        case full
        /// The caller holds `maxPerCaller` sessions, all busy (a request or a stream open).
        case callerFull
        case duplicate
    }

    /// Adds a session. A caller already holding `maxPerCaller` sessions loses its longest idle
    /// one (returned, for the caller to close): one caller cannot fill the gateway's session
    /// table and lock every other client out (10,000 `initialize` calls from one identity did,
    /// for the idle timeout).
    func insert(_ session: DownstreamSession, caller: String) -> Insertion {
        lock.withLock {
            guard sessions[session.id] == nil else { return .duplicate }
            var evicted: DownstreamSession?
            let held = byCaller[caller] ?? []
            if held.count >= maxPerCaller {
                let now = ContinuousClock.now
                var oldest: (session: DownstreamSession, idle: Duration)?
                for id in held {
                    guard let candidate = sessions[id], let idle = candidate.idleTime(now: now) else { continue }
                    if oldest == nil || idle > oldest!.idle { oldest = (candidate, idle) }
                }
                guard let oldest else { return .callerFull }
                removeLocked(oldest.session.id)
                evicted = oldest.session
            }
            guard sessions.count < maxSessions else { return .full }
            sessions[session.id] = session
            byCaller[caller, default: []].insert(session.id)
            callerOf[session.id] = caller
            return .inserted(evicted: evicted)
        }
    }

    /// How many sessions a caller holds.
    func count(caller: String) -> Int {
        lock.withLock { byCaller[caller]?.count ?? 0 }
    }

    private func removeLocked(_ id: String) {
        guard sessions.removeValue(forKey: id) != nil else { return }
        remember(ended: id)
        if let caller = callerOf.removeValue(forKey: id) {
            byCaller[caller]?.remove(id)
            if byCaller[caller]?.isEmpty == true { byCaller[caller] = nil }
        }
    }

    func get(_ id: String) -> DownstreamSession? {
        lock.withLock { sessions[id] }
    }

    func remove(_ id: String) -> DownstreamSession? {
        lock.withLock {
            let session = sessions[id]
            removeLocked(id)
            return session
        }
    }

    /// Whether a session with this id was ended on this replica.
    func wasEnded(_ id: String) -> Bool {
        lock.withLock { ended[id] != nil }
    }

    private func remember(ended id: String) {
        let now = ContinuousClock.now
        ended[id] = now
        endedOrder.append((id, now))
        // Forget the oldest while over `maxSessions` entries or past `endedMemory`.
        while endedHead < endedOrder.count {
            let oldest = endedOrder[endedHead]
            guard ended.count > maxSessions || now - oldest.at >= endedMemory else { break }
            if ended[oldest.id] == oldest.at { ended[oldest.id] = nil }
            endedHead += 1
        }
        if endedHead > 1024, endedHead * 2 > endedOrder.count {
            endedOrder.removeFirst(endedHead)
            endedHead = 0
        }
    }

    func removeIdle(longerThan timeout: Duration) -> [DownstreamSession] {
        let now = ContinuousClock.now
        return lock.withLock {
            let idle = sessions.values.filter { $0.isIdle(longerThan: timeout, now: now) }
            for session in idle { removeLocked(session.id) }
            return idle
        }
    }

    func all() -> [DownstreamSession] {
        lock.withLock { Array(sessions.values) }
    }

    func removeAll() -> [DownstreamSession] {
        lock.withLock {
            defer {
                sessions = [:]
                byCaller = [:]
                callerOf = [:]
            }
            return Array(sessions.values)
        }
    }
}
