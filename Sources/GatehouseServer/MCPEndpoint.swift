import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseUpstream
import HTTPTypes
import Hummingbird
import Logging
import MCPWire
import NIOCore

/// The MCP endpoint: Streamable HTTP for every revision from 2025-03-26 to 2026-07-28.
///
/// The request pipeline, in order (each step stands where it does for a reason):
/// 1. Host and Origin guards — before reading anything, so a rebinding page learns nothing.
/// 2. Accept / Content-Type / size limit — cheap refusals before the body is parsed.
/// 3. Parse (with a nesting limit) and envelope validation — spec-shaped errors for bad input.
/// 4. Era selection — `initialize` or `Mcp-Session-Id` means the session era; `_meta` protocol
///    version means 2026-07-28, whose header rules are checked here.
/// 5. Authentication (AuthGate): before the body is read, so an anonymous caller costs nothing
///    and learns nothing; the identity it yields keys sessions and upstream channels.
/// 6. (later) policy → rate limits, on the typed request.
/// 7. Route to the upstream channel and relay what comes back as it arrives.
final class MCPEndpoint: Sendable {
    let config: GatewayConfig
    let endpoint: GatewayConfig.Endpoint
    /// The servers this endpoint federates, in merge order.
    let servers: [UpstreamServer]
    let names: FederationNames
    /// Tool names this endpoint has listed, for metric labels.
    let knownTools = KnownToolNames()
    let sessions: SessionStore
    let hub: NotificationHub
    let guards: RequestGuards
    let statelessChannels: StatelessChannels
    let sealer: SessionSealer
    let logger: Logger
    let keepAlive: Duration
    let authGate: AuthGate
    let policy: GatewayPolicy?
    let metrics: Metrics
    let rateLimiter: RateLimiter?
    let tracer: Tracer?

    init(config: GatewayConfig, endpoint: GatewayConfig.Endpoint, servers: [UpstreamServer], sealer: SessionSealer, logger: Logger,
         authenticator: Authenticator? = nil, policy: GatewayPolicy? = nil, metrics: Metrics = Metrics(), rateLimiter: RateLimiter? = nil,
         tracer: Tracer? = nil, keepAlive: Duration = .seconds(15), carrying previous: MCPEndpoint? = nil)
    {
        self.tracer = tracer
        self.config = config
        self.policy = policy
        self.metrics = metrics
        self.rateLimiter = rateLimiter.flatMap { $0.isEmpty ? nil : $0 }
        let resource = config.resourceURL(for: endpoint)
        self.authGate = AuthGate(mode: endpoint.auth.mode, scopes: endpoint.auth.scopes, resource: resource,
                                 metadataURL: config.publicBaseURL + "/.well-known/oauth-protected-resource" + endpoint.path,
                                 authenticator: authenticator, logger: logger, metrics: metrics, endpointPath: endpoint.path)
        self.sealer = sealer
        self.endpoint = endpoint
        self.servers = servers
        self.names = FederationNames(servers: servers.map(\.config.name), naming: endpoint.naming, prefix: endpoint.prefix)
        // After a reload, an endpoint whose servers are the very same objects keeps the sessions,
        // listen streams and pooled channels of the one it replaces.
        if let previous, previous.canCarry(to: servers, naming: endpoint.naming, prefix: endpoint.prefix) {
            self.sessions = previous.sessions
            self.hub = previous.hub
            self.statelessChannels = previous.statelessChannels
        } else {
            self.sessions = SessionStore(maxSessions: config.sessions.maxSessions, maxPerCaller: config.sessions.maxPerCaller)
            self.hub = NotificationHub()
            self.statelessChannels = StatelessChannels()
        }
        // An ended session stays unresumable here at least as long as an idle one would live.
        self.sessions.endedMemory = .seconds(max(3600, config.sessions.idleTimeoutSeconds))
        self.guards = RequestGuards(security: config.security)
        self.logger = logger
        self.keepAlive = keepAlive
    }

    /// True when a replacement endpoint with these servers can take over this one's sessions.
    func canCarry(to servers: [UpstreamServer], naming: GatewayConfig.Naming, prefix: GatewayConfig.Naming.Prefix) -> Bool {
        servers.count == self.servers.count && zip(servers, self.servers).allSatisfy { $0 === $1 }
            && naming == endpoint.naming && prefix == endpoint.prefix
    }

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

    /// A channel set for one client, routing what servers send outside requests.
    func makeChannels(owner: ChannelOwner, client: ClientDescription, session: DownstreamSession?) -> ChannelSet {
        let sessionRef = WeakSession(session)
        let isSession = session != nil
        return ChannelSet(servers: servers, owner: owner, client: client) { [hub, logger, self] index, channel in
            channel.setUnsolicitedHandler { [weak channel] message in
                if isSession {
                    guard let session = sessionRef.session else { return }
                    session.deliver(self.mapFromServer(message, server: index, session: session))
                } else if message.kind == .request, let id = message.id {
                    // A 2026-07-28 client cannot be asked out of band (MRTR is not bridged yet).
                    logger.notice("refusing a server-to-client request for a stateless client", metadata: ["method": "\(message.method ?? "")"])
                    Task { try? await channel?.send(response: .error(id: id, code: JSONRPCErrorCode.methodNotFound, message: "the client is a 2026-07-28 client and cannot answer \(message.method ?? "this request") out of band")) }
                } else {
                    hub.publish(self.mapFromServer(message, server: index, session: nil))
                }
            }
        }
    }

    static let serverInfo: JSONObject = ["name": "gatehouse", "version": .string(GatehouseVersion.current)]

    func handle(_ request: Request, context: GatewayRequestContext) async -> Response {
        let id = RequestID.accept(request.headers.value(.xRequestID))
        var response = await RequestID.$current.withValue(id) { await handleRequest(request, context: context) }
        response.headers[.xRequestID] = id
        metrics.increment("gatehouse_http_requests_total", [endpoint.path, MetricLabels.httpMethod(request.method.rawValue), String(response.status.code)])
        return response
    }

    private func handleRequest(_ request: Request, context: GatewayRequestContext) async -> Response {
        if let refusal = guards.check(host: request.head.authority, origin: request.headers.value(.origin)) {
            logger.notice("refused request", metadata: ["reason": "\(refusal.message)"])
            return HTTPResponses.error(status: .forbidden, id: nil, code: JSONRPCErrorCode.invalidRequest, message: refusal.message)
        }
        var context = context
        let authStarted = tracer == nil ? 0 : Tracer.nowUnixNanos()
        let certificate = config.listen.tls?.clientCAFile == nil ? nil : await ClientCertificate.of(context.channel)
        switch await authGate.check(request, certificate: certificate) {
        case .refused(let response): return response
        case .allowed(let identity): context.identity = identity
        }
        var caller = makeCaller(request, context: context)
        if tracer != nil {
            caller.trace = TraceFacts(traceparent: request.headers.value(.traceparent), tracestate: request.headers.value(.tracestate),
                                      authStarted: authStarted, authEnded: Tracer.nowUnixNanos())
        }
        context.caller = caller
        // Phase one of policy: the match pipeline, once per HTTP request, before the body.
        if let policy, !policy.checkPipeline(caller) {
            logger.notice("refused by the match pipeline", metadata: ["client_ip": "\(caller.clientIP ?? "?")"])
            var data = JSONObject()
            data["gatehouse"] = ["reason": "policy_denied"]
            return HTTPResponses.error(status: .forbidden, id: .null, code: JSONRPCErrorCode.policyDenied,
                                       message: "Forbidden: the gateway's access rules do not allow this request", data: .object(data))
        }
        switch request.method {
        case .post: return await post(request, context: context)
        case .get: return await get(request, context: context)
        case .delete: return await delete(request, context: context)
        default:
            var headers = HTTPFields()
            headers[.allow] = "GET, POST, DELETE"
            return HTTPResponses.error(status: .methodNotAllowed, id: nil, code: JSONRPCErrorCode.invalidRequest,
                                       message: "method \(request.method) is not allowed on the MCP endpoint; use POST (GET and DELETE for sessions)", headers: headers)
        }
    }

    // MARK: POST

    struct Accepts {
        var json: Bool
        var sse: Bool

        init(_ header: String?) {
            guard let header, !header.isEmpty else {
                json = true
                sse = true
                return
            }
            let any = ASCII.contains(header, "*/*")
            json = any || ASCII.contains(header, "application/json") || ASCII.contains(header, "application/*")
            sse = any || ASCII.contains(header, "text/event-stream") || ASCII.contains(header, "text/*")
        }
    }

    func post(_ request: Request, context: GatewayRequestContext) async -> Response {
        let accepts = Accepts(request.headers.value(.accept))
        guard accepts.json || accepts.sse else {
            return HTTPResponses.error(status: .notAcceptable, id: nil, code: JSONRPCErrorCode.invalidRequest,
                                       message: "Not Acceptable: the Accept header must list application/json and text/event-stream")
        }
        // The body must say it is JSON: a missing or other media type (application/jsonx) is refused.
        guard let contentType = request.headers.value(.contentType), ASCII.isMediaType(contentType, "application/json") else {
            return HTTPResponses.error(status: .unsupportedMediaType, id: nil, code: JSONRPCErrorCode.invalidRequest,
                                       message: "Unsupported Media Type: send the JSON-RPC message with Content-Type: application/json")
        }
        let limit = config.limits.maxBodyBytes
        if let length = request.headers.value(.contentLength).flatMap({ Int($0) }), length > limit {
            return tooLarge(limit)
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch {
            return tooLarge(limit)
        }
        let document: JSONParser.Document
        do {
            document = try JSONParser.parseDocument(body.readableBytesView, maxDepth: config.limits.maxJSONDepth)
        } catch {
            switch error.kind {
            case .syntax:
                return HTTPResponses.error(status: .badRequest, id: nil, code: JSONRPCErrorCode.parseError,
                                           message: "Parse error: \(error.description); send one JSON-RPC message as UTF-8 JSON")
            case .tooDeep(let limit):
                return HTTPResponses.error(status: .badRequest, id: nil, code: JSONRPCErrorCode.invalidRequest,
                                           message: "Invalid Request: the JSON nests deeper than \(limit) levels (spec.limits.maxJSONDepth)")
            }
        }
        if case .array(let items) = document.value {
            return await batch(items, request: request, context: context, accepts: accepts)
        }
        let message: JSONRPCMessage
        do {
            // The body's bytes go upstream as they came while only the id changes on the way.
            message = try JSONRPCMessage(document: document, bytes: body.readableBytesView)
        } catch {
            return HTTPResponses.error(status: .badRequest, id: error.id, code: JSONRPCErrorCode.invalidRequest, message: "Invalid Request: \(error.message)")
        }
        return await dispatch(message, request: request, context: context, accepts: accepts)
    }

    private func tooLarge(_ limit: Int) -> Response {
        HTTPResponses.error(status: .contentTooLarge, id: nil, code: JSONRPCErrorCode.invalidRequest,
                            message: "Payload Too Large: the body exceeds \(limit) bytes (spec.limits.maxBodyBytes)")
    }

    private func dispatch(_ message: JSONRPCMessage, request: Request, context: GatewayRequestContext, accepts: Accepts) async -> Response {
        let versionHeader = request.headers.value(.mcpProtocolVersion)
        if let versionHeader, ProtocolVersion(versionHeader) == nil {
            return HTTPResponses.rejection(.unsupportedVersion(versionHeader), id: message.id)
        }
        let statelessRequest = StatelessRequestRules.metaVersion(of: message) != nil
            || (versionHeader.flatMap(ProtocolVersion.init)?.isStateless ?? false)
        if message.method == "initialize", message.isRequest, !statelessRequest {
            guard let tracer else { return await initialize(message, identity: context.identity, callerKey: sessionCaller(context)) }
            let version = message.params?["protocolVersion"]?.stringValue.flatMap(ProtocolVersion.init) ?? .latestSessionEra
            let span = startServerSpan(message, caller: caller(context), version: version, tracer: tracer)
            let response = await initialize(message, identity: context.identity, callerKey: sessionCaller(context))
            if response.status.code >= 400 { span?.setErrorIfUnset(String(response.status.code)) }
            span?.end()
            return response
        }
        if statelessRequest {
            // 2026-07-28 has no sessions: an Mcp-Session-Id header is ignored.
            return await stateless(message, request: request, context: context, accepts: accepts)
        }
        guard let sessionID = request.headers.value(.mcpSessionID) else {
            return HTTPResponses.error(status: .badRequest, id: message.id, code: JSONRPCErrorCode.invalidRequest,
                                       message: "Bad Request: missing Mcp-Session-Id header; start a session with initialize (or send 2026-07-28 requests with _meta[\"\(MetaKey.protocolVersion)\"])")
        }
        guard SessionID.isWellFormed(sessionID), let session = sessions.get(sessionID) ?? resume(sessionID, identity: context.identity, callerKey: sessionCaller(context)),
            session.identity.channelKey == context.identity.channelKey
        else {
            return sessionNotFound(message.id)
        }
        if let versionHeader, versionHeader != session.version.rawValue {
            return HTTPResponses.error(status: .badRequest, id: message.id, code: JSONRPCErrorCode.invalidRequest,
                                       message: "Bad Request: MCP-Protocol-Version '\(versionHeader)' does not match the session's negotiated version '\(session.version.rawValue)'")
        }
        return await sessionMessage(message, session: session, caller: caller(context), accepts: accepts)
    }

    /// A session this replica does not hold: open its sealed id and resume its upstream sessions.
    private func resume(_ sessionID: String, identity: Identity, callerKey: String) -> DownstreamSession? {
        guard !sessions.wasEnded(sessionID), let contents = sealer.open(sessionID), contents.identity == identity.channelKey else { return nil }
        let session = DownstreamSession(id: sessionID, version: contents.version, identity: identity, client: contents.client)
        let channels = makeChannels(owner: ChannelOwner(identity: identity.channelKey, downstreamSession: SessionID.generate()), client: contents.client, session: session)
        session.attach(channels)
        for (index, server) in servers.enumerated() {
            guard let upstreamID = contents.upstreamSessions[server.config.name],
                let channel = server.resume(sessionID: upstreamID, client: contents.client)
            else { continue }
            channels.adopt(channel, at: index)
        }
        guard case .inserted(let evicted) = sessions.insert(session, caller: callerKey) else {
            Task { await channels.close() }
            return sessions.get(sessionID)
        }
        if let evicted { Task { await end(evicted) } }
        logger.info("session resumed from its id", metadata: ["protocol": "\(contents.version)"])
        return session
    }

    private func sessionNotFound(_ id: JSONValue?) -> Response {
        HTTPResponses.error(status: .notFound, id: id, code: JSONRPCErrorCode.invalidRequest,
                            message: "Session not found: it expired or was ended; send initialize without Mcp-Session-Id to start a new one")
    }

    // MARK: Session era

    /// Whose sessions count together against `spec.sessions.maxPerCaller`: the identity, or the
    /// client's address when it is anonymous (every anonymous caller has the same identity).
    func sessionCaller(_ context: GatewayRequestContext) -> String {
        guard context.identity.kind == .anonymous else { return context.identity.channelKey }
        return "address:" + (context.peerAddress ?? "unknown")
    }

    private func initialize(_ message: JSONRPCMessage, identity: Identity, callerKey: String) async -> Response {
        let params = message.params ?? [:]
        let requested = params["protocolVersion"]?.stringValue
        let version = requested.flatMap(ProtocolVersion.init).flatMap { $0.isStateless ? nil : $0 } ?? .latestSessionEra
        let client = ClientDescription(
            clientInfo: params["clientInfo"]?.objectValue ?? ["name": "unknown", "version": "0"],
            capabilities: params["capabilities"]?.objectValue ?? [:])
        guard sessions.count < sessions.maxSessions else {
            return HTTPResponses.error(status: .serviceUnavailable, id: message.id, code: JSONRPCErrorCode.internalError,
                                       message: "the gateway has too many open sessions (spec.sessions.maxSessions); retry later or end unused sessions with DELETE")
        }
        let ownerKey = SessionID.generate()
        let session = DownstreamSession(id: ownerKey, version: version, identity: identity, client: client)
        let channels = makeChannels(owner: ChannelOwner(identity: identity.channelKey, downstreamSession: ownerKey), client: client, session: session)
        session.attach(channels)
        // Open every server's channel now, so each can reach the client's stream; a server
        // that fails is retried on first use. The session needs at least one.
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
        guard opened > 0, let offer else {
            await channels.close()
            return HTTPResponses.json(failure(firstError ?? notReady, id: message.id))
        }
        var upstreamSessions: [String: String] = [:]
        for (index, channel) in channels.open {
            if let id = channel.upstreamSessionID { upstreamSessions[servers[index].config.name] = id }
        }
        let sessionID = sealer.seal(.init(version: version, identity: identity.channelKey, client: client, upstreamSessions: upstreamSessions))
        session.assign(id: sessionID)
        switch sessions.insert(session, caller: callerKey) {
        case .inserted(let evicted):
            if let evicted {
                logger.notice("ended a caller's longest idle session: it holds spec.sessions.maxPerCaller sessions", metadata: ["limit": "\(sessions.maxPerCaller)"])
                await end(evicted)
            }
        case .callerFull:
            await channels.close()
            return HTTPResponses.error(status: .tooManyRequests, id: message.id, code: JSONRPCErrorCode.internalError,
                                       message: "you hold \(sessions.maxPerCaller) sessions, all in use (spec.sessions.maxPerCaller); end one with DELETE before starting another")
        case .full, .duplicate:
            await channels.close()
            return HTTPResponses.error(status: .serviceUnavailable, id: message.id, code: JSONRPCErrorCode.internalError,
                                       message: "the gateway has too many open sessions; retry later")
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

    private func sessionMessage(_ message: JSONRPCMessage, session: DownstreamSession, caller: Caller, accepts: Accepts) async -> Response {
        switch message.kind {
        case .request:
            switch message.method {
            case "ping":
                return HTTPResponses.json(.response(id: message.id ?? .null, result: .object([:])))
            case "initialize":
                return HTTPResponses.error(status: .badRequest, id: message.id, code: JSONRPCErrorCode.invalidRequest,
                                           message: "Invalid Request: this session is already initialized; send initialize without Mcp-Session-Id for a new session")
            default:
                session.beginRequest()
                return await relay(message, scope: Scope(channels: session.channels, clientVersion: session.version, session: session, accepts: accepts, caller: caller))
            }
        case .notification:
            session.touch()
            var targets = Array(session.channels.open)
            switch message.method {
            case "notifications/initialized":
                targets = []  // Gatehouse ran each upstream handshake itself.
            case "notifications/cancelled":
                let server = message.params?["requestId"].flatMap { session.server(handling: $0) }
                targets = targets.filter { $0.key == server }
            default:
                break
            }
            for (_, channel) in targets {
                do {
                    try await channel.send(notification: message)
                } catch {
                    logger.warning("could not forward a notification", metadata: ["method": "\(message.method ?? "")", "error": "\(error)"])
                }
            }
            return HTTPResponses.accepted()
        case .response, .errorResponse:
            session.touch()
            guard let (server, answer) = session.resolveInbound(message) else {
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

    /// JSON-RPC batches: only revision 2025-03-26 allows them.
    private func batch(_ items: [JSONValue], request: Request, context: GatewayRequestContext, accepts: Accepts) async -> Response {
        let found = request.headers.value(.mcpSessionID).flatMap { sessions.get($0) }
        if let found, found.identity.channelKey != context.identity.channelKey { return sessionNotFound(nil) }
        let session = found
        guard let session, session.version.allowsBatches else {
            let revision = session?.version.rawValue ?? request.headers.value(.mcpProtocolVersion) ?? "this session's revision"
            return HTTPResponses.error(status: .badRequest, id: nil, code: JSONRPCErrorCode.invalidRequest,
                                       message: "Invalid Request: JSON-RPC batches are not allowed in \(revision); send one message per POST (batches exist only in 2025-03-26 sessions)")
        }
        guard !items.isEmpty else {
            return HTTPResponses.error(status: .badRequest, id: nil, code: JSONRPCErrorCode.invalidRequest, message: "Invalid Request: empty batch")
        }
        var answers: [JSONRPCMessage] = []
        for item in items {
            let message: JSONRPCMessage
            do {
                message = try JSONRPCMessage(validating: item)
            } catch {
                answers.append(.error(id: error.id, code: JSONRPCErrorCode.invalidRequest, message: "Invalid Request: \(error.message)"))
                continue
            }
            switch message.kind {
            case .request:
                if message.method == "ping" {
                    answers.append(.response(id: message.id ?? .null, result: .object([:])))
                    continue
                }
                answers.append(await collectResponse(message, scope: Scope(channels: session.channels, clientVersion: session.version, session: session, accepts: accepts,
                                                                           caller: caller(context))))
            case .notification:
                for (_, channel) in session.channels.open where message.method != "notifications/initialized" {
                    try? await channel.send(notification: message)
                }
            case .response, .errorResponse:
                if let (server, answer) = session.resolveInbound(message) {
                    try? await session.channels.channel(server).send(response: answer)
                }
            }
        }
        return answers.isEmpty ? HTTPResponses.accepted() : HTTPResponses.jsonArray(answers)
    }

    // MARK: 2026-07-28 (stateless)

    private func stateless(_ message: JSONRPCMessage, request: Request, context: GatewayRequestContext, accepts: Accepts) async -> Response {
        do {
            _ = try StatelessRequestRules.check(message) { name in
                switch name {
                case MCPHeader.protocolVersion: request.headers.value(.mcpProtocolVersion)
                case MCPHeader.method: request.headers.value(.mcpMethod)
                case MCPHeader.name: request.headers.value(.mcpName)
                default: HTTPField.Name(name).flatMap { request.headers.value($0) }
                }
            }
        } catch {
            return HTTPResponses.rejection(error, id: message.id)
        }
        switch message.kind {
        case .notification:
            return HTTPResponses.accepted()
        case .response, .errorResponse:
            return HTTPResponses.error(status: .badRequest, id: message.id, code: JSONRPCErrorCode.invalidRequest,
                                       message: "Invalid Request: 2026-07-28 clients do not send responses; answer input requests by retrying the request with inputResponses")
        case .request:
            break
        }
        // The merged offer is built only where it is answered (not per routed request).
        guard isReady else {
            return HTTPResponses.json(failure(notReady, id: message.id))
        }
        switch message.method {
        case "server/discover":
            guard let offer else { return HTTPResponses.json(failure(notReady, id: message.id)) }
            var meta = JSONObject()
            meta[MetaKey.serverInfo] = .object(Self.serverInfo)
            var result: JSONObject = [
                "resultType": "complete",
                "supportedVersions": .array(ProtocolVersion.allRawValues),
                "capabilities": .object(offer.capabilities),
                "_meta": .object(meta),
                // Capabilities change with the upstream and (later) with policy: do not share.
                "ttlMs": 0,
                "cacheScope": "private",
            ]
            if let instructions = offer.instructions { result["instructions"] = .string(instructions) }
            return HTTPResponses.json(.response(id: message.id ?? .null, result: .object(result)))
        case "ping":
            return HTTPResponses.json(.response(id: message.id ?? .null, result: ["resultType": "complete"]))
        case "subscriptions/listen":
            guard let offer else { return HTTPResponses.json(failure(notReady, id: message.id)) }
            return await listen(message, identity: context.identity, offer: offer, accepts: accepts)
        default:
            let channels = statelessChannels(for: context.identity)
            return await relay(message, scope: Scope(channels: channels, clientVersion: .v2026_07_28, session: nil, accepts: accepts, caller: caller(context)))
        }
    }

    /// The pooled channels of a stateless identity; what servers send outside requests feeds
    /// the listen streams.
    func statelessChannels(for identity: Identity) -> ChannelSet {
        let owner = ChannelOwner(identity: identity.channelKey, downstreamSession: nil)
        return statelessChannels.channels(for: owner) { makeChannels(owner: owner, client: .gateway, session: nil) }
    }

    private func listen(_ message: JSONRPCMessage, identity: Identity, offer: Offer, accepts: Accepts) async -> Response {
        guard accepts.sse else {
            return HTTPResponses.error(status: .notAcceptable, id: message.id, code: JSONRPCErrorCode.invalidRequest,
                                       message: "Not Acceptable: subscriptions/listen answers with an SSE stream; accept text/event-stream")
        }
        let requested = NotificationHub.Filter(message.params?["notifications"]?.objectValue)
        let filter = requested.honoured(by: offer.capabilities)
        // Open the identity's channels to every session-era server, so their streams feed the
        // hub, and subscribe upstream to the resources asked for.
        let channels = statelessChannels(for: identity)
        for index in servers.indices where servers[index].info.map({ !$0.version.isStateless }) ?? false {
            _ = try? await channels.channel(index)
        }
        for uri in filter.resourceSubscriptions {
            guard let owner = names.resolveURI(uri), let channel = try? await channels.channel(owner.server) else { continue }
            let subscribe = JSONRPCMessage.request(id: "listen-subscribe", method: "resources/subscribe", params: ["uri": .string(owner.uri)])
            do {
                for try await _ in channel.send(request: subscribe) {}
            } catch {
                logger.warning("could not subscribe upstream", metadata: ["uri": "\(uri)", "error": "\(error)"])
            }
        }
        let subscriptionID = message.id ?? .null
        let frames = hub.add(filter, subscriptionID: subscriptionID, keepAlive: keepAlive)
        let ack = NotificationHub.tag(
            .notification(method: "notifications/subscriptions/acknowledged", params: ["notifications": .object(filter.json)]),
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

    // MARK: Relaying

    /// Forwards a request and relays what comes back: JSON when the first thing back is the
    /// answer, an SSE stream (written as events arrive) when notifications come first.
    func forward(_ message: JSONRPCMessage, server index: Int, channel: any UpstreamChannel, scope: Scope) async -> Response {
        let clientVersion = scope.clientVersion
        let accepts = scope.accepts
        let session = scope.session
        let onFinish = scope.onFinish
        let onEnd: @Sendable () -> Void = {
            session?.untrack(message)
            session?.endRequest()
            onFinish?()
        }
        var channel = channel
        var scope = scope
        let upstream = servers[index]
        if let breaker = upstream.breaker, !breaker.allow() {
            onEnd()
            recordRequest(message, server: upstream.config.name, outcome: "error", scope: scope, errorType: "circuit_open")
            return HTTPResponses.json(failure(UpstreamError(upstream: upstream.config.name, kind: .unavailable,
                                                            detail: "its circuit breaker is open after repeated failures; try again in a few seconds"), id: message.id))
        }
        scope.upstreamStarted = .now
        var events = EventIterator(channel.send(request: message, headers: scope.upstreamHeaders))
        var first: UpstreamEvent?
        var attempt = 0
        do {
            while true {
                do {
                    first = try await events.next()
                    upstream.breaker?.record(success: true)
                    break
                } catch let error as UpstreamError where error.kind == .unavailable && attempt < upstream.config.resilience.retries
                    && isSafeToRepeat(message, server: upstream.config)
                {
                    // Safe to repeat and it never reached the server's logic: back off and retry.
                    upstream.breaker?.record(success: false)
                    attempt += 1
                    logger.notice("retrying an upstream request", metadata: ["upstream": "\(upstream.config.name)", "attempt": "\(attempt)", "error": "\(error.detail)"])
                    metrics.increment("gatehouse_upstream_retries_total", [upstream.config.name])
                    try? await Task.sleep(for: .milliseconds(Int64(upstream.config.resilience.retryBackoffSeconds * 1000 * Double(1 << (attempt - 1)))))
                    if let breaker = upstream.breaker, !breaker.allow() { throw error }
                    events = EventIterator(channel.send(request: message, headers: scope.upstreamHeaders))
                }
            }
        } catch let error as UpstreamError where error.kind == .sessionExpired && session != nil {
            // The upstream ended this client's session (restart, expiry, or the client ended
            // it through another replica): end the client's session too, so it re-initializes.
            upstream.breaker?.record(success: true)  // it answered
            onEnd()
            if let session, sessions.remove(session.id) != nil { await end(session) }
            logger.notice("session ended because its upstream session ended", metadata: ["upstream": "\(error.upstream)"])
            return sessionNotFound(message.id)
        } catch let error as UpstreamError where error.kind == .sessionExpired && session == nil {
            // A pooled upstream session of stateless clients ended: open a new one, once.
            scope.channels.discard(channel, at: index)
            do {
                channel = try await scope.channels.channel(index)
                events = EventIterator(channel.send(request: message, headers: scope.upstreamHeaders))
                first = try await events.next()
                upstream.breaker?.record(success: true)
            } catch {
                upstream.breaker?.record(success: false)
                onEnd()
                return HTTPResponses.json(failure(error, id: message.id))
            }
        } catch {
            // Every way out records an outcome, so a half-open breaker's probe always settles.
            upstream.breaker?.record(success: false)
            onEnd()
            return HTTPResponses.json(failure(error, id: message.id))
        }
        let upstreamName = servers[index].config.name
        guard let first else {
            onEnd()
            return HTTPResponses.json(failure(UpstreamError(upstream: upstreamName, kind: .protocolViolation, detail: "no answer"), id: message.id))
        }
        if case .response(let response) = first {
            let answer = await finish(response, request: message, server: index, scope: scope)
            onEnd()
            return finalJSON(answer, clientVersion: clientVersion, method: message.method)
        }
        let logger = self.logger
        let finalChannel = channel
        let finalScope = scope
        if !accepts.sse {
            // The client takes JSON only: drop what comes before the answer.
            var pending: UpstreamEvent? = first
            do {
                while let event = pending {
                    if case .response(let response) = event {
                        let answer = await finish(response, request: message, server: index, scope: scope)
                        onEnd()
                        return finalJSON(answer, clientVersion: clientVersion, method: message.method)
                    }
                    if case .message(let m) = event, m.kind == .request { await refuse(m, on: finalChannel, reason: "the client accepts no event stream") }
                    pending = try await events.next()
                }
            } catch {
                onEnd()
                return HTTPResponses.json(failure(error, id: message.id))
            }
            onEnd()
            return HTTPResponses.json(failure(UpstreamError(upstream: upstreamName, kind: .protocolViolation, detail: "no answer"), id: message.id))
        }
        let box = IteratorBox(events)
        return HTTPResponses.sse { [self] writer in
            defer { onEnd() }
            var event: UpstreamEvent? = first
            do {
                while let current = event {
                    switch current {
                    case .message(let m):
                        if m.kind == .request, clientVersion.isStateless {
                            await refuse(m, on: finalChannel, reason: "2026-07-28 clients receive input requests via input_required results, which Gatehouse does not bridge yet")
                        } else if let relayed = relayInStream(m, request: message, scope: finalScope) {
                            try await writer.writeSSE(mapFromServer(relayed, server: index, session: session))
                        } else if m.kind == .request {
                            await refuse(m, on: finalChannel, reason: "a list request carries no input requests")
                        }
                    case .response(let response):
                        try await writer.writeSSE(VersionBridge.prepareResponse(await finish(response, request: message, server: index, scope: finalScope), client: clientVersion,
                                                                                method: message.method, upstreamName: upstreamName))
                        try await writer.finish(nil)
                        return
                    }
                    event = try await box.iterator.next()
                }
                try await writer.writeSSE(failure(UpstreamError(upstream: upstreamName, kind: .protocolViolation, detail: "no answer"), id: message.id))
            } catch let error as UpstreamError {
                finalScope.span?.setErrorIfUnset(error.reason)
                finalScope.clientSpan?.setErrorIfUnset(error.reason)
                try await writer.writeSSE(failure(error, id: message.id))
            } catch {
                // The client went away: dropping the iterator cancels the upstream request.
                logger.debug("stream ended early", metadata: ["error": "\(error)"])
                throw error
            }
            try await writer.finish(nil)
        }
    }

    /// Requests a retry cannot harm: lists and reads, and calls to tools annotated idempotent
    /// when the server's config allows retrying them.
    func isSafeToRepeat(_ message: JSONRPCMessage, server: ServerConfig) -> Bool {
        let method = message.method ?? ""
        if ["tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read", "prompts/get", "completion/complete", "ping"]
            .contains(method)
        {
            return true
        }
        guard method == "tools/call", server.resilience.retryIdempotentTools, let name = message.params?["name"]?.stringValue else { return false }
        return policy?.tool(server: server.name, name: name)?["annotations"]?["idempotentHint"]?.boolValue == true
    }

    /// Routes a request and waits for its answer only (batches).
    private func collectResponse(_ message: JSONRPCMessage, scope: Scope) async -> JSONRPCMessage {
        let (index, routed): (Int, JSONRPCMessage)
        let route = await route(message, scope: scope)
        let (scope, denied, _) = await authorize(route, message: message, scope: scope)
        if let denied { return denied }
        if let refusal = await rateLimit(route, message: message, scope: scope) { return refusal.answer }
        switch route {
        case .answer(let answer): return answer
        case .fanOutList, .broadcast:
            return .error(id: message.id, code: JSONRPCErrorCode.invalidRequest, message: "Invalid Request: \(message.method ?? "") cannot be batched on a federated endpoint")
        case .server(let i, let m): (index, routed) = (i, m)
        }
        let name = servers[index].config.name
        do {
            let channel = try await scope.channels.channel(index)
            for try await event in channel.send(request: routed) {
                switch event {
                case .response(let response):
                    return VersionBridge.prepareResponse(await finish(response, request: message, server: index, scope: scope), client: scope.clientVersion,
                                                         method: message.method, upstreamName: name)
                case .message(let m) where m.kind == .request:
                    await refuse(m, on: channel, reason: "requests inside a batch cannot be answered")
                case .message:
                    continue
                }
            }
            return failure(UpstreamError(upstream: name, kind: .protocolViolation, detail: "no answer"), id: message.id)
        } catch {
            return failure(error, id: message.id)
        }
    }

    func refuse(_ request: JSONRPCMessage, on channel: any UpstreamChannel, reason: String) async {
        guard let id = request.id else { return }
        logger.notice("refusing a server-to-client request", metadata: ["method": "\(request.method ?? "")", "reason": "\(reason)"])
        try? await channel.send(response: .error(id: id, code: JSONRPCErrorCode.methodNotFound, message: "cannot relay \(request.method ?? "request"): \(reason)"))
    }

    func finalJSON(_ response: JSONRPCMessage, clientVersion: ProtocolVersion, method: String?) -> Response {
        let translated = VersionBridge.prepareResponse(response, client: clientVersion, method: method, upstreamName: endpoint.path)
        // 2026-07-28: an unknown method is HTTP 404 with -32601.
        if clientVersion.isStateless, translated.error?["code"]?.intValue == JSONRPCErrorCode.methodNotFound {
            return HTTPResponses.json(translated, status: .notFound)
        }
        return HTTPResponses.json(translated)
    }

    /// The JSON-RPC error a client sees when the gateway could not get an answer.
    func failure(_ error: any Error, id: JSONValue?) -> JSONRPCMessage {
        if let error = error as? UpstreamError {
            logger.warning("upstream failure", metadata: ["upstream": "\(error.upstream)", "reason": "\(error.reason)", "detail": "\(error.detail)"])
            return .error(id: id, code: JSONRPCErrorCode.internalError, message: error.description,
                          data: ["gatehouse": ["upstream": .string(error.upstream), "reason": .string(error.reason)]])
        }
        logger.error("internal error", metadata: ["error": "\(error)"])
        return .error(id: id, code: JSONRPCErrorCode.internalError, message: "internal gateway error; see the gateway log")
    }

    // MARK: GET and DELETE

    private func get(_ request: Request, context: GatewayRequestContext) async -> Response {
        if let version = request.headers.value(.mcpProtocolVersion).flatMap(ProtocolVersion.init), version.isStateless {
            return HTTPResponses.error(status: .methodNotAllowed, id: nil, code: JSONRPCErrorCode.invalidRequest,
                                       message: "Method Not Allowed: 2026-07-28 has no GET stream; use subscriptions/listen")
        }
        guard let sessionID = request.headers.value(.mcpSessionID) else {
            return HTTPResponses.error(status: .badRequest, id: nil, code: JSONRPCErrorCode.invalidRequest,
                                       message: "Bad Request: GET opens a session's stream and needs the Mcp-Session-Id header")
        }
        // Another caller's session is answered like an unknown one.
        guard let session = sessions.get(sessionID), session.identity.channelKey == context.identity.channelKey else { return sessionNotFound(nil) }
        guard Accepts(request.headers.value(.accept)).sse else {
            return HTTPResponses.error(status: .notAcceptable, id: nil, code: JSONRPCErrorCode.invalidRequest,
                                       message: "Not Acceptable: the GET stream is text/event-stream")
        }
        let frames = session.openStream(keepAlive: keepAlive)
        return HTTPResponses.sse { writer in
            for await frame in frames {
                try await writer.write(ByteBuffer(bytes: frame))
            }
            try await writer.finish(nil)
        }
    }

    private func delete(_ request: Request, context: GatewayRequestContext) async -> Response {
        guard let sessionID = request.headers.value(.mcpSessionID) else {
            if let version = request.headers.value(.mcpProtocolVersion).flatMap(ProtocolVersion.init), version.isStateless {
                return HTTPResponses.error(status: .methodNotAllowed, id: nil, code: JSONRPCErrorCode.invalidRequest,
                                           message: "Method Not Allowed: 2026-07-28 has no sessions to delete")
            }
            return HTTPResponses.error(status: .badRequest, id: nil, code: JSONRPCErrorCode.invalidRequest,
                                       message: "Bad Request: DELETE ends a session and needs the Mcp-Session-Id header")
        }
        guard sessions.get(sessionID)?.identity.channelKey == context.identity.channelKey, let session = sessions.remove(sessionID) else {
            return sessionNotFound(nil)
        }
        await end(session)
        return Response(status: .noContent)
    }

    func end(_ session: DownstreamSession) async {
        session.closeStream()
        await session.channels.close()
        logger.info("session ended")
    }

    /// Ends idle sessions; called periodically.
    func expireIdleSessions() async {
        for session in sessions.removeIdle(longerThan: .seconds(config.sessions.idleTimeoutSeconds)) {
            await end(session)
        }
    }

    /// Open long-lived streams: listen streams and session GET streams.
    var openStreams: Int { hub.count + sessions.all().filter(\.hasStream).count }

    /// Ends long-lived streams so graceful shutdown does not wait on them.
    func closeStreams() {
        hub.closeAll()
        for session in sessions.all() { session.closeStream() }
    }

    func shutdown() async {
        closeStreams()
        // End sessions concurrently: each may DELETE an upstream session.
        await withDiscardingTaskGroup { group in
            for session in sessions.removeAll() { group.addTask { await self.end(session) } }
            for channels in statelessChannels.removeAll() { group.addTask { await channels.close() } }
        }
    }
}

/// A weak reference that can cross into `@Sendable` callbacks.
final class WeakSession: @unchecked Sendable {
    weak var session: DownstreamSession?
    init(_ session: DownstreamSession?) { self.session = session }
}

/// The iterator of an upstream event stream, carried into the response body writer. It is used
/// by one task at a time: first the handler, then the body writer.
final class IteratorBox: @unchecked Sendable {
    var iterator: EventIterator
    init(_ iterator: EventIterator) { self.iterator = iterator }
}

struct EventIterator {
    private let events: UpstreamEvents
    init(_ events: UpstreamEvents) { self.events = events }
    func next() async throws -> UpstreamEvent? { try await events.next() }
}

/// Pooled channel sets of stateless clients, one per identity (never shared across identities).
final class StatelessChannels: @unchecked Sendable {
    private let lock = NSLock()
    private var channels: [String: ChannelSet] = [:]

    func channels(for owner: ChannelOwner, make: () -> ChannelSet) -> ChannelSet {
        lock.withLock {
            if let existing = channels[owner.identity] { return existing }
            let created = make()
            channels[owner.identity] = created
            return created
        }
    }

    func removeAll() -> [ChannelSet] {
        lock.withLock {
            defer { channels = [:] }
            return Array(channels.values)
        }
    }
}
