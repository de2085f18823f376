import Foundation

/// A request rejected by a transport rule: the HTTP status and the JSON-RPC error to send.
public struct WireRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public var httpStatus: Int
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(httpStatus: Int, code: Int, message: String, data: JSONValue? = nil) {
        self.httpStatus = httpStatus
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { message }

    public static func unsupportedVersion(_ requested: String?) -> WireRejection {
        var data: JSONObject = ["supported": .array(ProtocolVersion.allRawValues)]
        if let requested { data["requested"] = .string(requested) }
        return WireRejection(
            httpStatus: 400, code: JSONRPCErrorCode.unsupportedProtocolVersion,
            message: "Unsupported protocol version \(requested.map { "'\($0)'" } ?? "(none)"); supported versions: "
                + ProtocolVersion.all.map(\.rawValue).joined(separator: ", "),
            data: .object(data))
    }

    public static func headerMismatch(_ message: String) -> WireRejection {
        WireRejection(httpStatus: 400, code: JSONRPCErrorCode.headerMismatch, message: "Header mismatch: " + message)
    }
}

/// The 2026-07-28 Streamable HTTP request rules: the protocol version in `_meta` and in the
/// `MCP-Protocol-Version` header, and the `Mcp-Method`/`Mcp-Name` headers mirrored from the body.
public enum StatelessRequestRules {
    /// The methods whose `Mcp-Name` header mirrors `params.name` or `params.uri`.
    public static func nameField(for method: String) -> String? {
        switch method {
        case "tools/call", "prompts/get": return "name"
        case "resources/read": return "uri"
        default: return nil
        }
    }

    /// The protocol version the body's `_meta` names, if any.
    public static func metaVersion(of message: JSONRPCMessage) -> String? {
        message.params?["_meta"]?[MetaKey.protocolVersion]?.stringValue
    }

    /// Checks a stateless request; `header` looks up a request header case-insensitively.
    /// Returns the negotiated version.
    public static func check(_ message: JSONRPCMessage, header: (String) -> String?) throws(WireRejection) -> ProtocolVersion {
        let bodyVersion = metaVersion(of: message)
        guard let headerVersion = header(MCPHeader.protocolVersion) else {
            throw .headerMismatch("the MCP-Protocol-Version header is required and must equal _meta[\"\(MetaKey.protocolVersion)\"]")
        }
        guard let bodyVersion else {
            throw .headerMismatch("the request body has no _meta[\"\(MetaKey.protocolVersion)\"]; it must equal the MCP-Protocol-Version header '\(headerVersion)'")
        }
        guard bodyVersion == headerVersion else {
            throw .headerMismatch("MCP-Protocol-Version header value '\(headerVersion)' does not match body value '\(bodyVersion)'")
        }
        guard let version = ProtocolVersion(bodyVersion), version.isStateless else {
            throw .unsupportedVersion(bodyVersion)
        }
        guard message.kind == .request || message.kind == .notification, let method = message.method else {
            return version
        }
        guard let methodHeader = header(MCPHeader.method) else {
            throw .headerMismatch("the Mcp-Method header is required and must equal the body's method '\(method)'")
        }
        guard methodHeader == method else {
            throw .headerMismatch("Mcp-Method header value '\(methodHeader)' does not match body value '\(method)'")
        }
        if let field = nameField(for: method) {
            let bodyName = message.params?[field]?.stringValue
            guard let rawName = header(MCPHeader.name) else {
                throw .headerMismatch("the Mcp-Name header is required for \(method) and must equal params.\(field)")
            }
            guard let name = decodeHeaderValue(rawName) else {
                throw .headerMismatch("Mcp-Name header value is not valid (bad =?base64?...?= encoding)")
            }
            guard name == bodyName else {
                throw .headerMismatch("Mcp-Name header value '\(name)' does not match body value '\(bodyName ?? "(missing)")'")
            }
        }
        return version
    }

    /// Decodes the `=?base64?...?=` sentinel form; plain values pass through.
    public static func decodeHeaderValue(_ value: String) -> String? {
        guard value.hasPrefix("=?base64?"), value.hasSuffix("?="), value.count >= 11 else { return value }
        let inner = value.dropFirst(9).dropLast(2)
        guard let data = Data(base64Encoded: String(inner)) else { return nil }
        return String(data: data, encoding: .utf8)
    }

    /// Encodes a value for `Mcp-Name`/`Mcp-Param-*`: plain when header-safe, else the base64 sentinel.
    public static func encodeHeaderValue(_ value: String) -> String {
        let safe = value.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }
            && value.first != " " && value.last != " "
            && !(value.hasPrefix("=?base64?") && value.hasSuffix("?="))
        if safe { return value }
        return "=?base64?" + Data(value.utf8).base64EncodedString() + "?="
    }
}
