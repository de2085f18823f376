import GatehouseUpstream
import MCPWire
import Synchronization

/// One JSON-RPC request on its way through the request steps: the decoded request, who asks,
/// how to reach the servers, and what the steps before decided. Typed, built once by the era
/// step; each step passes on a copy with its own part filled in.
struct Exchange: Sendable {
    /// The request as the client sent it (typed, with its wire bytes).
    let request: MCPMessage
    let channels: ChannelSet
    let clientVersion: ProtocolVersion
    let session: DownstreamSession?
    let accepts: Accepts
    /// Who asks (identity and request facts), for policy and rate limits.
    let caller: Caller
    /// True inside a JSON-RPC batch: the answer is collected, never streamed.
    var collectOnly = false

    /// Where the route step sent the request.
    var target: Target = .unrouted
    /// What the policy decision asks of the rest of the path.
    var obligations = Obligations()
    /// The request's SERVER span, when tracing is on and the trace is sampled.
    var span: Span?
    /// What the observer reads back when the request is done (filled by inner steps).
    let record: RequestRecord

    var id: JSONValue? { request.id }
    var typed: MCPRequest { request.request ?? .other(method: .other("")) }

    enum Target: Sendable {
        case unrouted
        /// One server, with the message as that server must see it (names resolved).
        case server(Int, MCPMessage)
        /// Every server's page of a list, merged (federation).
        case fanOutList(key: String)
        /// Every server (federation: `logging/setLevel`).
        case broadcast
    }

    /// The message bound for one server (its own names), or the client's for the others.
    var routedMessage: MCPMessage {
        if case .server(_, let message) = target { return message }
        return request
    }

    var serverIndex: Int? {
        if case .server(let index, _) = target { return index }
        return nil
    }

    struct Obligations: Sendable {
        var redaction = PolicyDecision.Redaction()
        /// Headers for the upstream HTTP request (`X-` names only).
        var upstreamHeaders: [(String, String)] = []
        /// Rate limit numbers the decision chose for this caller (by limit name).
        var rateLimitOverrides: [String: RateLimiter.Override] = [:]
    }
}

/// What the observer needs to know about a request that only inner steps learn: the server it
/// went to and when it went upstream. One per request; written before the answer, read after.
final class RequestRecord: Sendable {
    struct Facts: Sendable {
        var server: String?
        /// The index of the one server the request went to.
        var serverIndex: Int?
        /// Headers the policy decision adds to the client's answer (`X-` names only).
        var responseHeaders: [(String, String)] = []
        var started = ContinuousClock.now
        var upstreamStarted: ContinuousClock.Instant?
        var clientSpan: Span?
    }

    private let facts = Mutex(Facts())

    var current: Facts { facts.withLock { $0 } }

    func update(_ change: (inout Facts) -> Void) { facts.withLock { change(&$0) } }
}

/// The answer of a request as the steps produce it.
enum Outcome: Sendable {
    /// The final answer, finished (names mapped, lists filtered, redacted); bridged to the
    /// client's revision when it is written.
    case answer(JSONRPCMessage)
    /// What the upstream sends while it works, then its answer: relayed as it arrives.
    case stream(AnswerStream)
}

/// The Accept header, read once.
struct Accepts: Sendable {
    var json: Bool
    var sse: Bool

    init(_ header: String?) {
        guard let header, !header.isEmpty else {
            json = true
            sse = true
            return
        }
        let any = ASCII.contains(header, "*/*")
        json = any || ASCII.contains(header, "application/json") || ASCII.contains(header, "application/*")
        sse = any || ASCII.contains(header, "text/event-stream") || ASCII.contains(header, "text/*")
    }
}
