import MCPWire

/// The inputs and operations measured by the micro benchmarks. Each case returns a value
/// derived from its work so the optimiser cannot drop it.
public enum WireCases {
    /// A small 2026-07-28 `tools/call` as a client sends it (about 250 bytes).
    public static let smallToolsCall: [UInt8] = Array(#"""
    {"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"name":"echo","arguments":{"n":42,"text":"hello, gateway"}}}
    """#.utf8)

    /// A `tools/list` answer of about 32 KB: 64 tools with descriptions and input schemas.
    public static let largeToolsList: [UInt8] = {
        var tools: [String] = []
        var n = 0
        var size = 0
        while size < 32 * 1024 {
            let tool = #"{"name":"tool_\#(n)","title":"Tool number \#(n)","description":"Does thing \#(n) with the given path and options; returns a summary of what changed, with \"quoted\" words and a unicode é.","inputSchema":{"type":"object","properties":{"path":{"type":"string","description":"Where to act"},"recursive":{"type":"boolean","default":false},"depth":{"type":"integer","minimum":0,"maximum":32},"ratio":{"type":"number","default":0.5}},"required":["path"]},"annotations":{"readOnlyHint":\#(n % 2 == 0),"idempotentHint":true}}"#
            tools.append(tool)
            size += tool.utf8.count + 1
            n += 1
        }
        let body = #"{"jsonrpc":"2.0","id":7,"result":{"resultType":"complete","tools":["# + tools.joined(separator: ",") + "]}}"
        return Array(body.utf8)
    }()

    public static let smallMessage: JSONRPCMessage = try! decode(smallToolsCall)
    public static let largeMessage: JSONRPCMessage = try! decode(largeToolsList)
    public static let smallFramed: [UInt8] = SSEEncoder.message(smallToolsCall)
    public static let largeFramed: [UInt8] = SSEEncoder.message(largeToolsList)

    /// Parse + envelope validation, what the gateway does for every request body.
    public static func decode(_ bytes: [UInt8]) throws -> JSONRPCMessage {
        try JSONRPCMessage(validating: JSONParser.parse(bytes))
    }

    public static func decodeSmall() -> Int { (try? decode(smallToolsCall))?.object.count ?? -1 }
    public static func decodeLarge() -> Int { (try? decode(largeToolsList))?.object.count ?? -1 }
    public static func encodeSmall() -> Int { smallMessage.bytes.count }
    public static func encodeLarge() -> Int { largeMessage.bytes.count }
    public static func sseFrameSmall() -> Int { SSEEncoder.message(smallToolsCall).count }
    public static func sseFrameLarge() -> Int { SSEEncoder.message(largeToolsList).count }
    public static func sseParseSmall() -> Int {
        var parser = SSEParser()
        return (try? parser.feed(smallFramed))?.first?.data.utf8.count ?? -1
    }
    public static func sseParseLarge() -> Int {
        var parser = SSEParser()
        return (try? parser.feed(largeFramed))?.first?.data.utf8.count ?? -1
    }
    public static func sessionID() -> Int { SessionID.generate().utf8.count }

    /// Every case by name, in report order.
    public static let all: [(name: String, run: @Sendable () -> Int)] = [
        ("envelope-decode-tools-call-small", decodeSmall),
        ("envelope-encode-tools-call-small", encodeSmall),
        ("envelope-decode-tools-list-32k", decodeLarge),
        ("envelope-encode-tools-list-32k", encodeLarge),
        ("sse-frame-small", sseFrameSmall),
        ("sse-frame-32k", sseFrameLarge),
        ("sse-parse-small", sseParseSmall),
        ("sse-parse-32k", sseParseLarge),
        ("session-id-generate", sessionID),
    ]
}
