import MCPWire

/// Step 5: rate limits (`spec.rateLimits`), with the numbers the policy decision chose. After
/// policy, so denied requests use up no tokens; a limited request never reaches the upstream.
struct RateLimitStep: RequestStep {
    let rateLimiter: RateLimiter?
    let federation: Federation
    let metrics: Metrics

    nonisolated(nonsending) func handle(_ exchange: Exchange, next: nonisolated(nonsending) (Exchange) async throws(GatewayError) -> Outcome) async throws(GatewayError) -> Outcome {
        guard let rateLimiter else { return try await next(exchange) }
        let server = exchange.serverIndex.map { federation.servers[$0].config.name }
        let subject = RateLimiter.Subject(identity: exchange.caller.identity.channelKey, client: exchange.caller.identity.clientID,
                                          server: server, tool: exchange.routedMessage.request?.toolName, method: exchange.typed.method.name,
                                          overrides: exchange.obligations.rateLimitOverrides)
        if let refusal = await rateLimiter.take(subject) {
            metrics.increment("gatehouse_rate_limited_total", [refusal.limit])
            throw .rateLimited(limit: refusal.limit, retryAfterSeconds: max(1, Int(refusal.retryAfter.rounded(.up))))
        }
        return try await next(exchange)
    }
}
