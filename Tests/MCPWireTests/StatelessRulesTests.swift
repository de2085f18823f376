import Testing
@testable import MCPWire

@Suite("2026-07-28 request rules")
struct StatelessRulesTests {
    func call(_ name: String = "echo", version: String = "2026-07-28") throws -> JSONRPCMessage {
        try JSONRPCMessage(validating: try JSONParser.parse(
            #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\#(name)","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"\#(version)"}}}"#))
    }

    func headers(_ pairs: [String: String]) -> (String) -> String? {
        { name in pairs.first { $0.key.lowercased() == name.lowercased() }?.value }
    }

    @Test("matching headers pass")
    func ok() throws {
        let version = try StatelessRequestRules.check(try call(), header: headers([
            "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo",
        ]))
        #expect(version == .v2026_07_28)
    }

    @Test("Mcp-Name mismatch, missing headers and version mismatch are -32020")
    func mismatch() throws {
        for hs in [
            ["MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "other"],
            ["MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list", "Mcp-Name": "echo"],
            ["MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call"],
            ["Mcp-Method": "tools/call", "Mcp-Name": "echo"],
            ["MCP-Protocol-Version": "2025-11-25", "Mcp-Method": "tools/call", "Mcp-Name": "echo"],
        ] {
            do {
                _ = try StatelessRequestRules.check(try call(), header: headers(hs))
                Issue.record("expected a rejection for \(hs)")
            } catch let error as WireRejection {
                #expect(error.code == -32020)
                #expect(error.httpStatus == 400)
            }
        }
    }

    @Test("an unknown version is -32022 listing the supported versions")
    func unsupported() throws {
        do {
            _ = try StatelessRequestRules.check(try call(version: "1900-01-01"), header: headers([
                "MCP-Protocol-Version": "1900-01-01", "Mcp-Method": "tools/call", "Mcp-Name": "echo",
            ]))
            Issue.record("expected a rejection")
        } catch let error as WireRejection {
            #expect(error.code == -32022)
            #expect(error.data?["supported"]?.arrayValue?.contains("2026-07-28") == true)
            #expect(error.data?["requested"] == "1900-01-01")
        }
    }

    @Test("base64 sentinel names are decoded before comparing")
    func base64() throws {
        let encoded = StatelessRequestRules.encodeHeaderValue("héllo")
        #expect(encoded == "=?base64?aMOpbGxv?=")
        _ = try StatelessRequestRules.check(try call("héllo"), header: headers([
            "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": encoded,
        ]))
        #expect(StatelessRequestRules.encodeHeaderValue("plain") == "plain")
        #expect(StatelessRequestRules.decodeHeaderValue("=?base64?!!!?=") == nil)
    }
}

@Suite("Protocol versions and session ids")
struct VersionAndSessionTests {
    @Test("eras and batch rules")
    func eras() {
        #expect(ProtocolVersion("2026-07-28")?.isStateless == true)
        #expect(ProtocolVersion("2025-11-25")?.isStateless == false)
        #expect(ProtocolVersion("2025-03-26")?.allowsBatches == true)
        #expect(ProtocolVersion("2025-06-18")?.allowsBatches == false)
        #expect(ProtocolVersion("2024-11-05") == nil)
    }

    @Test("session ids are long, visible ASCII and distinct")
    func sessionIDs() {
        var seen = Set<String>()
        for _ in 0..<1000 {
            let id = SessionID.generate()
            #expect(id.count == 43)
            #expect(SessionID.isWellFormed(id))
            seen.insert(id)
        }
        #expect(seen.count == 1000)
        #expect(!SessionID.isWellFormed("bad id"))
        #expect(!SessionID.isWellFormed(""))
    }
}
