import MCPWire

/// Step 2: federation routing. Decides which server a request goes to, under that server's own
/// names (`Federation.route`), before policy sees it, so policy decides on what the request will
/// really reach. Unknown names, URIs and methods are refused here.
struct RouteStep: RequestStep {
    let federation: Federation

    nonisolated(nonsending) func handle(_ exchange: Exchange, next: nonisolated(nonsending) (Exchange) async throws(GatewayError) -> Outcome) async throws(GatewayError) -> Outcome {
        // The gateway runs each upstream's handshake itself; a client's initialize is answered by
        // the endpoint and never reaches a server (it would renegotiate a shared session).
        if case .initialize = exchange.typed { throw .invalidRequest("initialize is answered by the gateway, not forwarded") }
        var exchange = exchange
        exchange.target = try await federation.route(exchange.request, channels: exchange.channels)
        let server: String? = switch exchange.target {
        case .server(let index, _): federation.servers[index].config.name
        case .fanOutList: "*"
        case .broadcast, .unrouted: nil
        }
        let index = exchange.serverIndex
        exchange.record.update {
            $0.server = server
            $0.serverIndex = index
        }
        return try await next(exchange)
    }
}
