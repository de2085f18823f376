import MCPWire
import Synchronization

/// Label values from bounded sets, never straight from a request: a client that sent 3,000
/// distinct 4 KB method names made `/metrics` 457 MB. Methods outside the MCP specification,
/// tools no server listed, and error codes outside JSON-RPC's reserved range are all `other`.
enum MetricLabels {
    static let other = "other"

    /// A method as a label: the methods of every MCP revision Gatehouse serves (2025-03-26 to
    /// 2026-07-28) by name, anything else `other`.
    static func method(_ method: MCPMethod) -> String { method.isKnown ? method.name : other }

    /// A JSON-RPC error code: the reserved range (-32768 to -32000) as is, anything else `other`.
    static func errorCode(_ code: Int) -> String { (-32768 ... -32000).contains(code) ? String(code) : other }

    static let httpMethods: Set<String> = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]

    static func httpMethod(_ name: String) -> String { httpMethods.contains(name) ? name : other }
}

/// Tool names an endpoint has listed to its clients (as the clients see them), the set the
/// `gen_ai_tool_name` label may take. Bounded: past `limit` names, new ones are `other`.
final class KnownToolNames: Sendable {
    static let limit = 10_000
    /// Longer names are never label values.
    static let maxLength = 128
    private let names = Mutex<Set<String>>([])

    func learn(_ list: [JSONValue]) {
        names.withLock { names in
            for item in list where names.count < Self.limit {
                if let name = item["name"]?.stringValue, name.utf8.count <= Self.maxLength { names.insert(name) }
            }
        }
    }

    func learn(_ name: String) {
        names.withLock { names in
            if names.count < Self.limit, name.utf8.count <= Self.maxLength { names.insert(name) }
        }
    }

    func label(_ name: String) -> String {
        names.withLock { $0.contains(name) } ? name : MetricLabels.other
    }
}
