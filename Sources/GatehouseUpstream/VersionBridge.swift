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
    /// when the result cannot be expressed in the client's revision.
    public static func prepareResponse(_ message: JSONRPCMessage, client: ProtocolVersion, upstreamName: String) -> JSONRPCMessage {
        guard message.kind == .response, case .object(var result)? = message.result else { return message }
        if client.isStateless {
            if result["resultType"] == nil {
                result["resultType"] = "complete"
                var copy = message
                copy.object["result"] = .object(result)
                return copy
            }
            return message
        }
        if result["resultType"]?.stringValue == "input_required" {
            return JSONRPCMessage.error(
                id: message.id, code: JSONRPCErrorCode.internalError,
                message: "upstream '\(upstreamName)' needs input from the client (2026-07-28 input_required), which Gatehouse cannot yet relay to a \(client.rawValue) session; connect with protocol 2026-07-28 to use this tool",
                data: ["gatehouse": ["upstream": .string(upstreamName), "reason": "input_required_not_bridged"]])
        }
        return message
    }
}
