import Crypto
import Foundation
import GatehouseConfig
import MCPWire

/// How names and URIs of several upstream servers are exposed through one endpoint.
///
/// Design note:
/// - Tools and prompts are exposed as `<server><separator><name>` per the prefix mode
///   (`always`, `never`, `on-collision`; the default is `always` with several servers and
///   `never` with one). Everything in a definition except its `name` passes through unchanged.
/// - A prefixed name longer than 64 characters becomes a stable alias: its first 55
///   characters, `_`, and the first 8 hex digits of SHA-256 of the full prefixed name. The same
///   server and tool always give the same alias, on every replica.
/// - Resource URIs and URI templates of a multi-server endpoint get the server as a scheme
///   prefix: `demo://readme` on server `files` is exposed as `files+demo://readme` — still a
///   well-formed URI (scheme characters allow `+`), and templates still expand. Single-server
///   endpoints expose URIs unchanged.
/// - Resolving a name back uses the table filled by lists (needed for aliases and for `never`/
///   `on-collision`), then parsing the prefix.
public final class FederationNames: @unchecked Sendable {
    public enum Kind: String, Sendable { case tool, prompt }

    public let servers: [String]
    public let separator: String
    public let prefix: GatewayConfig.Naming.Prefix
    public static let maxToolName = 64

    private let lock = NSLock()
    /// Exposed name -> (server index, original name), per kind.
    private var tables: [Kind: [String: (server: Int, name: String)]] = [:]
    /// Original name -> servers offering it, per kind (for on-collision).
    private var offeredBy: [Kind: [String: Set<Int>]] = [:]

    public init(servers: [String], naming: GatewayConfig.Naming, prefix: GatewayConfig.Naming.Prefix) {
        self.servers = servers
        self.separator = naming.separator
        self.prefix = prefix
    }

    public var rewritesURIs: Bool { servers.count > 1 }

    // MARK: Names

    /// The name clients see for `name` on `server`.
    public func expose(_ name: String, server: Int, kind: Kind) -> String {
        let prefixed: Bool
        switch prefix {
        case .always: prefixed = true
        case .never: prefixed = false
        case .onCollision: prefixed = lock.withLock { (offeredBy[kind]?[name]?.count ?? 0) > 1 }
        }
        guard prefixed else { return name }
        return Self.alias(servers[server] + separator + name)
    }

    /// Applies the 64-character rule.
    public static func alias(_ full: String) -> String {
        guard full.count > maxToolName else { return full }
        let digest = SHA256.hash(data: Data(full.utf8)).prefix(4).map { String(format: "%02x", $0) }.joined()
        return String(full.prefix(maxToolName - 9)) + "_" + digest
    }

    /// Records the names a server listed (so collisions and aliases can be resolved).
    public func learn(_ names: [String], server: Int, kind: Kind) {
        lock.withLock {
            for name in names { offeredBy[kind, default: [:]][name, default: []].insert(server) }
        }
    }

    /// Checks `never` mode: two servers offering one name is an error naming both.
    public func collision(for name: String, kind: Kind) -> (String, String)? {
        guard prefix == .never else { return nil }
        let owners = lock.withLock { offeredBy[kind]?[name] ?? [] }.sorted()
        guard owners.count > 1 else { return nil }
        return (servers[owners[0]], servers[owners[1]])
    }

    public func remember(exposed: String, server: Int, name: String, kind: Kind) {
        lock.withLock { tables[kind, default: [:]][exposed] = (server, name) }
    }

    /// Which server owns an exposed name, and its name there.
    public func resolve(_ exposed: String, kind: Kind) -> (server: Int, name: String)? {
        if let known = lock.withLock({ tables[kind]?[exposed] }) { return known }
        if servers.count == 1, prefix == .never { return (0, exposed) }
        guard prefix != .never else { return nil }
        // Parse `<server><separator><name>`; the longest matching server name wins.
        var best: (Int, String)?
        for (index, server) in servers.enumerated() where exposed.hasPrefix(server + separator) {
            if best == nil || server.count > servers[best!.0].count {
                best = (index, String(exposed.dropFirst(server.count + separator.count)))
            }
        }
        if let best, exposed.count < Self.maxToolName || Self.alias(servers[best.0] + separator + best.1) == exposed {
            return best
        }
        return nil
    }

    // MARK: URIs

    public func exposeURI(_ uri: String, server: Int) -> String {
        rewritesURIs ? servers[server] + "+" + uri : uri
    }

    public func resolveURI(_ exposed: String) -> (server: Int, uri: String)? {
        guard rewritesURIs else { return (0, exposed) }
        guard let plus = exposed.firstIndex(of: "+") else { return nil }
        let name = String(exposed[..<plus])
        guard let index = servers.firstIndex(of: name) else { return nil }
        return (index, String(exposed[exposed.index(after: plus)...]))
    }

    /// Rewrites every resource URI inside a result (embedded resources, resource links,
    /// `contents` of resources/read) from the server's form to the exposed form.
    public func exposeURIs(in value: JSONValue, server: Int) -> JSONValue {
        guard rewritesURIs else { return value }
        switch value {
        case .object(var object):
            for index in object.entries.indices {
                let key = object.entries[index].key
                if key == "uri" || key == "uriTemplate", case .string(let uri) = object.entries[index].value {
                    object.setValue(.string(exposeURI(uri, server: server)), at: index)
                } else if key != "_meta" {
                    object.setValue(exposeURIs(in: object.entries[index].value, server: server), at: index)
                }
            }
            return .object(object)
        case .array(let items):
            return .array(items.map { exposeURIs(in: $0, server: server) })
        default:
            return value
        }
    }
}

/// The opaque cursor of a federated list: each server's own cursor ("" for its first page),
/// only for servers with more to give. base64url of compact JSON.
public struct FederatedCursor: Sendable, Equatable {
    public var positions: [(server: String, cursor: String)]

    public init(positions: [(server: String, cursor: String)]) { self.positions = positions }

    public static func == (lhs: FederatedCursor, rhs: FederatedCursor) -> Bool {
        lhs.positions.map(\.server) == rhs.positions.map(\.server) && lhs.positions.map(\.cursor) == rhs.positions.map(\.cursor)
    }

    public var encoded: String {
        let object = JSONObject(positions.map { (key: $0.server, value: JSONValue.string($0.cursor)) })
        return Base64URL.encode(Data(JSONWriter.bytes(["v": 1, "p": .object(object)])))
    }

    /// Nil when the text is not a cursor Gatehouse made for these servers.
    public init?(decoding text: String, servers: [String]) {
        guard text.count < 16 << 10, let data = Base64URL.decode(text),
            let value = try? JSONParser.parse(Array(data), maxDepth: 4), value["v"] == 1,
            let object = value["p"]?.objectValue
        else { return nil }
        var positions: [(server: String, cursor: String)] = []
        for entry in object {
            guard servers.contains(entry.key), case .string(let cursor) = entry.value else { return nil }
            positions.append((entry.key, cursor))
        }
        self.positions = positions
    }
}

/// The union of several servers' capabilities: an object key present anywhere is present,
/// booleans are OR-ed (so `listChanged` is true if any server announces changes).
public enum CapabilityUnion {
    public static func merge(_ all: [JSONObject]) -> JSONObject {
        var result = JSONObject()
        for capabilities in all { result = merge(result, capabilities) }
        return result
    }

    static func merge(_ a: JSONObject, _ b: JSONObject) -> JSONObject {
        var result = a
        for entry in b {
            switch (result[entry.key], entry.value) {
            case (nil, let value): result[entry.key] = value
            case (.object(let x)?, .object(let y)): result[entry.key] = .object(merge(x, y))
            case (.bool(let x)?, .bool(let y)): result[entry.key] = .bool(x || y)
            default: break
            }
        }
        return result
    }
}
