import MCPWire

/// One step of the MCP request path: it does its one job, then calls `next` to go on, or
/// answers (an `Outcome`) or refuses (a `GatewayError`) itself. The shape of Hummingbird's
/// `MiddlewareProtocol`, on the typed request instead of the HTTP one.
protocol RequestStep: Sendable {
    func handle(_ exchange: Exchange, next: RequestPipeline.Next) async throws(GatewayError) -> Outcome
}

/// The steps a JSON-RPC request takes once the endpoint has accepted the HTTP request, decoded
/// the message and chosen its era (docs/architecture.md "The request path"):
///
/// 1. Observe — outermost, so no way out goes uncounted: the SERVER span, the request metrics
///    and durations, recorded once when the answer is complete (at once, or at a stream's end).
/// 2. Route — federation: which server, under the server's own names; lists fan out. Before
///    policy, so policy decides on the server and names the request will really reach.
/// 3. Authorize — the Rego decision on the typed request (deny, hide, redact, headers, rate
///    numbers). Before rate limits, so a denied request uses up no tokens.
/// 4. Rate limit — the configured buckets, with the decision's numbers.
/// 5. Concurrency — the upstream's slot (`maxConcurrentRequests`), refused at once, never queued;
///    held until the answer is complete.
/// 6. Relay — the channel, the circuit breaker and retries, trace propagation, then the
///    upstream's answer finished for the client (names, list filtering, redaction).
///
/// Before these, once per HTTP request (MCPEndpoint.handle): Host/Origin guards,
/// authentication, the match pipeline, Accept/Content-Type/size checks, parse and decode, era
/// dispatch; after them, the answer written as JSON or SSE in the client's revision.
struct RequestPipeline: Sendable {
    /// The rest of the path after a step (not stored: each request walks the list).
    typealias Next = (Exchange) async throws(GatewayError) -> Outcome

    let steps: [any RequestStep]

    init(_ steps: [any RequestStep]) {
        self.steps = steps
    }

    /// Runs the request through the steps from `index` on; the last step answers.
    func run(_ exchange: Exchange, from index: Int = 0) async throws(GatewayError) -> Outcome {
        guard index < steps.count else { throw .internal }
        return try await steps[index].handle(exchange) { exchange throws(GatewayError) in try await run(exchange, from: index + 1) }
    }

    /// The path of an endpoint, in order.
    static func steps(observe: ObserveStep, route: RouteStep, authorize: PolicyStep, rateLimit: RateLimitStep,
                      concurrency: ConcurrencyStep, relay: RelayStep) -> [any RequestStep] {
        [observe, route, authorize, rateLimit, concurrency, relay]
    }
}
