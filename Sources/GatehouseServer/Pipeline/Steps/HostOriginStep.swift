import Hummingbird

/// HTTP step 1: the Host and Origin guards (DNS rebinding, cross-site pages).
struct HostOriginStep: HTTPStep {
    let guards: RequestGuards

    func handle(_ request: Request, context: GatewayRequestContext, next: HTTPPipeline.Next) async throws(GatewayError) -> Response {
        if let refusal = guards.check(host: request.head.authority, origin: request.headers.value(.origin)) {
            throw .hostOrOrigin(refusal.message)
        }
        return try await next(request, context)
    }
}
