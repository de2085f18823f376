import MCPWire

/// What the gateway learned about an upstream server when it connected.
public struct UpstreamInfo: Sendable, Equatable {
    /// The revision negotiated with the upstream (independent of any client's revision).
    public var version: ProtocolVersion
    public var capabilities: JSONObject
    public var serverInfo: JSONObject?
    public var instructions: String?

    public init(version: ProtocolVersion, capabilities: JSONObject, serverInfo: JSONObject? = nil, instructions: String? = nil) {
        self.version = version
        self.capabilities = capabilities
        self.serverInfo = serverInfo
        self.instructions = instructions
    }
}

/// What comes back for one forwarded request, in order.
public enum UpstreamEvent: Sendable {
    /// A notification (progress, log message) or a server-to-client request related to the request.
    case message(JSONRPCMessage)
    /// The final answer, with the client's original id restored. Always the last event.
    case response(JSONRPCMessage)
}

/// A failure talking to an upstream. The description names the upstream and says what happened,
/// without upstream internals (bodies, stack traces) that must not leak to clients.
public struct UpstreamError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case unavailable
        case timeout
        case protocolViolation
        case sessionExpired
        case notReady
    }

    public var upstream: String
    public var kind: Kind
    public var detail: String
    /// The connection was never established, so the request never left: safe to send to
    /// another endpoint whatever the method. Set where the failure is classified, read by retry
    /// decisions (never the detail's text).
    public var neverSent: Bool
    /// What only the operator may see (paths, internal URLs): logged, never in `description`,
    /// which clients get.
    public var operatorDetail: String?

    public init(upstream: String, kind: Kind, detail: String, neverSent: Bool = false, operatorDetail: String? = nil) {
        self.upstream = upstream
        self.kind = kind
        self.detail = detail
        self.neverSent = neverSent && kind == .unavailable
        self.operatorDetail = operatorDetail
    }

    public var description: String {
        switch kind {
        case .unavailable: return "upstream '\(upstream)' is unavailable: \(detail)"
        case .timeout: return "upstream '\(upstream)' did not answer in time: \(detail)"
        case .protocolViolation: return "upstream '\(upstream)' answered with an invalid message: \(detail)"
        case .sessionExpired: return "upstream '\(upstream)' ended its session: \(detail)"
        case .notReady: return "upstream '\(upstream)' is not ready yet: \(detail)"
        }
    }

    /// The reason code clients see in `error.data.gatehouse.reason`.
    public var reason: String {
        switch kind {
        case .unavailable: return "upstream_unavailable"
        case .timeout: return "upstream_timeout"
        case .protocolViolation: return "upstream_protocol_error"
        case .sessionExpired: return "upstream_session_expired"
        case .notReady: return "upstream_not_ready"
        }
    }
}

/// The client on whose behalf a channel talks to an upstream.
public struct ChannelOwner: Sendable, Hashable {
    /// The authenticated identity, or "anonymous" until authentication lands. Two owners with
    /// different identities never share an upstream session.
    public var identity: String
    /// The downstream session id for session-era clients; nil for stateless clients.
    public var downstreamSession: String?

    public init(identity: String, downstreamSession: String?) {
        self.identity = identity
        self.downstreamSession = downstreamSession
    }
}

/// What the client said about itself, passed upstream where the upstream's revision can carry it.
public struct ClientDescription: Sendable {
    public var clientInfo: JSONObject
    public var capabilities: JSONObject

    public init(clientInfo: JSONObject, capabilities: JSONObject) {
        self.clientInfo = clientInfo
        self.capabilities = capabilities
    }

    public static let gateway = ClientDescription(
        clientInfo: ["name": "gatehouse", "version": .string(GatehouseVersion.current)], capabilities: [:])
}

public enum GatehouseVersion {
    public static let current = "0.1.0"
}

/// One logical MCP client connection to an upstream on behalf of one owner.
public protocol UpstreamChannel: AnyObject, Sendable {
    var info: UpstreamInfo { get }
    /// The upstream's own `Mcp-Session-Id`, when this channel is an upstream session.
    var upstreamSessionID: String? { get }
    /// Forwards a request. The stream yields related messages, then exactly one `.response`,
    /// or throws `UpstreamError`. Cancelling the consumer cancels the upstream request.
    /// `headers` (from a policy decision, `X-` names only) go on the HTTP request; stdio has none.
    func send(request: JSONRPCMessage, headers: [(String, String)]) -> UpstreamEvents
    /// Forwards a client notification (e.g. cancellation, roots/list_changed).
    func send(notification: JSONRPCMessage) async throws
    /// Answers a server-to-client request the upstream sent earlier.
    func send(response: JSONRPCMessage) async throws
    /// Sets where messages that belong to no request go (list_changed, resources/updated,
    /// server-to-client requests on the standalone stream).
    func setUnsolicitedHandler(_ handler: @escaping @Sendable (JSONRPCMessage) -> Void)
    /// Ends the channel (and its upstream session, if it owns one).
    func close() async
}

extension UpstreamChannel {
    public func send(request: JSONRPCMessage) -> UpstreamEvents { send(request: request, headers: []) }
}

/// The events of one upstream request, read by one task at a time: related messages, then
/// exactly one `.response`, or an `UpstreamError`. Either pulled in place (plain-HTTP
/// upstreams: each `next()` reads on in the caller's task) or fed by a task of its own (stdio,
/// https). Dropping it before the response cancels the upstream request.
public final class UpstreamEvents: AsyncSequence, @unchecked Sendable {
    public typealias Element = UpstreamEvent

    private var streamed: AsyncThrowingStream<UpstreamEvent, any Error>.AsyncIterator?
    private let source: (any UpstreamEventSource)?

    public init(_ stream: AsyncThrowingStream<UpstreamEvent, any Error>) {
        streamed = stream.makeAsyncIterator()
        source = nil
    }

    init(source: any UpstreamEventSource) {
        streamed = nil
        self.source = source
    }

    public func next() async throws -> UpstreamEvent? {
        if let source { return try await source.next() }
        return try await streamed?.next()
    }

    deinit { source?.abandon() }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let events: UpstreamEvents
        public mutating func next() async throws -> UpstreamEvent? { try await events.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(events: self) }
}

/// What pulls the events of one request in place.
protocol UpstreamEventSource: AnyObject, Sendable {
    func next() async throws -> UpstreamEvent?
    /// The reader gave up before the response: cancel the upstream request.
    func abandon()
}
