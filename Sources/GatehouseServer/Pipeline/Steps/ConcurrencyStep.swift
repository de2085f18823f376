import GatehouseUpstream
import MCPWire

/// Step 6: the upstream's concurrency limit (`spec.maxConcurrentRequests`). A request over the
/// limit is refused at once, never queued behind slow calls; the slot is held until the answer
/// is complete (a stream's end), and released at the latest when the request is dropped.
struct ConcurrencyStep: RequestStep {
    let federation: Federation
    let metrics: Metrics

    nonisolated(nonsending) func handle(_ exchange: Exchange, next: nonisolated(nonsending) (Exchange) async throws(GatewayError) -> Outcome) async throws(GatewayError) -> Outcome {
        guard let index = exchange.serverIndex else { return try await next(exchange) }
        let server = federation.servers[index]
        guard server.acquireSlot() else {
            metrics.increment("gatehouse_rate_limited_total", ["concurrency:\(server.config.name)"])
            throw .upstreamBusy(upstream: server.config.name, limit: server.config.maxConcurrentRequests ?? 0)
        }
        let slot = UpstreamSlot(server)
        let outcome: Outcome
        do {
            outcome = try await next(exchange)
        } catch {
            slot.release()
            throw error
        }
        if case .stream(let stream) = outcome {
            stream.onEnd { _ in slot.release() }
        } else {
            slot.release()
        }
        return outcome
    }
}
