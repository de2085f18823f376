import Hummingbird

/// HTTP step 1: the Host and Origin guards (DNS rebinding, cross-site pages).
struct HostOriginStep: HTTPStep {
    let guards: RequestGuards

    nonisolated(nonsending) func admit(_ request: Request, context: inout GatewayRequestContext) async throws(GatewayError) -> Response? {
        if let refusal = guards.check(host: request.head.authority, origin: request.headers.value(.origin)) {
            throw .hostOrOrigin(refusal.message)
        }
        return nil
    }
}
