import GatehouseUpstream
import HTTPTypes
import Hummingbird
import MCPWire
import NIOCore

/// POST: the body read, parsed and decoded once, then the era chosen.
extension MCPEndpoint {
    /// Cheap refusals first (Accept, Content-Type, size), then parse with a nesting limit and
    /// decode into one typed message; its bytes go upstream as they came while only the id
    /// changes on the way.
    func post(_ request: Request, context: GatewayRequestContext) async throws(GatewayError) -> Response {
        let accepts = Accepts(request.headers.value(.accept))
        guard accepts.json || accepts.sse else {
            throw .notAcceptable("the Accept header must list application/json and text/event-stream")
        }
        // The body must say it is JSON: a missing or other media type (application/jsonx) is refused.
        guard let contentType = request.headers.value(.contentType), ASCII.isMediaType(contentType, "application/json") else {
            throw .unsupportedMediaType
        }
        let limit = config.limits.maxBodyBytes
        if let length = request.headers.value(.contentLength).flatMap({ Int($0) }), length > limit {
            throw .bodyTooLarge(limit: limit)
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch {
            throw .bodyTooLarge(limit: limit)
        }
        let document: JSONParser.Document
        do {
            document = try JSONParser.parseDocument(body.readableBytesView, maxDepth: config.limits.maxJSONDepth)
        } catch {
            switch error.kind {
            case .syntax: throw .parseError(error.description)
            case .tooDeep(let limit): throw .tooDeep(limit: limit)
            }
        }
        if case .array(let items) = document.value {
            return try await batch(items, request: request, context: context, accepts: accepts)
        }
        let rpc: JSONRPCMessage
        do {
            rpc = try JSONRPCMessage(document: document, bytes: body.readableBytesView)
        } catch {
            return GatewayError.invalidRequest(error.message).response(id: error.id)
        }
        let message: MCPMessage
        do {
            message = try Self.decode(rpc)
        } catch {
            return error.response(id: rpc.id)
        }
        return try await dispatch(message, request: request, context: context, accepts: accepts)
    }

    /// A validated envelope decoded as MCP; params a known method cannot use are answered with
    /// -32602 naming the request.
    static func decode(_ rpc: JSONRPCMessage) throws(GatewayError) -> MCPMessage {
        do {
            return try MCPMessage(rpc)
        } catch {
            throw .invalidParams(error.message)
        }
    }

    /// Era dispatch: `initialize` (without a 2026-07-28 version) starts a session; a 2026-07-28
    /// version in `_meta` or the header means stateless; anything else belongs to a session.
    private func dispatch(_ message: MCPMessage, request: Request, context: GatewayRequestContext, accepts: Accepts) async throws(GatewayError) -> Response {
        let versionHeader = request.headers.value(.mcpProtocolVersion)
        if let versionHeader, ProtocolVersion(versionHeader) == nil {
            return GatewayError.wire(.unsupportedVersion(versionHeader)).response(id: message.id)
        }
        let statelessRequest = StatelessRequestRules.metaVersion(of: message.rpc) != nil
            || (versionHeader.flatMap(ProtocolVersion.init)?.isStateless ?? false)
        do {
            if case .initialize? = message.request, !statelessRequest {
                return try await initialize(message, context: context)
            }
            if statelessRequest {
                // 2026-07-28 has no sessions: an Mcp-Session-Id header is ignored.
                return try await stateless(message, request: request, context: context, accepts: accepts)
            }
            guard let sessionID = request.headers.value(.mcpSessionID) else {
                throw GatewayError.badRequest("missing Mcp-Session-Id header; start a session with initialize (or send 2026-07-28 requests with _meta[\"\(MetaKey.protocolVersion)\"])")
            }
            guard SessionID.isWellFormed(sessionID), let session = sessions.get(sessionID) ?? resume(sessionID, context: context),
                session.identity.channelKey == context.identity.channelKey
            else {
                throw GatewayError.sessionNotFound
            }
            if let versionHeader, versionHeader != session.version.rawValue {
                throw GatewayError.badRequest("MCP-Protocol-Version '\(versionHeader)' does not match the session's negotiated version '\(session.version.rawValue)'")
            }
            return try await sessionMessage(message, session: session, context: context, accepts: accepts)
        } catch {
            // From here on the request's id is known: every refusal names it.
            let error = GatewayError(error)
            error.log(logger)
            return error.response(id: message.id)
        }
    }

    /// JSON-RPC batches: only revision 2025-03-26 allows them. Each request takes the same path
    /// as a single one, its answer collected.
    private func batch(_ items: [JSONValue], request: Request, context: GatewayRequestContext, accepts: Accepts) async throws(GatewayError) -> Response {
        var found: DownstreamSession?
        if let sessionID = request.headers.value(.mcpSessionID) {
            // The same checks as a single message's: an unknown session is 404 (initialize again).
            guard SessionID.isWellFormed(sessionID), let session = sessions.get(sessionID) ?? resume(sessionID, context: context),
                session.identity.channelKey == context.identity.channelKey
            else { throw .sessionNotFound }
            found = session
        }
        guard let session = found, session.version.allowsBatches else {
            let revision = found?.version.rawValue ?? request.headers.value(.mcpProtocolVersion) ?? "this session's revision"
            throw .invalidRequest("JSON-RPC batches are not allowed in \(revision); send one message per POST (batches exist only in 2025-03-26 sessions)")
        }
        if let versionHeader = request.headers.value(.mcpProtocolVersion), versionHeader != session.version.rawValue {
            throw .badRequest("MCP-Protocol-Version '\(versionHeader)' does not match the session's negotiated version '\(session.version.rawValue)'")
        }
        session.touch()
        guard !items.isEmpty else { throw .invalidRequest("empty batch") }
        var answers: [JSONRPCMessage] = []
        for item in items {
            // The client went away: the rest of the batch is not worth the upstreams' time.
            if Task.isCancelled { break }
            let rpc: JSONRPCMessage
            do {
                rpc = try JSONRPCMessage(validating: item)
            } catch {
                answers.append(GatewayError.invalidRequest(error.message).answer(id: error.id))
                continue
            }
            let message: MCPMessage
            do {
                message = try Self.decode(rpc)
            } catch {
                answers.append(error.answer(id: rpc.id))
                continue
            }
            switch message.body {
            case .request(.ping):
                answers.append(.response(id: message.id ?? .null, result: .object([:])))
            case .request:
                var exchange = sessionExchange(message, session: session, context: context, accepts: accepts)
                exchange.collectOnly = true
                answers.append(await collect(exchange))
            case .notification(let notification):
                if notification != .initialized {
                    for (_, channel) in session.channels.open { try? await channel.send(notification: message.rpc) }
                }
            case .response:
                if let (server, answer) = session.resolveInbound(message.rpc) {
                    try? await session.channels.channel(server).send(response: answer)
                }
            }
        }
        return answers.isEmpty ? HTTPResponses.accepted() : HTTPResponses.jsonArray(answers)
    }
}
