import GatehouseConfig
import GatehouseUpstream
import MCPWire
import Testing

@Suite("Federation naming, cursors and capabilities")
struct FederationNamesTests {
    func names(_ prefix: GatewayConfig.Naming.Prefix, servers: [String] = ["files", "github"]) -> FederationNames {
        FederationNames(servers: servers, naming: GatewayConfig.Naming(), prefix: prefix)
    }

    @Test("always: every name is prefixed and resolves back")
    func always() {
        let n = names(.always)
        #expect(n.expose("read", server: 0, kind: .tool) == "files__read")
        #expect(n.resolve("github__create_issue", kind: .tool)! == (1, "create_issue"))
        #expect(n.resolve("nobody__x", kind: .tool) == nil)
    }

    @Test("on-collision: only names two servers share are prefixed")
    func onCollision() {
        let n = names(.onCollision)
        n.learn(["search", "read"], server: 0, kind: .tool)
        n.learn(["search", "issue"], server: 1, kind: .tool)
        #expect(n.expose("read", server: 0, kind: .tool) == "read")
        #expect(n.expose("search", server: 0, kind: .tool) == "files__search")
        #expect(n.expose("search", server: 1, kind: .tool) == "github__search")
        #expect(n.expose("search", server: 1, kind: .prompt) == "search")  // kinds are separate
    }

    @Test("never: a shared name is a collision that names both servers")
    func never() {
        let n = names(.never)
        n.learn(["search"], server: 0, kind: .tool)
        n.learn(["search"], server: 1, kind: .tool)
        #expect(n.expose("search", server: 1, kind: .tool) == "search")
        #expect(n.collision(for: "search", kind: .tool)! == ("files", "github"))
        #expect(n.collision(for: "other", kind: .tool) == nil)
    }

    @Test("names over 64 characters get a stable alias that resolves once listed")
    func longNames() {
        let server = "a-server-with-quite-a-long-name"
        let n = names(.always, servers: [server, "b"])
        let tool = "a_tool_whose_name_is_long_enough_to_overflow"
        let exposed = n.expose(tool, server: 0, kind: .tool)
        #expect(exposed.count == 64)
        #expect(exposed == FederationNames.alias(server + "__" + tool))  // deterministic
        #expect(exposed != FederationNames.alias(server + "__" + tool + "2"))
        #expect(exposed.hasPrefix(String((server + "__" + tool).prefix(55)) + "_"))
        n.remember(exposed: exposed, server: 0, name: tool, kind: .tool)
        #expect(n.resolve(exposed, kind: .tool)! == (0, tool))
        #expect(FederationNames.alias("short") == "short")
    }

    @Test("URIs get the server as a scheme prefix, in results too")
    func uris() {
        let n = names(.always)
        #expect(n.exposeURI("demo://readme", server: 1) == "github+demo://readme")
        #expect(n.resolveURI("github+demo://items/4")! == (1, "demo://items/4"))
        #expect(n.resolveURI("unknown+demo://x") == nil)
        #expect(n.resolveURI("demo://x") == nil)
        let result: JSONValue = ["contents": [["uri": "demo://a", "text": "t"]], "_meta": ["uri": "keep"]]
        let mapped = n.exposeURIs(in: result, server: 0)
        #expect(mapped["contents"]?.arrayValue?.first?["uri"] == "files+demo://a")
        #expect(mapped["_meta"]?["uri"] == "keep")
        let single = names(.never, servers: ["only"])
        #expect(single.exposeURI("demo://a", server: 0) == "demo://a")
    }

    @Test("cursors round-trip and reject what Gatehouse did not make")
    func cursors() {
        let cursor = FederatedCursor(positions: [("files", "abc"), ("github", "")])
        #expect(FederatedCursor(decoding: cursor.encoded, servers: ["files", "github"]) == cursor)
        #expect(FederatedCursor(decoding: cursor.encoded, servers: ["files"]) == nil)
        #expect(FederatedCursor(decoding: "not-a-cursor", servers: ["files"]) == nil)
        #expect(FederatedCursor(decoding: "", servers: ["files"]) == nil)
    }

    @Test("capabilities are the union, booleans OR-ed")
    func capabilities() {
        let merged = CapabilityUnion.merge([
            ["tools": ["listChanged": false]],
            ["tools": ["listChanged": true], "resources": ["subscribe": true]],
            ["logging": [:]],
        ])
        #expect(merged["tools"]?["listChanged"] == true)
        #expect(merged["resources"]?["subscribe"] == true)
        #expect(merged["logging"] == .object([:]))
    }
}
