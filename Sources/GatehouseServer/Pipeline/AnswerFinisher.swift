import GatehouseUpstream
import Logging
import MCPWire
import NIOPosix

/// Turns what a server answered into what the client gets: names and URIs mapped, list items
/// the caller may not use removed, and the decision's redactions applied — to results, to
/// errors, and to messages sent while the server works.
struct AnswerFinisher: Sendable {
    let federation: Federation
    let policy: GatewayPolicy?
    let knownTools: KnownToolNames
    let logger: Logger

    /// The final answer of a request from server `index`, as the client gets it.
    func finish(_ response: JSONRPCMessage, server index: Int, exchange: Exchange) async -> JSONRPCMessage {
        let answer = await finishResult(response, server: index, exchange: exchange)
        guard exchange.typed.method == .toolsList else { return answer }
        // Last: the endpoint's renames and hidden tools, on what pins and policy let through.
        let shown = federation.applyView(answer, server: index)
        if let tools = shown.result?["tools"]?.arrayValue { knownTools.learn(tools) }
        return shown
    }

    private func finishResult(_ response: JSONRPCMessage, server index: Int, exchange: Exchange) async -> JSONRPCMessage {
        var mapped = federation.mapResponse(response, server: index)
        let method = exchange.typed.method
        if method == .toolsList, let pins = federation.pins(of: index), mapped.kind == .response, let tools = mapped.result?["tools"]?.arrayValue,
           var object = mapped.result?.objectValue
        {
            let complete = exchange.request.rpc.params?["cursor"] == nil && (object["nextCursor"]?.stringValue ?? "").isEmpty
            object["tools"] = .array(await pins.check(tools, server: federation.servers[index].config, complete: complete))
            mapped.object["result"] = .object(object)
        } else if let kind = ToolPins.scannedKind(of: method), let pins = federation.pins(of: index), let key = method.listKey,
                  let items = mapped.result?[key]?.arrayValue, var object = mapped.result?.objectValue
        {
            object[key] = .array(pins.screen(items, kind: kind, server: federation.servers[index].config))
            mapped.object["result"] = .object(object)
        }
        guard let policy else { return mapped }
        let serverName = federation.servers[index].config.name
        let redaction = exchange.obligations.redaction
        if mapped.kind == .errorResponse, !redaction.isEmpty, let error = mapped.error {
            // An error's message and data can carry the same data as a result would.
            let redactor = Redactor(detectors: redaction.detectors, fields: redaction.fields)
            let (redacted, count) = await Self.offloadIfLarge(.object(error)) { value in
                var count = 0
                let out = redactor.redactError(value.objectValue ?? [:], count: &count)
                return (.object(out), count)
            }
            if count > 0 {
                mapped.object["error"] = redacted
                logger.info("redacted an error answer", metadata: ["method": "\(method.name)", "server": "\(serverName)", "redactions": "\(count)"])
            }
            return mapped
        }
        guard mapped.kind == .response, let result = mapped.result else { return mapped }
        if let spec = GatewayPolicy.listItems[method], policy.engine != nil, let items = result[spec.key]?.arrayValue, var object = result.objectValue {
            let started = ContinuousClock.now
            let (kept, hidden) = policy.filterItems(items, listMethod: method, server: serverName, caller: exchange.caller,
                                                    protocolVersion: exchange.clientVersion.rawValue, session: exchange.session != nil,
                                                    annotate: federation.annotator(server: index))
            policy.recordList(caller: exchange.caller, message: exchange.request.rpc, servers: [serverName], hidden: hidden, started: started)
            object[spec.key] = .array(kept)
            mapped.object["result"] = .object(object)
            return mapped
        }
        if !redaction.isEmpty {
            let redactor = Redactor(detectors: redaction.detectors, fields: redaction.fields)
            let (redacted, count) = await Self.offloadIfLarge(result) { value in
                var count = 0
                let out = redactor.redactResult(value, count: &count)
                return (out, count)
            }
            mapped.object["result"] = redacted
            if count > 0 { logger.info("redacted an answer", metadata: ["method": "\(method.name)", "server": "\(serverName)", "redactions": "\(count)"]) }
        }
        return mapped
    }

    /// What of an upstream's message in the middle of a request reaches the client: redacted as
    /// the request's decision asks; nothing during a list request under a policy (lists are
    /// filtered item by item and have no decision whose redaction could apply to a log line).
    func relayInStream(_ message: JSONRPCMessage, exchange: Exchange) -> JSONRPCMessage? {
        if policy?.engine != nil, exchange.typed.method.isList {
            logger.debug("not relaying a message sent during a list request", metadata: ["method": "\(message.method ?? "")"])
            return nil
        }
        let redaction = exchange.obligations.redaction
        guard !redaction.isEmpty else { return message }
        var count = 0
        let redactor = Redactor(detectors: redaction.detectors, fields: redaction.fields)
        let out = redactor.redactMessage(message, count: &count)
        if count > 0 { logger.info("redacted a message", metadata: ["method": "\(message.method ?? "")", "redactions": "\(count)"]) }
        return out
    }

    /// Text above this size is redacted on NIO's thread pool, not on an event loop, so one
    /// large answer cannot stall the other connections of its loop.
    static let offloadTextBytes = 256 * 1024

    /// Runs `work` here for small values, on the blocking thread pool for large ones.
    static func offloadIfLarge(_ value: JSONValue, _ work: @escaping @Sendable (JSONValue) -> (JSONValue, Int)) async -> (JSONValue, Int) {
        guard Redactor.textSize(value, limit: offloadTextBytes) >= offloadTextBytes else { return work(value) }
        do {
            return try await NIOThreadPool.singleton.runIfActive { work(value) }
        } catch {
            return work(value)  // the pool is shutting down: do it here rather than not at all
        }
    }
}
