import GatehouseConfig
import MCPWire

/// Step 3 (servers that pin their tools in enforce mode): a call reaches the server only for a
/// tool whose current definition is approved (docs/security.md "Tool pinning"); a prompt the
/// scanner left out of a list is refused by name too. After routing,
/// so it checks the server's own tool name; before policy, so a held tool is refused the same
/// way whatever the policy says, and policy sees the pin status of what it allows.
///
/// The gateway knows a definition from a list. A call to a tool it has not seen listed, or
/// made after the server announced `notifications/tools/list_changed`, waits for a listing of
/// that server first (one at a time per server, shared by concurrent calls).
struct PinStep: RequestStep {
    let pins: ToolPins
    let federation: Federation
    /// `deniedTools: error` (policy): a held tool is refused with a clear -32001 instead of
    /// answering like an unknown tool.
    let explainHolds: Bool

    nonisolated(nonsending) func handle(_ exchange: Exchange, next: nonisolated(nonsending) (Exchange) async throws(GatewayError) -> Outcome) async throws(GatewayError) -> Outcome {
        guard case .server(let index, _) = exchange.target, federation.servers[index].config.toolPinning.mode == .enforce else {
            return try await next(exchange)
        }
        let server = federation.servers[index].config
        if case .promptsGet(let prompt, _)? = exchange.routedMessage.request, pins.isBlockedPrompt(server: server.name, name: prompt) {
            throw .unknownTarget(kind: "prompt", name: exchange.typed.targetName ?? prompt, hidden: true)
        }
        guard case .toolsCall(let name, _)? = exchange.routedMessage.request else { return try await next(exchange) }
        // A 2026-07-28 server's list_changed does not reach the gateway: its listing ages instead.
        let stateless = federation.servers[index].info?.version.isStateless ?? false
        if pins.needsListing(server: server.name, tool: name, maxAge: stateless ? ToolPins.statelessListingAge : nil) {
            await pins.refresh(server: index, federation: federation, channels: exchange.channels)
        }
        let exposed = exchange.typed.targetName ?? name
        guard let verdict = pins.verdict(server: server, tool: name) else {
            throw .unknownTarget(kind: "tool", name: exposed, hidden: false)
        }
        guard verdict.visible else {
            throw explainHolds ? .toolHeld(name: exposed, status: verdict.status.rawValue) : .unknownTarget(kind: "tool", name: exposed, hidden: true)
        }
        return try await next(exchange)
    }
}
