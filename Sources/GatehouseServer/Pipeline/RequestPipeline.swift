import MCPWire

/// One step of the MCP request path: it does its one job, then calls `next` to go on, or
/// answers (an `Outcome`) or refuses (a `GatewayError`) itself. The shape of Hummingbird's
/// `MiddlewareProtocol`, on the typed request instead of the HTTP one.
protocol RequestStep: Sendable {
    nonisolated(nonsending) func handle(_ exchange: Exchange, next: nonisolated(nonsending) (Exchange) async throws(GatewayError) -> Outcome) async throws(GatewayError) -> Outcome
}

/// The steps a JSON-RPC request takes once the endpoint has accepted the HTTP request, decoded
/// the message and chosen its era (docs/architecture.md "The request path"):
///
/// 1. Observe — outermost, so no way out goes uncounted: the SERVER span, the request metrics
///    and durations, recorded once when the answer is complete (at once, or at a stream's end).
/// 2. Route — federation: which server, under the server's own names; lists fan out. Before
///    policy, so policy decides on the server and names the request will really reach.
/// 3. Pins — a tool whose definition is not approved is refused (servers with
///    `spec.toolPinning.mode: enforce`). Before policy, so policy sees only approved tools.
/// 4. Authorize — the Rego decision on the typed request (deny, hide, redact, headers, rate
///    numbers). Before rate limits, so a denied request uses up no tokens.
/// 5. Rate limit — the configured buckets, with the decision's numbers.
/// 6. Concurrency — the upstream's slot (`maxConcurrentRequests`), refused at once, never queued;
///    held until the answer is complete.
/// 7. Relay — the channel, the circuit breaker and retries, trace propagation, then the
///    upstream's answer finished for the client (names, list filtering, redaction).
///
/// Before these, once per HTTP request (MCPEndpoint.handle): Host/Origin guards,
/// authentication, the match pipeline, Accept/Content-Type/size checks, parse and decode, era
/// dispatch; after them, the answer written as JSON or SSE in the client's revision.
struct RequestPipeline: Sendable {
    private typealias Chain = @Sendable (Exchange) async throws(GatewayError) -> Outcome

    /// The steps composed once, when the endpoint is built: a request costs one call per step.
    private let chain: Chain

    init(_ steps: [any RequestStep]) {
        var next: Chain = { _ throws(GatewayError) in throw GatewayError.internal }  // the last step answers
        for step in steps.reversed() {
            let inner = next
            next = { exchange throws(GatewayError) in try await step.handle(exchange, next: inner) }
        }
        chain = next
    }

    nonisolated(nonsending) func run(_ exchange: Exchange) async throws(GatewayError) -> Outcome {
        try await chain(exchange)
    }

    /// The path of an endpoint, in order. A step whose feature the endpoint does not use (no
    /// policy, no rate limits, no concurrency limits) is left out rather than run to do nothing.
    static func steps(observe: ObserveStep, route: RouteStep, pins: PinStep?, authorize: PolicyStep?, rateLimit: RateLimitStep?,
                      concurrency: ConcurrencyStep?, relay: RelayStep) -> [any RequestStep] {
        var steps: [any RequestStep] = [observe, route]
        if let pins { steps.append(pins) }
        if let authorize { steps.append(authorize) }
        if let rateLimit { steps.append(rateLimit) }
        if let concurrency { steps.append(concurrency) }
        steps.append(relay)
        return steps
    }
}
