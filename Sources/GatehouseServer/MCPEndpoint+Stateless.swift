import GatehouseAuth
import GatehouseUpstream
import HTTPTypes
import Hummingbird
import Logging
import MCPWire
import NIOCore

/// 2026-07-28 (stateless): the header rules, `server/discover`, `subscriptions/listen`, and the
/// pooled upstream channels of each identity.
extension MCPEndpoint {
    /// What the endpoint offers: the union of its reachable servers' capabilities.
    struct Offer {
        var capabilities: JSONObject
        var instructions: String?
    }

    /// Nil until at least one server is reachable.
    var offer: Offer? {
        let infos = servers.compactMap { server in server.info.map { (server.config.name, $0) } }
        guard !infos.isEmpty else { return nil }
        let instructions: String?
        if servers.count == 1 {
            instructions = infos.first?.1.instructions
        } else {
            let parts = infos.compactMap { name, info in info.instructions.map { "[\(name)] \($0)" } }
            instructions = parts.isEmpty ? nil : parts.joined(separator: "\n\n")
        }
        return Offer(capabilities: CapabilityUnion.merge(infos.map(\.1.capabilities)), instructions: instructions)
    }

    var isReady: Bool { servers.contains { $0.isReady } }

    /// The error clients get while no server of the endpoint is reachable yet.
    var notReady: UpstreamError {
        if servers.count == 1 {
            return UpstreamError(upstream: servers[0].config.name, kind: .notReady, detail: servers[0].connectProblem)
        }
        return UpstreamError(upstream: servers.map(\.config.name).joined(separator: ", "), kind: .notReady,
                             detail: servers.map { "\($0.config.name): \($0.connectProblem)" }.joined(separator: "; "))
    }

    func stateless(_ message: MCPMessage, request: Request, context: GatewayRequestContext, accepts: Accepts) async throws(GatewayError) -> Response {
        do {
            _ = try StatelessRequestRules.check(message.rpc) { name in
                switch name {
                case MCPHeader.protocolVersion: request.headers.value(.mcpProtocolVersion)
                case MCPHeader.method: request.headers.value(.mcpMethod)
                case MCPHeader.name: request.headers.value(.mcpName)
                default: HTTPField.Name(name).flatMap { request.headers.value($0) }
                }
            }
        } catch {
            throw .wire(error)
        }
        let typed: MCPRequest
        switch message.body {
        case .notification: return HTTPResponses.accepted()
        case .response:
            throw .invalidRequest("2026-07-28 clients do not send responses; answer input requests by retrying the request with inputResponses")
        case .request(let request): typed = request
        }
        // The merged offer is built only where it is answered (not per routed request).
        guard isReady else { throw .upstream(notReady) }
        switch typed {
        case .discover:
            guard let offer else { throw .upstream(notReady) }
            var meta = JSONObject()
            meta[MetaKey.serverInfo] = .object(Self.serverInfo)
            var result: JSONObject = [
                "resultType": "complete",
                "supportedVersions": .array(ProtocolVersion.allRawValues),
                "capabilities": .object(offer.capabilities),
                "_meta": .object(meta),
                // Capabilities change with the upstream and with policy: do not share.
                "ttlMs": 0,
                "cacheScope": "private",
            ]
            if let instructions = offer.instructions { result["instructions"] = .string(instructions) }
            return HTTPResponses.json(.response(id: message.id ?? .null, result: .object(result)))
        case .ping:
            return HTTPResponses.json(.response(id: message.id ?? .null, result: ["resultType": "complete"]))
        case .listen:
            guard let offer else { throw .upstream(notReady) }
            return try await listen(message, identity: context.identity, offer: offer, accepts: accepts)
        default:
            let exchange = Exchange(request: message, channels: statelessChannels(for: context.identity), clientVersion: .v2026_07_28, session: nil,
                                    accepts: accepts, caller: caller(context), record: RequestRecord())
            return await respond(exchange)
        }
    }

    /// The pooled channels of a stateless identity; what servers send outside requests feeds
    /// the listen streams.
    func statelessChannels(for identity: Identity) -> ChannelSet {
        let owner = ChannelOwner(identity: identity.channelKey, downstreamSession: nil)
        return statelessChannels.channels(for: owner) { makeChannels(owner: owner, client: .gateway, link: nil) }
    }

    /// A channel set for one client, routing what servers send outside requests.
    func makeChannels(owner: ChannelOwner, client: ClientDescription, link: SessionLink?) -> ChannelSet {
        ChannelSet(servers: servers, owner: owner, client: client) { [hub, logger, federation] index, channel in
            let pins = federation.pins(of: index)
            let serverName = federation.servers[index].config.name
            channel.setUnsolicitedHandler { [weak channel] message in
                // A changed tool list: calls to this server wait for the gateway to list it again.
                if let pins, message.mcpMethod == .toolsListChanged { pins.invalidate(server: serverName) }
                if let link {
                    link.deliver(message, server: index) { federation.mapFromServer($0, server: $1, session: $2) }
                } else if message.kind == .request, let id = message.id {
                    // A 2026-07-28 client cannot be asked out of band (MRTR is not bridged yet).
                    logger.notice("refusing a server-to-client request for a stateless client", metadata: ["method": "\(message.method ?? "")"])
                    Task { try? await channel?.send(response: .error(id: id, code: JSONRPCErrorCode.methodNotFound, message: "the client is a 2026-07-28 client and cannot answer \(message.method ?? "this request") out of band")) }
                } else {
                    hub.publish(federation.mapFromServer(message, server: index, session: nil))
                }
            }
        }
    }

    /// Binds a new session to its channels' link (what arrived before goes to it now).
    func bind(_ session: DownstreamSession, to link: SessionLink) {
        link.bind(session) { federation.mapFromServer($0, server: $1, session: $2) }
    }

    private func listen(_ message: MCPMessage, identity: Identity, offer: Offer, accepts: Accepts) async throws(GatewayError) -> Response {
        guard accepts.sse else { throw .notAcceptable("subscriptions/listen answers with an SSE stream; accept text/event-stream") }
        let requested = NotificationHub.Filter(message.rpc.params?["notifications"]?.objectValue)
        let filter = requested.honoured(by: offer.capabilities)
        // Open the identity's channels to every session-era server, so their streams feed the
        // hub, and subscribe upstream to the resources asked for.
        let channels = statelessChannels(for: identity)
        for index in servers.indices where servers[index].info.map({ !$0.version.isStateless }) ?? false {
            _ = try? await channels.channel(index)
        }
        for uri in filter.resourceSubscriptions {
            guard let owner = names.resolveURI(uri), let channel = try? await channels.channel(owner.server) else { continue }
            let subscribe = JSONRPCMessage.request(id: "listen-subscribe", method: MCPMethod.resourcesSubscribe.name, params: ["uri": .string(owner.uri)])
            do {
                for try await _ in channel.send(request: subscribe) {}
            } catch {
                logger.warning("could not subscribe upstream", metadata: ["uri": "\(uri)", "error": "\(error)"])
            }
        }
        let subscriptionID = message.id ?? .null
        let frames = hub.add(filter, subscriptionID: subscriptionID, keepAlive: keepAlive)
        let ack = NotificationHub.tag(
            .notification(method: MCPMethod.subscriptionsAcknowledged.name, params: ["notifications": .object(filter.json)]),
            subscriptionID: subscriptionID)
        let closing = NotificationHub.tag(.response(id: subscriptionID, result: ["resultType": "complete"]), subscriptionID: subscriptionID)
        return HTTPResponses.sse { writer in
            try await writer.writeSSE(ack)
            for await frame in frames {
                try await writer.write(ByteBuffer(bytes: frame))
            }
            // The gateway ended the subscription (shutdown): say so with a completion result.
            try await writer.writeSSE(closing)
            try await writer.finish(nil)
        }
    }
}
