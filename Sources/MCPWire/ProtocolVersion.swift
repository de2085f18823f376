/// MCP protocol revisions Gatehouse speaks, and the rules that differ between them.
public struct ProtocolVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: String

    public init?(_ rawValue: String) {
        guard Self.all.contains(where: { $0.rawValue == rawValue }) else { return nil }
        self.rawValue = rawValue
    }

    private init(known: String) { self.rawValue = known }

    public static let v2025_03_26 = ProtocolVersion(known: "2025-03-26")
    public static let v2025_06_18 = ProtocolVersion(known: "2025-06-18")
    public static let v2025_11_25 = ProtocolVersion(known: "2025-11-25")
    public static let v2026_07_28 = ProtocolVersion(known: "2026-07-28")

    /// Every revision Gatehouse accepts, newest first.
    public static let all: [ProtocolVersion] = [v2026_07_28, v2025_11_25, v2025_06_18, v2025_03_26]
    /// Revisions with the `initialize` handshake and `Mcp-Session-Id` sessions.
    public static let sessionEra: [ProtocolVersion] = [v2025_11_25, v2025_06_18, v2025_03_26]
    /// The newest session-era revision: what Gatehouse answers an `initialize` it cannot match.
    public static let latestSessionEra = v2025_11_25
    public static let latest = v2026_07_28

    /// Stateless revisions: per-request `_meta`, `server/discover`, no sessions.
    public var isStateless: Bool { self >= .v2026_07_28 }
    /// JSON-RPC batches were allowed only in 2025-03-26.
    public var allowsBatches: Bool { self == .v2025_03_26 }
    /// `MCP-Protocol-Version` header exists from 2025-06-18 on.
    public var hasVersionHeader: Bool { self >= .v2025_06_18 }

    public static func < (lhs: ProtocolVersion, rhs: ProtocolVersion) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { rawValue }

    public static var allRawValues: [JSONValue] { all.map { .string($0.rawValue) } }
}

/// `_meta` keys of the 2026-07-28 revision.
public enum MetaKey {
    public static let protocolVersion = "io.modelcontextprotocol/protocolVersion"
    public static let clientInfo = "io.modelcontextprotocol/clientInfo"
    public static let clientCapabilities = "io.modelcontextprotocol/clientCapabilities"
    public static let serverInfo = "io.modelcontextprotocol/serverInfo"
    public static let subscriptionID = "io.modelcontextprotocol/subscriptionId"
    public static let progressToken = "progressToken"
}

/// HTTP header names of Streamable HTTP (compared case-insensitively).
public enum MCPHeader {
    public static let sessionID = "Mcp-Session-Id"
    public static let protocolVersion = "MCP-Protocol-Version"
    public static let method = "Mcp-Method"
    public static let name = "Mcp-Name"
    public static let lastEventID = "Last-Event-ID"
}
