import GatehouseConfig
import GatehouseUpstream
import Logging
import MCPWire
import Synchronization

/// The servers of one endpoint seen as one (federation): names and URIs, list pages, and what
/// servers send mapped to what the client sees.
///
/// Design note: list methods fan out to every server in parallel and merge in server order;
/// methods that name a tool, prompt or resource go to its owner with the server's own name;
/// with one server, everything is forwarded unchanged (no renaming, upstream cursors and
/// caching hints pass through).
final class Federation: Sendable {
    let servers: [UpstreamServer]
    let names: FederationNames
    let listTimeoutSeconds: Double
    let logger: Logger
    /// Pinned tool definitions (servers with `spec.toolPinning`); nil without a store.
    let pins: ToolPins?
    /// Tools renamed, re-described, hidden or selected on this endpoint.
    let view: ToolView
    /// When each on-demand listing last ran (names learned on a miss, tool definitions for
    /// policy): a client sending made-up names must not make every request cost upstream lists.
    private let listedAt = Mutex<[String: ContinuousClock.Instant]>([:])
    /// The shortest time between two on-demand listings of the same kind.
    static let relistInterval: Duration = .seconds(2)

    init(servers: [UpstreamServer], naming: GatewayConfig.Naming, prefix: GatewayConfig.Naming.Prefix, listTimeoutSeconds: Double, logger: Logger,
         pins: ToolPins? = nil, toolOverrides: [GatewayConfig.ToolOverride] = [], onlyListedTools: Bool = false)
    {
        self.servers = servers
        self.pins = pins
        self.view = ToolView(overrides: toolOverrides, servers: servers.map(\.config.name), onlyListed: onlyListedTools)
        self.names = FederationNames(servers: servers.map(\.config.name), naming: naming, prefix: prefix)
        self.listTimeoutSeconds = listTimeoutSeconds
        self.logger = logger
    }

    var serverNames: [String] { servers.map(\.config.name) }

    /// The pins of server `index`, when it pins its tools.
    func pins(of index: Int) -> ToolPins? {
        guard let pins, servers[index].config.toolPinning.mode != .off else { return nil }
        return pins
    }

    // MARK: Routing

    /// Where a request goes; resolves exposed names and URIs to the owner's own.
    func route(_ request: MCPMessage, channels: ChannelSet) async throws(GatewayError) -> Exchange.Target {
        if servers.count == 1 {
            // One server: forwarded unchanged, but for tools the endpoint renames or hides.
            guard !view.isEmpty, case .toolsCall(let exposed, let arguments)? = request.request else { return .server(0, request) }
            let owner = try await resolveTool(exposed, channels: channels)
            return .server(0, rewrite(request, to: .toolsCall(name: owner.name, arguments: arguments)) { $0["name"] = .string(owner.name) })
        }
        let typed = request.request ?? .other(method: .other(""))
        if let key = typed.method.listKey { return .fanOutList(key: key) }
        switch typed {
        case .toolsCall(let exposed, let arguments):
            let owner = try await resolveTool(exposed, channels: channels)
            return .server(owner.server, rewrite(request, to: .toolsCall(name: owner.name, arguments: arguments)) { $0["name"] = .string(owner.name) })
        case .promptsGet(let exposed, let arguments):
            let owner = try await resolve(exposed, kind: .prompt, channels: channels)
            return .server(owner.server, rewrite(request, to: .promptsGet(name: owner.name, arguments: arguments)) { $0["name"] = .string(owner.name) })
        case .resourcesRead(let exposed), .resourcesSubscribe(let exposed), .resourcesUnsubscribe(let exposed):
            guard let owner = names.resolveURI(exposed) else {
                throw .invalidParams("Unknown resource: \(exposed); resource URIs here start with '<server>+'")
            }
            let routed: MCPRequest = switch typed {
            case .resourcesRead: .resourcesRead(uri: owner.uri)
            case .resourcesSubscribe: .resourcesSubscribe(uri: owner.uri)
            default: .resourcesUnsubscribe(uri: owner.uri)
            }
            return .server(owner.server, rewrite(request, to: routed) { $0["uri"] = .string(owner.uri) })
        case .complete(let ref):
            let owner: (server: Int, ref: MCPRequest.CompletionReference, key: String, value: String)
            switch ref {
            case .prompt(let name):
                guard let resolved = names.resolve(name, kind: .prompt) else { throw .invalidParams("Invalid params: unknown completion reference") }
                owner = (resolved.server, .prompt(name: resolved.name), "name", resolved.name)
            case .resource(let uri):
                guard let resolved = names.resolveURI(uri) else { throw .invalidParams("Invalid params: unknown completion reference") }
                owner = (resolved.server, .resource(uri: resolved.uri), "uri", resolved.uri)
            case .other:
                throw .invalidParams("Invalid params: unknown completion reference")
            }
            return .server(owner.server, rewrite(request, to: .complete(ref: owner.ref)) { params in
                var ref = params["ref"]?.objectValue ?? [:]
                ref[owner.key] = .string(owner.value)
                params["ref"] = .object(ref)
            })
        case .setLoggingLevel:
            return .broadcast
        default:
            throw .methodNotFound("\(typed.method.name) is not supported on a federated endpoint")
        }
    }

    /// The owner of a tool name clients see: a name the endpoint gave it, else the naming rules;
    /// a tool the endpoint renamed, hides or did not select is unknown under its own name.
    private func resolveTool(_ exposed: String, channels: ChannelSet) async throws(GatewayError) -> (server: Int, name: String) {
        if let owner = view.byName[exposed] { return owner }
        let owner = try await resolve(exposed, kind: .tool, channels: channels)
        if view.hides(server: owner.server, tool: owner.name) { throw .unknownTarget(kind: "tool", name: exposed, hidden: false) }
        return owner
    }

    private func resolve(_ exposed: String, kind: FederationNames.Kind, channels: ChannelSet) async throws(GatewayError) -> (server: Int, name: String) {
        if let owner = names.resolve(exposed, kind: kind) { return owner }
        // Aliases and unprefixed names are known from lists: learn them, then retry.
        await learnNames(kind: kind, channels: channels)
        guard let owner = names.resolve(exposed, kind: kind) else { throw .unknownTarget(kind: kind.rawValue, name: exposed, hidden: false) }
        return owner
    }

    private func rewrite(_ message: MCPMessage, to request: MCPRequest, _ change: (inout JSONObject) -> Void) -> MCPMessage {
        var rpc = message.rpc
        var params = rpc.params ?? [:]
        change(&params)
        rpc.params = params
        return MCPMessage(rpc: rpc, request: request)
    }

    /// True when `key`'s on-demand listing has not run within `relistInterval` (and marks it run).
    func mayList(_ key: String) -> Bool {
        let now = ContinuousClock.now
        return listedAt.withLock { listed in
            if let last = listed[key], now - last < Self.relistInterval { return false }
            if listed.count > 10_000 { listed.removeAll(keepingCapacity: true) }
            listed[key] = now
            return true
        }
    }

    // MARK: What servers send

    /// Maps a message from server `index` to what the client sees.
    func mapFromServer(_ message: JSONRPCMessage, server index: Int, session: DownstreamSession?) -> JSONRPCMessage {
        var mapped = message
        if names.rewritesURIs, message.mcpMethod == .resourcesUpdated, let params = message.params {
            mapped.params = names.exposeURIs(in: .object(params), server: index).objectValue
        }
        if mapped.kind == .request, let session { mapped = session.mapOutbound(mapped, server: index) }
        return mapped
    }

    func mapResponse(_ response: JSONRPCMessage, server index: Int) -> JSONRPCMessage {
        guard names.rewritesURIs, response.kind == .response, let result = response.result else { return response }
        var mapped = response
        mapped.object["result"] = names.exposeURIs(in: result, server: index)
        return mapped
    }

    // MARK: Lists

    struct Page: Sendable {
        var index: Int
        var result: JSONObject?
    }

    /// One page of `method` from each server at its cursor, in parallel; a server that fails or
    /// is slower than `listTimeoutSeconds` has no result (logged and counted).
    func fetchPages(_ method: MCPMethod, positions: [(index: Int, cursor: String?)], channels: ChannelSet) async -> [Page] {
        await withTaskGroup(of: Page.self) { group in
            for position in positions {
                group.addTask { await self.fetchPage(method, position: position, channels: channels) }
            }
            var pages: [Page] = []
            for await page in group { pages.append(page) }
            return pages
        }
    }

    private func fetchPage(_ method: MCPMethod, position: (index: Int, cursor: String?), channels: ChannelSet) async -> Page {
        let name = servers[position.index].config.name
        do {
            let result = try await withTimeout(listTimeoutSeconds, upstream: name) {
                let channel = try await channels.channel(position.index)
                var params = JSONObject()
                if let cursor = position.cursor { params["cursor"] = .string(cursor) }
                let request = JSONRPCMessage.request(id: "list", method: method.name, params: params)
                for try await event in channel.send(request: request) {
                    if case .response(let response) = event { return response }
                }
                throw UpstreamError(upstream: name, kind: .protocolViolation, detail: "no answer")
            }
            guard let object = result.result?.objectValue else {
                logger.warning("server left out of a list", metadata: ["upstream": "\(name)", "method": "\(method.name)", "error": "\(result.error?["message"]?.stringValue ?? "no result")"])
                servers[position.index].countListFailure()
                return Page(index: position.index, result: nil)
            }
            return Page(index: position.index, result: object)
        } catch {
            logger.warning("server left out of a list", metadata: ["upstream": "\(name)", "method": "\(method.name)", "error": "\(error)"])
            servers[position.index].countListFailure()
            return Page(index: position.index, result: nil)
        }
    }

    /// Lists every page of every server for `kind`, so aliases and unprefixed names resolve.
    func learnNames(kind: FederationNames.Kind, channels: ChannelSet) async {
        guard mayList("names:\(kind.rawValue)") else { return }
        let method: MCPMethod = kind == .tool ? .toolsList : .promptsList
        let key = kind == .tool ? "tools" : "prompts"
        var positions: [(index: Int, cursor: String?)] = servers.indices.map { ($0, nil) }
        var rounds = 0
        while !positions.isEmpty, rounds < 20 {
            rounds += 1
            let pages = await fetchPages(method, positions: positions, channels: channels)
            positions = []
            for page in pages {
                guard let result = page.result else { continue }
                let found = (result[key]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
                names.learn(found, server: page.index, kind: kind)
                if let cursor = result["nextCursor"]?.stringValue, !cursor.isEmpty { positions.append((page.index, cursor)) }
            }
            for page in pages {
                for name in (page.result?[key]?.arrayValue ?? []).compactMap({ $0["name"]?.stringValue }) {
                    names.remember(exposed: names.expose(name, server: page.index, kind: kind), server: page.index, name: name, kind: kind)
                }
            }
        }
    }
}
