import Hummingbird

/// A step of the MCP endpoint's HTTP level, once per HTTP request before any JSON-RPC message
/// is read: Hummingbird's middleware shape with the path's one error type.
protocol HTTPStep: Sendable {
    func handle(_ request: Request, context: GatewayRequestContext, next: HTTPPipeline.Next) async throws(GatewayError) -> Response
}

/// The HTTP level of the request path, in order:
///
/// 1. Host and Origin guards — before reading anything, so a DNS-rebinding page learns nothing.
/// 2. Authentication — before the body is read, so an anonymous caller costs nothing and learns
///    nothing; the identity it yields keys sessions, upstream channels, policy and rate limits.
/// 3. The match pipeline (policy phase one) — once per HTTP request, on identity and headers.
/// 4. The endpoint: POST (Accept, Content-Type and size checks, parse, decode, era dispatch,
///    then `RequestPipeline`), GET (a session's stream) or DELETE (end a session).
struct HTTPPipeline: Sendable {
    /// The rest of the path after a step (not stored: each request walks the list).
    typealias Next = (Request, GatewayRequestContext) async throws(GatewayError) -> Response

    let steps: [any HTTPStep]

    init(_ steps: [any HTTPStep]) {
        self.steps = steps
    }

    /// Runs the request through the steps from `index` on, then `endpoint`.
    func run(_ request: Request, _ context: GatewayRequestContext, from index: Int = 0, endpoint: Next) async throws(GatewayError) -> Response {
        guard index < steps.count else { return try await endpoint(request, context) }
        return try await steps[index].handle(request, context: context) { request, context throws(GatewayError) in
            try await run(request, context, from: index + 1, endpoint: endpoint)
        }
    }
}
