import MCPWire

/// Step 2: federation routing. Decides which server a request goes to, under that server's own
/// names (`Federation.route`), before policy sees it, so policy decides on what the request will
/// really reach. Unknown names, URIs and methods are refused here.
struct RouteStep: RequestStep {
    let federation: Federation

    nonisolated(nonsending) func handle(_ exchange: Exchange, next: nonisolated(nonsending) (Exchange) async throws(GatewayError) -> Outcome) async throws(GatewayError) -> Outcome {
        // The gateway runs each upstream's handshake itself; a client's initialize starts a session
        // at the endpoint and never reaches a server (it would renegotiate a shared session).
        // What gets here is one that cannot start a session: a 2026-07-28 one or one in a batch.
        if case .initialize = exchange.typed {
            if exchange.clientVersion.isStateless {
                throw .methodNotFound("initialize does not exist in 2026-07-28; send requests directly (server/discover describes the server)")
            }
            throw .invalidRequest("initialize cannot be part of a batch; send it alone, without Mcp-Session-Id")
        }
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
