import Hummingbird

/// A step of the MCP endpoint's HTTP level, once per HTTP request before any JSON-RPC message
/// is read. These steps only admit (or answer) and enrich the typed request context; none
/// needs to act after the answer, so each is one call in a loop rather than a wrapper around
/// the rest (the request steps, which do wrap, are `RequestStep`s).
protocol HTTPStep: Sendable {
    /// Nil to go on (with `context` updated), or the answer that ends the request here; a
    /// refusal of the path's own kinds is thrown.
    nonisolated(nonsending) func admit(_ request: Request, context: inout GatewayRequestContext) async throws(GatewayError) -> Response?
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
    let steps: [any HTTPStep]

    init(_ steps: [any HTTPStep]) {
        self.steps = steps
    }

    /// Runs the steps in order; the first answer ends the request, else the context they built.
    nonisolated(nonsending) func admit(_ request: Request, context: inout GatewayRequestContext) async throws(GatewayError) -> Response? {
        for step in steps {
            if let answer = try await step.admit(request, context: &context) { return answer }
        }
        return nil
    }
}
