import GatehouseUpstream
import MCPWire
import Testing
@testable import GatehouseServer

@Suite("Sealed session ids")
struct SessionSealerTests {
    let contents = SessionSealer.Contents(
        version: .v2025_06_18, identity: "anonymous:anonymous",
        client: ClientDescription(clientInfo: ["name": "c", "version": "1"], capabilities: ["roots": [:]]),
        upstreamSessions: ["files": "abc123", "github": "def"])

    @Test("a replica with the same key opens what another sealed")
    func roundTrip() throws {
        let a = SessionSealer(secret: String(repeating: "s", count: 40))
        let b = SessionSealer(secret: String(repeating: "s", count: 40))
        let id = a.seal(contents)
        #expect(SessionID.isWellFormed(id))
        #expect(b.open(id) == contents)
        #expect(a.seal(contents) != id)  // random nonce and salt: never the same id twice
    }

    @Test("tampered, foreign and garbage ids do not open")
    func rejects() {
        let a = SessionSealer(secret: String(repeating: "s", count: 40))
        let other = SessionSealer(secret: String(repeating: "t", count: 40))
        let id = a.seal(contents)
        #expect(other.open(id) == nil)
        var bytes = Array(id)
        bytes[bytes.count / 2] = bytes[bytes.count / 2] == "A" ? "B" : "A"
        #expect(a.open(String(bytes)) == nil)
        #expect(a.open("not-a-session") == nil)
        #expect(a.open("") == nil)
        #expect(SessionSealer(secret: nil).open(id) == nil)
    }
}
