import GatehouseUpstream
import MCPWire
import Testing

@Suite("Version bridging between client and upstream revisions")
struct VersionBridgeTests {
    func request(_ text: String) throws -> JSONRPCMessage {
        try JSONRPCMessage(validating: try JSONParser.parse(text))
    }

    @Test("a stateless upstream gets the 2026-07-28 _meta keys")
    func addsMeta() throws {
        var message = try request(#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        VersionBridge.prepareRequest(&message, upstream: .v2026_07_28, client: ClientDescription(clientInfo: ["name": "c", "version": "1"], capabilities: [:]))
        let meta = message.params?["_meta"]?.objectValue
        #expect(meta?["io.modelcontextprotocol/protocolVersion"] == "2026-07-28")
        #expect(meta?["io.modelcontextprotocol/clientInfo"]?["name"] == "c")
        #expect(meta?["io.modelcontextprotocol/clientCapabilities"] == .object([:]))
    }

    @Test("a session-era upstream gets them removed, other _meta untouched")
    func stripsMeta() throws {
        var message = try request(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"progressToken":5,"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#)
        VersionBridge.prepareRequest(&message, upstream: .v2025_11_25, client: .gateway)
        #expect(JSONWriter.string(.object(message.object)) == #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"progressToken":5}}}"#)
    }

    @Test("stateless clients get resultType; session clients cannot get input_required")
    func results() throws {
        let plain = try request(#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#)
        let modern = VersionBridge.prepareResponse(plain, client: .v2026_07_28, method: .toolsList, upstreamName: "demo")
        #expect(modern.result?["resultType"] == "complete")
        #expect(modern.result?["ttlMs"] == 0)
        #expect(modern.result?["cacheScope"] == "private")
        let call = VersionBridge.prepareResponse(plain, client: .v2026_07_28, method: .toolsCall, upstreamName: "demo")
        #expect(call.result?["ttlMs"] == nil)
        #expect(VersionBridge.prepareResponse(plain, client: .v2025_11_25, method: .toolsList, upstreamName: "demo") == plain)
        let input = try request(#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","inputRequests":{}}}"#)
        let legacy = VersionBridge.prepareResponse(input, client: .v2025_06_18, method: .toolsCall, upstreamName: "demo")
        #expect(legacy.kind == .errorResponse)
        #expect(legacy.error?["message"]?.stringValue?.contains("demo") == true)
    }
}
