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
            if let policy {
                let (kept, hidden) = policy.filterItems(pageItems, listMethod: method, server: serverNames[page.index], caller: exchange.caller,
                                                        protocolVersion: exchange.clientVersion.rawValue, session: exchange.session != nil)
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

    /// Appends a server's items under the names the client sees.
    private func expose(_ pageItems: [JSONValue], server index: Int, kind: FederationNames.Kind?, into items: inout [JSONValue]) throws(GatewayError) {
        for item in pageItems {
            guard case .object(var object) = item else { continue }
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
