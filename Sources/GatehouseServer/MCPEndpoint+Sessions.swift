import GatehouseAuth
import GatehouseUpstream
import HTTPTypes
import Hummingbird
import MCPWire

/// The session era (2025-03-26 to 2025-11-25): `initialize`, sessions any replica can resume,
/// and the messages of a session.
extension MCPEndpoint {
    /// Whose sessions count together against `spec.sessions.maxPerCaller`: the identity, or the
    /// client's address when it is anonymous (every anonymous caller has the same identity).
    func sessionCaller(_ context: GatewayRequestContext) -> String {
        guard context.identity.kind == .anonymous else { return context.identity.channelKey }
        return "address:" + (context.peerAddress ?? "unknown")
    }

    func caller(_ context: GatewayRequestContext) -> Caller {
        context.caller ?? Caller(identity: context.identity, clientIP: context.peerAddress, headers: [:], endpoint: endpoint.path)
    }

    /// A session this replica does not hold: open its sealed id and resume its upstream sessions.
    func resume(_ sessionID: String, context: GatewayRequestContext) -> DownstreamSession? {
        let identity = context.identity
        guard !sessions.wasEnded(sessionID), let contents = sealer.open(sessionID), contents.identity == identity.channelKey else { return nil }
        let link = SessionLink()
        let channels = makeChannels(owner: ChannelOwner(identity: identity.channelKey, downstreamSession: SessionID.generate()), client: contents.client, link: link)
        let session = DownstreamSession(id: sessionID, version: contents.version, identity: identity, client: contents.client, channels: channels)
        bind(session, to: link)
        for (index, server) in servers.enumerated() {
            guard let upstreamID = contents.upstreamSessions[server.config.name],
                let channel = server.resume(sessionID: upstreamID, client: contents.client)
            else { continue }
            channels.adopt(channel, at: index)
        }
        guard case .inserted(let evicted) = sessions.insert(session, caller: sessionCaller(context)) else {
            Task { await channels.close() }
            return sessions.get(sessionID)
        }
        if let evicted { Task { await end(evicted) } }
        logger.info("session resumed from its id", metadata: ["protocol": "\(contents.version)"])
        return session
    }

    /// `initialize`: a new session, in its own SERVER span when tracing is on.
    func initialize(_ message: MCPMessage, context: GatewayRequestContext) async throws(GatewayError) -> Response {
        guard let tracer else { return try await startSession(message, context: context) }
        let version = message.rpc.params?["protocolVersion"]?.stringValue.flatMap(ProtocolVersion.init) ?? .latestSessionEra
        let span = ServerSpan.start(message, caller: caller(context), version: version, endpointPath: endpoint.path, tracer: tracer)
        defer { span?.end() }
        do {
            let response = try await startSession(message, context: context)
            if response.status.code >= 400 { span?.setErrorIfUnset(String(response.status.code)) }
            return response
        } catch {
            span?.setErrorIfUnset(error.errorType)
            throw error
        }
    }

    private func startSession(_ message: MCPMessage, context: GatewayRequestContext) async throws(GatewayError) -> Response {
        let identity = context.identity
        let params = message.rpc.params ?? [:]
        let version = params["protocolVersion"]?.stringValue.flatMap(ProtocolVersion.init).flatMap { $0.isStateless ? nil : $0 } ?? .latestSessionEra
        let client = ClientDescription(
            clientInfo: params["clientInfo"]?.objectValue ?? ["name": "unknown", "version": "0"],
            capabilities: params["capabilities"]?.objectValue ?? [:])
        guard sessions.count < sessions.maxSessions else { throw .tooManySessions }
        let link = SessionLink()
        let channels = makeChannels(owner: ChannelOwner(identity: identity.channelKey, downstreamSession: SessionID.generate()), client: client, link: link)
        let (opened, firstError) = await openAll(channels)
        guard opened > 0, let offer else {
            await channels.close()
            throw firstError.map(GatewayError.init) ?? .upstream(notReady)
        }
        var upstreamSessions: [String: String] = [:]
        for (index, channel) in channels.open {
            if let id = channel.upstreamSessionID { upstreamSessions[servers[index].config.name] = id }
        }
        let sessionID = sealer.seal(.init(version: version, identity: identity.channelKey, client: client, upstreamSessions: upstreamSessions))
        let session = DownstreamSession(id: sessionID, version: version, identity: identity, client: client, channels: channels)
        bind(session, to: link)
        switch sessions.insert(session, caller: sessionCaller(context)) {
        case .inserted(let evicted):
            if let evicted {
                logger.notice("ended a caller's longest idle session: it holds spec.sessions.maxPerCaller sessions", metadata: ["limit": "\(sessions.maxPerCaller)"])
                await end(evicted)
            }
        case .callerFull:
            await channels.close()
            throw .callerSessionsFull(limit: sessions.maxPerCaller)
        case .full, .duplicate:
            await channels.close()
            throw .tooManySessions
        }
        var result: JSONObject = [
            "protocolVersion": .string(version.rawValue),
            "capabilities": .object(offer.capabilities),
            "serverInfo": .object(Self.serverInfo),
        ]
        if let instructions = offer.instructions { result["instructions"] = .string(instructions) }
        logger.info("session started", metadata: ["protocol": "\(version)", "client": "\(client.clientInfo["name"]?.stringValue ?? "?")"])
        var headers = HTTPFields()
        headers[.mcpSessionID] = sessionID
        return HTTPResponses.json(.response(id: message.id ?? .null, result: .object(result)), headers: headers)
    }

    /// Opens every server's channel now, so each can reach the client's stream; a server that
    /// fails is retried on first use. The session needs at least one.
    private func openAll(_ channels: ChannelSet) async -> (opened: Int, firstError: (any Error)?) {
        var firstError: (any Error)?
        var opened = 0
        await withTaskGroup(of: (any Error)?.self) { group in
            for index in servers.indices {
                group.addTask {
                    do {
                        _ = try await channels.channel(index)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            for await error in group {
                if let error { firstError = firstError ?? error } else { opened += 1 }
            }
        }
        return (opened, firstError)
    }

    /// One message of a session: requests take the request path; notifications and answers to
    /// server requests go to the server they belong to.
    func sessionMessage(_ message: MCPMessage, session: DownstreamSession, context: GatewayRequestContext, accepts: Accepts) async throws(GatewayError) -> Response {
        switch message.body {
        case .request(.ping):
            return HTTPResponses.json(.response(id: message.id ?? .null, result: .object([:])))
        case .request:
            return await respond(sessionExchange(message, session: session, context: context, accepts: accepts))
        case .notification(let notification):
            session.touch()
            var targets = Array(session.channels.open)
            switch notification {
            case .initialized:
                targets = []  // Gatehouse ran each upstream handshake itself.
            case .cancelled(let requestID):
                let server = requestID.flatMap { session.server(handling: $0) }
                targets = targets.filter { $0.key == server }
            case .other:
                break
            }
            for (_, channel) in targets {
                do {
                    try await channel.send(notification: message.rpc)
                } catch {
                    logger.warning("could not forward a notification", metadata: ["method": "\(notification.method.name)", "error": "\(error)"])
                }
            }
            return HTTPResponses.accepted()
        case .response:
            session.touch()
            guard let (server, answer) = session.resolveInbound(message.rpc) else {
                logger.notice("dropping an answer to no pending server request", metadata: ["id": "\(message.id.map(JSONWriter.string) ?? "none")"])
                return HTTPResponses.accepted()
            }
            do {
                try await session.channels.channel(server).send(response: answer)
            } catch {
                logger.warning("could not forward a client's answer", metadata: ["error": "\(error)"])
            }
            return HTTPResponses.accepted()
        }
    }

    func sessionExchange(_ message: MCPMessage, session: DownstreamSession, context: GatewayRequestContext, accepts: Accepts) -> Exchange {
        Exchange(request: message, channels: session.channels, clientVersion: session.version, session: session, accepts: accepts,
                 caller: caller(context), record: RequestRecord())
    }
}
