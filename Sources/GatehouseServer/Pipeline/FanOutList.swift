import GatehouseUpstream
import MCPWire

extension Federation {
    /// Fans a list request out to every server in parallel and merges the pages in server
    /// order. A server that fails or is slower than `listTimeoutSeconds` is left out (logged,
    /// named in `_meta`) and not asked again for later pages of this listing.
    func mergedList(_ exchange: Exchange, key: String, policy: GatewayPolicy?, knownTools: KnownToolNames) async throws(GatewayError) -> JSONRPCMessage {
        let method = exchange.typed.method
        let serverNames = self.serverNames
        var positions: [(index: Int, cursor: String?)]
        if let cursorText = exchange.request.rpc.params?["cursor"]?.stringValue {
            guard let cursor = FederatedCursor(decoding: cursorText, servers: serverNames) else {
                throw .invalidParams("Invalid params: unknown or damaged cursor; list again without a cursor")
            }
            positions = cursor.positions.compactMap { position in
                serverNames.firstIndex(of: position.server).map { ($0, position.cursor.isEmpty ? nil : position.cursor) }
            }
        } else {
            positions = servers.indices.map { ($0, nil) }
        }
        let pages = await fetchPages(method, positions: positions, channels: exchange.channels)
        let kind: FederationNames.Kind? = key == "tools" ? .tool : key == "prompts" ? .prompt : nil
        if let kind {
            for page in pages {
                let found = (page.result?[key]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
                names.learn(found, server: page.index, kind: kind)
            }
        }
        let started = ContinuousClock.now
        var items: [JSONValue] = []
        var next: [(server: String, cursor: String)] = []
        var missing: [JSONValue] = []
        var hiddenItems = 0
        for page in pages.sorted(by: { $0.index < $1.index }) {
            guard let result = page.result else {
                missing.append(.string(serverNames[page.index]))
                continue
            }
            var pageItems = result[key]?.arrayValue ?? []
            if kind == .tool, let pins = pins(of: page.index) {
                let listedFrom = positions.first { $0.index == page.index }?.cursor
                let complete = listedFrom == nil && (result["nextCursor"]?.stringValue ?? "").isEmpty
                pageItems = await pins.check(pageItems, server: servers[page.index].config, complete: complete)
            } else if let scanned = ToolPins.scannedKind(of: method), let pins = pins(of: page.index) {
                pageItems = pins.screen(pageItems, kind: scanned, server: servers[page.index].config)
            }
            if let policy {
                let (kept, hidden) = policy.filterItems(pageItems, listMethod: method, server: serverNames[page.index], caller: exchange.caller,
                                                        protocolVersion: exchange.clientVersion.rawValue, session: exchange.session != nil,
                                                        annotate: annotator(server: page.index))
                pageItems = kept
                hiddenItems += hidden
            }
            try expose(pageItems, server: page.index, kind: kind, into: &items)
            if let cursor = result["nextCursor"]?.stringValue, !cursor.isEmpty {
                next.append((serverNames[page.index], cursor))
            }
        }
        policy?.recordList(caller: exchange.caller, message: exchange.request.rpc, servers: serverNames, hidden: hiddenItems, started: started)
        if kind == .tool { knownTools.learn(items) }
        var result: JSONObject = [key: .array(items)]
        if !next.isEmpty { result["nextCursor"] = .string(FederatedCursor(positions: next).encoded) }
        if !missing.isEmpty { result["_meta"] = ["gatehouse/unavailableServers": .array(missing)] }
        if exchange.clientVersion.isStateless {
            result["ttlMs"] = 0
            result["cacheScope"] = "private"
        }
        return .response(id: exchange.id ?? .null, result: .object(result))
    }

    /// MCP Apps: a tool's `_meta.ui.resourceUri` (and the older `_meta["ui/resourceUri"]`)
    /// names a `ui://` resource, exposed here under the server's URI prefix like every resource,
    /// so the client can read the resource the tool points to.
    func exposeAppURIs(_ tool: JSONObject, server index: Int) -> JSONObject {
        guard names.rewritesURIs, case .object(var meta)? = tool["_meta"] else { return tool }
        var tool = tool
        if case .string(let uri)? = meta["ui/resourceUri"] { meta["ui/resourceUri"] = .string(names.exposeURI(uri, server: index)) }
        if case .object(var ui)? = meta["ui"], case .string(let uri)? = ui["resourceUri"] {
            ui["resourceUri"] = .string(names.exposeURI(uri, server: index))
            meta["ui"] = .object(ui)
        }
        tool["_meta"] = .object(meta)
        return tool
    }

    /// A single server's tools/list answer as the endpoint shows it (renames, hidden tools).
    func applyView(_ answer: JSONRPCMessage, server index: Int) -> JSONRPCMessage {
        guard !view.isEmpty, answer.kind == .response, var result = answer.result?.objectValue, let tools = result["tools"]?.arrayValue else { return answer }
        result["tools"] = .array(tools.compactMap { item in item.objectValue.flatMap { view.show($0, server: index) }.map { .object($0.tool) } })
        var shown = answer
        shown.object["result"] = .object(result)
        return shown
    }

    /// What `input.tool` shows policy for server `index`'s tools: the pin status and findings added.
    func annotator(server index: Int) -> (@Sendable (JSONValue) -> JSONValue)? {
        guard let pins = pins(of: index) else { return nil }
        let config = servers[index].config
        return { pins.annotate($0, server: config) }
    }

    /// Appends a server's items under the names the client sees.
    private func expose(_ pageItems: [JSONValue], server index: Int, kind: FederationNames.Kind?, into items: inout [JSONValue]) throws(GatewayError) {
        for item in pageItems {
            guard case .object(var object) = item else { continue }
            if kind == .tool {
                guard let shown = view.show(object, server: index) else { continue }
                object = exposeAppURIs(shown.tool, server: index)
                if shown.renamed {
                    items.append(.object(object))
                    continue
                }
            }
            if let kind, let name = object["name"]?.stringValue {
                if let (a, b) = names.collision(for: name, kind: kind) {
                    throw .nameCollision(kind: kind.rawValue, name: name, servers: (a, b))
                }
                let exposed = names.expose(name, server: index, kind: kind)
                names.remember(exposed: exposed, server: index, name: name, kind: kind)
                object["name"] = .string(exposed)
                items.append(.object(object))
            } else {
                items.append(names.exposeURIs(in: .object(object), server: index))
            }
        }
    }
}
