import Hummingbird
import Logging

/// HTTP step 3: policy phase one, the match pipeline (`spec.policy.pipeline`), once per HTTP
/// request, before the body is read.
struct MatchPipelineStep: HTTPStep {
    let policy: GatewayPolicy?
    let logger: Logger

    nonisolated(nonsending) func admit(_ request: Request, context: inout GatewayRequestContext) async throws(GatewayError) -> Response? {
        if let policy, let caller = context.caller, !policy.checkPipeline(caller) {
            logger.notice("refused by the match pipeline", metadata: ["client_ip": "\(caller.clientIP ?? "?")"])
            throw .pipelineDenied
        }
        return nil
    }
}
