import GatehouseUpstream
import MCPWire
import Synchronization

/// An upstream's events for one request: what it sends while it works, then its answer,
/// finished for the client (`finish`). Read by one task at a time (first the step that got it,
/// then the response body writer); dropping it before the answer cancels the upstream request.
///
/// Whoever needs to act when the request is over (release a concurrency slot, end spans, count
/// the request) adds a hook; the hooks run once, in the order added, when the answer has been
/// read, the stream failed, or the stream was dropped.
final class AnswerStream: @unchecked Sendable {
    enum Item {
        /// A notification or a server-to-client request: as the upstream sent it, and as the
        /// client may see it (mapped and redacted; nil when it must not reach the client).
        case message(JSONRPCMessage, relayed: JSONRPCMessage?)
        /// The final answer, finished.
        case answer(JSONRPCMessage)
    }

    /// How a request's stream ended, for the hooks.
    enum End: Sendable {
        case answered(JSONRPCMessage)
        case failed(GatewayError)
        /// The client went away before the answer.
        case abandoned
    }

    typealias Hook = @Sendable (End) -> Void

    /// The channel the request went on (to refuse server-to-client requests on it).
    let channel: any UpstreamChannel
    let upstreamName: String
    private var pending: UpstreamEvent?
    private let events: UpstreamEvents
    private let finish: @Sendable (JSONRPCMessage) async -> JSONRPCMessage
    private let relay: @Sendable (JSONRPCMessage) -> JSONRPCMessage?
    private let hooks = Mutex<[Hook]?>([])

    init(first: UpstreamEvent, events: UpstreamEvents, channel: any UpstreamChannel, upstreamName: String,
         relay: @escaping @Sendable (JSONRPCMessage) -> JSONRPCMessage?,
         finish: @escaping @Sendable (JSONRPCMessage) async -> JSONRPCMessage) {
        self.relay = relay
        self.upstreamName = upstreamName
        self.pending = first
        self.events = events
        self.channel = channel
        self.finish = finish
    }

    /// The next item; nil when the upstream ended without an answer (reported as a failure).
    func next() async throws(GatewayError) -> Item? {
        let event: UpstreamEvent?
        if let pending {
            event = pending
            self.pending = nil
        } else {
            do {
                event = try await events.next()
            } catch {
                let failure = GatewayError(error)
                complete(.failed(failure))
                throw failure
            }
        }
        switch event {
        case .message(let message):
            return .message(message, relayed: relay(message))
        case .response(let response):
            let answer = await finish(response)
            complete(.answered(answer))
            return .answer(answer)
        case nil:
            complete(.failed(.upstream(UpstreamError(upstream: upstreamName, kind: .protocolViolation, detail: "no answer"))))
            return nil
        }
    }

    /// Runs `hook` once the request is over (at once when it already is).
    func onEnd(_ hook: @escaping Hook) {
        let added = hooks.withLock { hooks -> Bool in
            guard hooks != nil else { return false }
            hooks?.append(hook)
            return true
        }
        if !added { hook(.abandoned) }
    }

    /// Ends the request: runs the hooks once.
    func complete(_ end: End) {
        let due = hooks.withLock { hooks -> [Hook] in
            defer { hooks = nil }
            return hooks ?? []
        }
        for hook in due { hook(end) }
    }

    deinit { complete(.abandoned) }
}
