import Crypto
import Foundation
import GatehouseUpstream
import MCPWire

/// Seals what a session needs into its `Mcp-Session-Id`, so any replica holding the same key
/// can serve it.
///
/// Design note: the id is AES-256-GCM (random 96-bit nonce) over a small JSON document: the
/// negotiated revision, the identity, the client's info and capabilities, and the id of each
/// upstream session opened for it. The key is derived once at startup with HKDF-SHA256 from
/// `spec.sessions.key` (random per process when unset). A replica that does not hold the session
/// in memory opens the id and resumes the upstream sessions by their ids; a tampered id, or one
/// sealed under another key, fails authentication and the client gets 404. What is not in the id
/// stays with the replica that had it: an open GET stream and server-to-client requests in flight.
/// Stdio servers are per replica, so a resumed session talks to this replica's process.
struct SessionSealer: Sendable {
    private let key: SymmetricKey

    init(secret: String?) {
        if let secret {
            key = HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: Data(secret.utf8)), salt: Data("gatehouse".utf8),
                info: Data("gatehouse session id v1".utf8), outputByteCount: 32)
        } else {
            key = SymmetricKey(size: .bits256)
        }
    }

    struct Contents: Equatable {
        var version: ProtocolVersion
        var identity: String
        var client: ClientDescription
        /// Server name -> upstream `Mcp-Session-Id`.
        var upstreamSessions: [String: String]

        static func == (lhs: Contents, rhs: Contents) -> Bool {
            lhs.version == rhs.version && lhs.identity == rhs.identity && lhs.upstreamSessions == rhs.upstreamSessions
                && lhs.client.clientInfo == rhs.client.clientInfo && lhs.client.capabilities == rhs.client.capabilities
        }
    }

    func seal(_ contents: Contents) -> String {
        var rng = SystemRandomNumberGenerator()
        let document: JSONValue = [
            "v": 1,
            "p": .string(contents.version.rawValue),
            "i": .string(contents.identity),
            "ci": .object(contents.client.clientInfo),
            "cc": .object(contents.client.capabilities),
            "u": .object(JSONObject(contents.upstreamSessions.sorted { $0.key < $1.key }.map { (key: $0.key, value: .string($0.value)) })),
            // 128 random bits, so two sessions of the same client never share an id.
            "r": .string(String(rng.next(), radix: 36) + String(rng.next(), radix: 36)),
        ]
        // Sealing with a fresh random nonce cannot fail for a valid key.
        let box = try! AES.GCM.seal(Data(JSONWriter.bytes(document)), using: key)
        return Base64URL.encode(box.combined!)
    }

    /// Nil when the id was not sealed by this key (tampered, foreign, or not a sealed id).
    func open(_ id: String) -> Contents? {
        guard id.count <= 8192, let data = Base64URL.decode(id), data.count > 28,
            let box = try? AES.GCM.SealedBox(combined: data),
            let plain = try? AES.GCM.open(box, using: key),
            let value = try? JSONParser.parse(Array(plain), maxDepth: 32), value["v"] == 1,
            let version = value["p"]?.stringValue.flatMap(ProtocolVersion.init),
            let identity = value["i"]?.stringValue
        else { return nil }
        var upstream: [String: String] = [:]
        for entry in value["u"]?.objectValue ?? [:] {
            if let id = entry.value.stringValue { upstream[entry.key] = id }
        }
        return Contents(
            version: version, identity: identity,
            client: ClientDescription(clientInfo: value["ci"]?.objectValue ?? [:], capabilities: value["cc"]?.objectValue ?? [:]),
            upstreamSessions: upstream)
    }

}
