import MCPWire

/// Translates messages between a client's revision and an upstream's revision.
///
/// Design note: Gatehouse negotiates each side separately. Only the fields that differ between
/// eras are touched: the per-request `_meta` keys of 2026-07-28 (added for stateless upstreams,
/// removed for session-era ones) and `resultType` (added for stateless clients). Everything else
/// is forwarded as it came, key order and number text included.
public enum VersionBridge {
    private static let eraMetaKeys = [MetaKey.protocolVersion, MetaKey.clientInfo, MetaKey.clientCapabilities]

    /// Rewrites a request's `_meta` for the upstream's revision.
    public static func prepareRequest(_ message: inout JSONRPCMessage, upstream: ProtocolVersion, client: ClientDescription) {
        var params = message.params ?? JSONObject()
        var meta = params["_meta"]?.objectValue ?? JSONObject()
        if upstream.isStateless {
            // A 2026-07-28 client's request usually has all three already: leave it untouched
            // (its bytes can then be relayed as they came).
            if meta[MetaKey.protocolVersion] == .string(upstream.rawValue), meta[MetaKey.clientInfo] != nil,
                meta[MetaKey.clientCapabilities] != nil
            {
                return
            }
            meta[MetaKey.protocolVersion] = .string(upstream.rawValue)
            if meta[MetaKey.clientInfo] == nil { meta[MetaKey.clientInfo] = .object(client.clientInfo) }
            if meta[MetaKey.clientCapabilities] == nil { meta[MetaKey.clientCapabilities] = .object(client.capabilities) }
            params["_meta"] = .object(meta)
            message.params = params
        } else {
            guard message.params != nil, params["_meta"] != nil else { return }
            let before = meta.count
            for key in eraMetaKeys { meta[key] = nil }
            guard meta.count != before else { return }
            params["_meta"] = meta.isEmpty ? nil : .object(meta)
            message.params = params
        }
    }

    /// Rewrites a final response for the client's revision. Returns an error response instead
    /// when the result cannot be expressed in the client's revision. `method` is the request's.
    public static func prepareResponse(_ message: JSONRPCMessage, client: ProtocolVersion, method: MCPMethod?, upstreamName: @autoclosure () -> String) -> JSONRPCMessage {
        guard message.kind == .response, case .object(var result)? = message.result else { return message }
        if client.isStateless {
            guard result["resultType"] == nil else { return message }
            result["resultType"] = "complete"
            // A session-era upstream says nothing about caching: the safe answer is "do not
            // cache, and never share across callers".
            if method?.isCacheable == true, result["ttlMs"] == nil {
                result["ttlMs"] = 0
                result["cacheScope"] = "private"
            }
            var copy = message
            copy.object["result"] = .object(result)
            return copy
        }
        if result["resultType"]?.stringValue == "input_required" {
            let upstreamName = upstreamName()
            return JSONRPCMessage.error(
                id: message.id, code: JSONRPCErrorCode.internalError,
                message: "upstream '\(upstreamName)' needs input from the client (2026-07-28 input_required), which Gatehouse cannot yet relay to a \(client.rawValue) session; connect with protocol 2026-07-28 to use this tool",
                data: ["gatehouse": ["upstream": .string(upstreamName), "reason": "input_required_not_bridged"]])
        }
        return message
    }
}
