import GatehouseUpstream
import HTTPTypes
import MCPWire
import Testing
@testable import GatehouseServer

/// The whole request path, in process, with fake upstreams: what a client sends, what it gets
/// back, and what reached the servers. Each test builds its own endpoint (no shared state).

private let tool = #"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#

@Suite("Request path: bad input at the edge")
struct PipelineEdgeTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var body: String
        var headers: [String: String] = [:]
        var contentType: String? = "application/json"
        var accept: String? = "application/json, text/event-stream"
        var method: HTTPRequest.Method = .post
        var status: Int
        var code: Int
        var says: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "Accept lists neither JSON nor SSE", body: tool, accept: "text/html", status: 406, code: -32600, says: "Accept"),
        Case(name: "no Content-Type", body: tool, contentType: nil, status: 415, code: -32600, says: "application/json"),
        Case(name: "Content-Type text/plain", body: tool, contentType: "text/plain", status: 415, code: -32600, says: "application/json"),
        Case(name: "Content-Type application/jsonx", body: tool, contentType: "application/jsonx", status: 415, code: -32600, says: "application/json"),
        Case(name: "invalid JSON", body: "{\"jsonrpc\":", status: 400, code: -32700, says: "Parse error"),
        Case(name: "empty body", body: "", status: 400, code: -32700, says: "Parse error"),
        Case(name: "trailing garbage", body: tool + "x", status: 400, code: -32700, says: "Parse error"),
        Case(name: "nesting too deep", body: String(repeating: "[", count: 300) + String(repeating: "]", count: 300), status: 400, code: -32600, says: "maxJSONDepth"),
        Case(name: "a JSON string", body: "\"hello\"", status: 400, code: -32600, says: "JSON object"),
        Case(name: "no jsonrpc member", body: #"{"id":1,"method":"ping"}"#, status: 400, code: -32600, says: "jsonrpc"),
        Case(name: "jsonrpc 1.0", body: #"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, status: 400, code: -32600, says: "2.0"),
        Case(name: "method not a string", body: #"{"jsonrpc":"2.0","id":1,"method":5}"#, status: 400, code: -32600, says: "method"),
        Case(name: "params an array", body: #"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[]}"#, status: 400, code: -32600, says: "params"),
        Case(name: "id null", body: #"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#, status: 400, code: -32600, says: "id"),
        Case(name: "id a float", body: #"{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}"#, status: 400, code: -32600, says: "id"),
        Case(name: "neither method nor result", body: #"{"jsonrpc":"2.0","id":1}"#, status: 400, code: -32600, says: "method"),
        Case(name: "error without code", body: #"{"jsonrpc":"2.0","id":1,"error":{"message":"x"}}"#, status: 400, code: -32600, says: "code"),
        Case(name: "batch outside 2025-03-26", body: "[\(tool)]", status: 400, code: -32600, says: "one message per POST"),
        Case(name: "unknown MCP-Protocol-Version", body: tool, headers: ["MCP-Protocol-Version": "1999-01-01"], status: 400, code: -32022, says: "1999-01-01"),
        Case(name: "missing Mcp-Session-Id", body: tool, status: 400, code: -32600, says: "initialize"),
        Case(name: "unknown session", body: tool, headers: ["Mcp-Session-Id": "not-a-session"], status: 404, code: -32600, says: "Session not found"),
        Case(name: "PUT", body: tool, method: .put, status: 405, code: -32600, says: "POST"),
        Case(name: "GET without a session", body: "", method: .get, status: 400, code: -32600, says: "Mcp-Session-Id"),
        Case(name: "GET in 2026-07-28", body: "", headers: ["MCP-Protocol-Version": "2026-07-28"], method: .get, status: 405, code: -32600, says: "subscriptions/listen"),
        Case(name: "DELETE without a session", body: "", method: .delete, status: 400, code: -32600, says: "Mcp-Session-Id"),
        Case(name: "DELETE an unknown session", body: "", headers: ["Mcp-Session-Id": "nope"], method: .delete, status: 404, code: -32600, says: "Session not found"),
        Case(name: "Host not allowed", body: tool, headers: ["Host": "evil.example"], status: 403, code: -32600, says: "allowedHosts"),
        Case(name: "Origin not allowed", body: tool, headers: ["Origin": "https://evil.example"], status: 403, code: -32600, says: "allowedOrigins"),
        Case(name: "both result and error", body: #"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}"#, status: 400, code: -32600, says: "not both"),
        Case(name: "2026-07-28 initialize", body: #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
             headers: ["MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "initialize"], status: 404, code: -32601, says: "initialize does not exist"),
    ]

    @Test(arguments: cases)
    func refused(_ c: Case) async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let answer = try await harness.send(c.method, body: c.body, headers: c.headers, contentType: c.contentType, accept: c.accept)
        #expect(answer.status == c.status, "\(answer.text)")
        #expect(answer.code == c.code, "\(answer.text)")
        #expect(answer.error?["message"]?.stringValue?.contains(c.says) == true, "\(answer.text)")
        #expect(harness.fakes["demo"]!.requests.isEmpty, "nothing reached the server")
        // The gateway keeps serving.
        let session = try await harness.initialize()
        #expect(try await harness.tool(session, "echo").status == 200)
    }

    @Test("a body over maxBodyBytes is refused with the limit and its key")
    func tooLarge() async throws {
        let harness = try await PipelineHarness("  limits: {maxBodyBytes: 1024}\n", servers: [FakeServer(name: "demo")])
        let big = #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":""# + String(repeating: "a", count: 2000) + "\"}}}"
        let answer = try await harness.post(big)
        #expect(answer.status == 413 && answer.code == -32600)
        #expect(answer.error?["message"]?.stringValue?.contains("spec.limits.maxBodyBytes") == true)
    }

    struct ParamsCase: Sendable, CustomTestStringConvertible {
        var method: String
        var params: String
        var says: String
        var testDescription: String { "\(method) \(params)" }
    }

    static let paramsCases: [ParamsCase] = [
        ParamsCase(method: "tools/call", params: "{}", says: "params.name"),
        ParamsCase(method: "tools/call", params: #"{"name":5}"#, says: "params.name"),
        ParamsCase(method: "tools/call", params: #"{"name":"echo","arguments":[1]}"#, says: "arguments"),
        ParamsCase(method: "tools/call", params: #"{"name":"echo","arguments":"x"}"#, says: "arguments"),
        ParamsCase(method: "prompts/get", params: "{}", says: "params.name"),
        ParamsCase(method: "resources/read", params: "{}", says: "params.uri"),
        ParamsCase(method: "resources/read", params: #"{"uri":{}}"#, says: "params.uri"),
        ParamsCase(method: "resources/subscribe", params: "{}", says: "params.uri"),
        ParamsCase(method: "resources/unsubscribe", params: "{}", says: "params.uri"),
        ParamsCase(method: "completion/complete", params: "{}", says: "params.ref"),
        ParamsCase(method: "completion/complete", params: #"{"ref":"x"}"#, says: "params.ref"),
        ParamsCase(method: "tools/list", params: #"{"cursor":5}"#, says: "params.cursor"),
        ParamsCase(method: "prompts/list", params: #"{"cursor":{}}"#, says: "params.cursor"),
        ParamsCase(method: "resources/list", params: #"{"cursor":true}"#, says: "params.cursor"),
        ParamsCase(method: "resources/templates/list", params: #"{"cursor":[]}"#, says: "params.cursor"),
        ParamsCase(method: "logging/setLevel", params: "{}", says: "params.level"),
        ParamsCase(method: "logging/setLevel", params: #"{"level":"bogus"}"#, says: "params.level"),
        ParamsCase(method: "prompts/get", params: #"{"name":"greet","arguments":{"n":5}}"#, says: "string"),
    ]

    @Test("params a known method cannot use are -32602 naming the request, in both eras", arguments: paramsCases)
    func invalidParams(_ c: ParamsCase) async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        let answer = try await harness.send(body: #"{"jsonrpc":"2.0","id":"r1","method":"\#(c.method)","params":\#(c.params)}"#,
                                            headers: ["Mcp-Session-Id": session])
        #expect(answer.code == -32602, "\(answer.text)")
        #expect(answer.json?["id"] == "r1")
        #expect(answer.error?["message"]?.stringValue?.contains(c.says) == true, "\(answer.text)")
        #expect(harness.fakes["demo"]!.requests.isEmpty)
        // The same request from a 2026-07-28 client.
        let params = try #require(try JSONParser.parse(Array(c.params.utf8)).objectValue)
        let stateless = try await harness.stateless(c.method, id: 5, params: params)
        #expect(stateless.code == -32602 && stateless.json?["id"] == 5, "\(stateless.text)")
        #expect(harness.fakes["demo"]!.requests.isEmpty)
    }
}

@Suite("Request path: both eras")
struct PipelineEraTests {
    @Test("a session: initialize, list, call, ping, notifications, DELETE", arguments: ["2025-03-26", "2025-06-18", "2025-11-25"])
    func session(_ version: String) async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize(version)
        let list = try await harness.call(session, "tools/list", version: version)
        #expect(list.result?["tools"]?.arrayValue?.count == FakeServer.standardTools.count)
        let call = try await harness.tool(session, "echo", arguments: ["text": "hello"])
        #expect(call.status == 200 && call.result?["content"]?[0]?["text"] == "demo: hello")
        #expect(call.json?["id"] == 1, "the client's id comes back")
        #expect(try await harness.call(session, "ping", id: 9).json?["result"] == .object([:]))
        let note = try await harness.send(body: #"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#, headers: ["Mcp-Session-Id": session])
        #expect(note.status == 202)
        #expect(harness.fakes["demo"]!.notifications.map(\.method) == ["notifications/roots/list_changed"])
        let initialized = try await harness.send(body: #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, headers: ["Mcp-Session-Id": session])
        #expect(initialized.status == 202 && harness.fakes["demo"]!.notifications.count == 1, "the gateway ran the upstream handshake itself")
        let again = try await harness.send(body: #"{"jsonrpc":"2.0","id":3,"method":"initialize","params":{}}"#, headers: ["Mcp-Session-Id": session])
        let fresh = again.headers[HTTPField.Name("Mcp-Session-Id")!]
        #expect(again.status == 200 && fresh != nil && fresh != session, "initialize always starts a new session")
        #expect(try await harness.send(.delete, body: "", headers: ["Mcp-Session-Id": session]).status == 204)
        #expect(try await harness.tool(session, "echo").status == 404, "an ended session is not found")
    }

    @Test("a session's version header must match the negotiated one")
    func versionMismatch() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize("2025-06-18")
        let answer = try await harness.call(session, "tools/list", version: "2025-11-25")
        #expect(answer.status == 400 && answer.error?["message"]?.stringValue?.contains("does not match") == true)
    }

    @Test("2025-03-26 batches: each request takes the path; bad items get their own errors")
    func batchesIn20250326() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize("2025-03-26")
        let batch = "[" + [
            #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a"}}}"#,
            #"{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
            #"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}"#,
            #"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#,
            #"{"id":4}"#,
        ].joined(separator: ",") + "]"
        let answer = try await harness.send(body: batch, headers: ["Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-03-26"])
        let answers = answer.json?.arrayValue ?? []
        #expect(answer.status == 200 && answers.count == 4, "\(answer.text)")
        #expect(answers[0]["result"]?["content"]?[0]?["text"] == "demo: a")
        #expect(answers[1]["result"] == .object([:]))
        #expect(answers[2]["error"]?["code"] == -32602)
        #expect(answers[3]["error"]?["code"] == -32600)
        #expect(harness.fakes["demo"]!.notifications.count == 1)
        let empty = try await harness.send(body: "[]", headers: ["Mcp-Session-Id": session])
        #expect(empty.status == 400 && empty.error?["message"]?.stringValue?.contains("empty batch") == true)
    }

    @Test("2026-07-28: discover, ping, call, list, with the header rules")
    func stateless() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let discover = try await harness.stateless("server/discover")
        #expect(discover.result?["resultType"] == "complete")
        #expect(discover.result?["supportedVersions"]?.arrayValue?.contains("2026-07-28") == true)
        #expect(try await harness.stateless("ping").result?["resultType"] == "complete")
        let call = try await harness.stateless("tools/call", params: ["name": "echo", "arguments": ["text": "x"]], name: "echo")
        #expect(call.status == 200 && call.result?["content"]?[0]?["text"] == "demo: x")
        #expect(call.result?["resultType"] == "complete", "a session-era server's answer is bridged")
        let list = try await harness.stateless("tools/list")
        #expect(list.result?["ttlMs"] == 0 && list.result?["cacheScope"] == "private", "nothing said about caching: private, not cached")
        #expect(harness.fakes["demo"]!.channelsOpened == 1, "one pooled upstream session per identity")
    }

    struct HeaderCase: Sendable, CustomTestStringConvertible {
        var name: String
        var headers: [String: String]
        var code: Int
        var testDescription: String { name }
    }

    static let headerCases: [HeaderCase] = [
        HeaderCase(name: "Mcp-Method differs", headers: ["Mcp-Method": "tools/list"], code: -32020),
        HeaderCase(name: "Mcp-Name differs", headers: ["Mcp-Name": "other"], code: -32020),
        HeaderCase(name: "version header differs from _meta", headers: ["MCP-Protocol-Version": "2025-11-25"], code: -32020),
    ]

    @Test("2026-07-28 header/body mismatches are -32020 and reach no server", arguments: headerCases)
    func headerMismatch(_ c: HeaderCase) async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let answer = try await harness.stateless("tools/call", params: ["name": "echo"], name: "echo", headers: c.headers)
        #expect(answer.status == 400 && answer.code == c.code, "\(answer.text)")
        #expect(harness.fakes["demo"]!.requests.isEmpty)
    }

    @Test("2026-07-28: an unknown method is HTTP 404 with -32601; responses and notifications")
    func statelessEdges() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let unknown = try await harness.stateless("nonsense/method")
        #expect(unknown.status == 404 && unknown.code == -32601)
        let response = try await harness.send(body: #"{"jsonrpc":"2.0","id":1,"result":{},"params":{}}"#, headers: ["MCP-Protocol-Version": "2026-07-28"])
        #expect(response.status == 400)
    }
}

@Suite("Request path: federation")
struct PipelineFederationTests {
    func two(_ spec: String = "", pageSize: Int? = nil) async throws -> PipelineHarness {
        try await PipelineHarness(spec, servers: [FakeServer(name: "a", pageSize: pageSize), FakeServer(name: "b", pageSize: pageSize)])
    }

    @Test("lists merge in server order under prefixed names; calls reach the owner under its own name")
    func namesAndRouting() async throws {
        let harness = try await two()
        let session = try await harness.initialize()
        let names = try await harness.call(session, "tools/list").result?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
        #expect(names == FakeServer.standardTools.map { "a__" + $0["name"]!.stringValue! } + FakeServer.standardTools.map { "b__" + $0["name"]!.stringValue! })
        let call = try await harness.tool(session, "b__echo", arguments: ["text": "to b"])
        #expect(call.result?["content"]?[0]?["text"] == "b: to b")
        #expect(harness.fakes["b"]!.requests.last?.params?["name"] == "echo")
        #expect(harness.fakes["a"]!.requests.allSatisfy { $0.method == "tools/list" })
    }

    @Test("pages of several servers merge under one cursor until every server is done")
    func pages() async throws {
        let harness = try await two(pageSize: 2)
        let session = try await harness.initialize()
        var cursor: String?
        var names: [String] = []
        for _ in 0..<10 {
            var params: JSONObject = [:]
            if let cursor { params["cursor"] = .string(cursor) }
            let page = try await harness.call(session, "tools/list", params: params)
            names += page.result?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            cursor = page.result?["nextCursor"]?.stringValue
            if cursor == nil { break }
        }
        #expect(names.count == 2 * FakeServer.standardTools.count && Set(names).count == names.count)
        let damaged = try await harness.call(session, "tools/list", params: ["cursor": "garbage"])
        #expect(damaged.code == -32602 && damaged.error?["message"]?.stringValue?.contains("cursor") == true)
    }

    @Test("unknown names, URIs and methods are refused without reaching a server")
    func unknowns() async throws {
        let harness = try await two()
        let session = try await harness.initialize()
        let before = harness.fakes["a"]!.requests.count + harness.fakes["b"]!.requests.count
        #expect(try await harness.tool(session, "nope").error?["message"] == "Unknown tool: nope")
        let lists = harness.fakes["a"]!.requests.count + harness.fakes["b"]!.requests.count - before
        #expect(try await harness.call(session, "resources/read", params: ["uri": "file:///x"]).code == -32602)
        #expect(try await harness.call(session, "custom/thing").code == -32601)
        #expect(harness.fakes["a"]!.requests.count + harness.fakes["b"]!.requests.count - before == lists, "only lists, to learn names")
    }

    @Test("resource URIs are exposed with the server's prefix and read from their owner")
    func resources() async throws {
        let harness = try await two()
        let session = try await harness.initialize()
        let uris = try await harness.call(session, "resources/list").result?["resources"]?.arrayValue?.compactMap { $0["uri"]?.stringValue } ?? []
        #expect(uris.count == 2)
        let read = try await harness.call(session, "resources/read", params: ["uri": .string(uris[1])])
        #expect(read.result?["contents"]?[0]?["text"] == "contents of file:///b/readme", "\(read.text)")
        #expect(read.result?["contents"]?[0]?["uri"]?.stringValue == uris[1], "the answer names the URI the client knows")
    }

    @Test("prompts and completions go to their owner; logging/setLevel to every server")
    func promptsAndBroadcast() async throws {
        let harness = try await two()
        let session = try await harness.initialize()
        _ = try await harness.call(session, "prompts/list")
        let prompt = try await harness.call(session, "prompts/get", params: ["name": "a__greet"])
        #expect(prompt.result?["messages"]?[0]?["content"]?["text"] == "hello from a")
        let completion = try await harness.call(session, "completion/complete", params: ["ref": ["type": "ref/prompt", "name": "b__greet"], "argument": ["name": "x", "value": ""]])
        #expect(completion.result?["completion"]?["values"]?.arrayValue?.count == 2)
        #expect(harness.fakes["b"]!.requests.last?.params?["ref"]?["name"] == "greet")
        #expect(try await harness.call(session, "logging/setLevel", params: ["level": "debug"]).result == .object([:]))
        #expect(harness.fakes["a"]!.requests.last?.method == "logging/setLevel" && harness.fakes["b"]!.requests.last?.method == "logging/setLevel")
    }

    @Test("a failing server is left out of a list and named in _meta")
    func serverLeftOut() async throws {
        let harness = try await two()
        let session = try await harness.initialize()
        harness.fakes["b"]!.fail(next: 1)
        let list = try await harness.call(session, "tools/list")
        #expect(list.result?["tools"]?.arrayValue?.count == FakeServer.standardTools.count)
        #expect(list.result?["_meta"]?["gatehouse/unavailableServers"] == ["b"])
    }

    @Test("the same tool name on two servers without prefixes is an error that says what to set")
    func collision() async throws {
        let harness = try await PipelineHarness("  endpoints:\n    - path: /mcp\n      naming: {prefix: never}\n",
                                                servers: [FakeServer(name: "a"), FakeServer(name: "b")])
        let session = try await harness.initialize()
        let list = try await harness.call(session, "tools/list")
        #expect(list.code == -32603 && list.error?["message"]?.stringValue?.contains("naming.prefix") == true, "\(list.text)")
    }
}

@Suite("Request path: upstream failures")
struct PipelineUpstreamFailureTests {
    struct Failure: Sendable, CustomTestStringConvertible {
        var kind: UpstreamError.Kind
        var reason: String
        var testDescription: String { reason }
    }

    static let failures: [Failure] = [
        Failure(kind: .unavailable, reason: "upstream_unavailable"),
        Failure(kind: .timeout, reason: "upstream_timeout"),
        Failure(kind: .protocolViolation, reason: "upstream_protocol_error"),
        Failure(kind: .notReady, reason: "upstream_not_ready"),
    ]

    @Test("an upstream failure is a -32603 naming the upstream and the reason, in both eras", arguments: failures)
    func mapped(_ failure: Failure) async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        _ = try await harness.call(session, "tools/list")  // a listed tool's name may be a label
        harness.fakes["demo"]!.fail(next: 1, with: failure.kind)
        let answer = try await harness.tool(session, "echo")
        #expect(answer.status == 200 && answer.code == -32603 && answer.reason == failure.reason, "\(answer.text)")
        #expect(answer.error?["data"]?["gatehouse"]?["upstream"] == "demo")
        #expect(answer.error?["message"]?.stringValue?.contains("'demo'") == true)
        #expect(harness.counter("gatehouse_requests_total", ["/mcp", "tools/call", "demo", "echo", "error"]) == 1, "failures are counted")
        harness.fakes["demo"]!.fail(next: 1, with: failure.kind)
        let stateless = try await harness.stateless("tools/call", params: ["name": "echo"], name: "echo")
        #expect(stateless.code == -32603 && stateless.reason == failure.reason)
        #expect(try await harness.tool(session, "echo").status == 200, "the next request goes through")
    }

    @Test("an ended upstream session ends the client's session; a pooled one is replaced once")
    func sessionExpired() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        harness.fakes["demo"]!.fail(next: 1, with: .sessionExpired)
        let answer = try await harness.tool(session, "echo")
        #expect(answer.status == 404, "the client must initialize again: \(answer.text)")
        #expect(try await harness.tool(session, "echo").status == 404)
        harness.fakes["demo"]!.fail(next: 1, with: .sessionExpired)
        let stateless = try await harness.stateless("tools/call", params: ["name": "echo", "arguments": ["text": "again"]], name: "echo")
        #expect(stateless.result?["content"]?[0]?["text"] == "demo: again", "\(stateless.text)")
    }

    @Test("a refused request does not keep its session busy (it can still idle out)")
    func refusedRequestsEnd() async throws {
        let harness = try await PipelineHarness("  rateLimits:\n    - {name: calls, key: [identity], requestsPerSecond: 0.001, burst: 1, methods: [tools/call]}\n",
                                                servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        _ = try await harness.tool(session, "echo")
        #expect(try await harness.tool(session, "echo").status == 429)
        #expect(try await harness.tool(session, "no such", id: 3).code != nil)
        let stored = try #require(harness.endpoint.sessions.get(session))
        #expect(stored.idleTime(now: .now) != nil, "no request is still counted as in flight")
    }
}

@Suite("Request path: every method, every era, one server and federated")
struct PipelineMatrixTests {
    enum Era: String, CaseIterable, Sendable {
        case v20250326 = "2025-03-26", v20250618 = "2025-06-18", v20251125 = "2025-11-25", v20260728 = "2026-07-28"
    }

    struct Call: Sendable {
        var method: String
        /// Params with `%` where the federated endpoint's exposed prefix goes.
        var params: @Sendable (_ prefix: String) -> JSONObject
        var name: String?
        /// What reached server `b` (the owner) must say.
        var check: @Sendable (JSONRPCMessage) -> Bool
        var answer: @Sendable (JSONValue) -> Bool
    }

    static let calls: [String: Call] = [
        "tools/call": Call(method: "tools/call", params: { ["name": .string($0 + "echo"), "arguments": ["text": "m"]] }, name: "echo",
                           check: { $0.params?["name"] == "echo" }, answer: { $0["content"]?[0]?["text"] == "b: m" }),
        "prompts/get": Call(method: "prompts/get", params: { ["name": .string($0 + "greet")] }, name: "greet",
                            check: { $0.params?["name"] == "greet" }, answer: { $0["messages"]?[0]?["content"]?["text"] == "hello from b" }),
        "resources/read": Call(method: "resources/read", params: { ["uri": .string(($0.isEmpty ? "" : "b+") + "file:///b/readme")] }, name: "file:///b/readme",
                               check: { $0.params?["uri"] == "file:///b/readme" }, answer: { $0["contents"]?[0]?["text"] == "contents of file:///b/readme" }),
        "completion/complete": Call(method: "completion/complete", params: { ["ref": ["type": "ref/prompt", "name": .string($0 + "greet")], "argument": ["name": "a", "value": ""]] },
                                    check: { $0.params?["ref"]?["name"] == "greet" }, answer: { $0["completion"]?["values"]?.arrayValue?.count == 2 }),
        "tools/list": Call(method: "tools/list", params: { _ in [:] }, check: { $0.method == "tools/list" },
                           answer: { ($0["tools"]?.arrayValue?.count ?? 0) >= FakeServer.standardTools.count }),
        "prompts/list": Call(method: "prompts/list", params: { _ in [:] }, check: { $0.method == "prompts/list" },
                             answer: { ($0["prompts"]?.arrayValue?.count ?? 0) >= 1 }),
        "resources/list": Call(method: "resources/list", params: { _ in [:] }, check: { $0.method == "resources/list" },
                               answer: { ($0["resources"]?.arrayValue?.count ?? 0) >= 1 }),
        "logging/setLevel": Call(method: "logging/setLevel", params: { _ in ["level": "info"] }, check: { $0.params?["level"] == "info" },
                                 answer: { _ in true }),
    ]

    static let arguments: [(Era, Bool, String)] = Era.allCases.flatMap { era in
        [false, true].flatMap { federated in calls.keys.sorted().map { (era, federated, $0) } }
    }

    @Test("forwarded to its owner under the owner's names, answered in the client's revision", arguments: arguments)
    func method(_ era: Era, _ federated: Bool, _ key: String) async throws {
        let call = Self.calls[key]!
        let servers = federated ? [FakeServer(name: "a"), FakeServer(name: "b")] : [FakeServer(name: "b")]
        let harness = try await PipelineHarness(servers: servers)
        let prefix = federated ? "b__" : ""
        let answer: PipelineHarness.Answer
        if era == .v20260728 {
            let name: String? = switch key {
            case "tools/call", "prompts/get": prefix + call.name!
            case "resources/read": (federated ? "b+" : "") + call.name!
            default: nil
            }
            answer = try await harness.stateless(call.method, params: call.params(prefix), name: name)
        } else {
            let session = try await harness.initialize(era.rawValue)
            answer = try await harness.call(session, call.method, id: 42, params: call.params(prefix))
        }
        #expect(answer.status == 200, "\(answer.text)")
        let result = try #require(answer.result, "\(answer.text)")
        #expect(call.answer(result), "\(answer.text)")
        #expect(answer.json?["id"] == (era == .v20260728 ? 1 : 42))
        #expect((result["resultType"] == "complete") == (era == .v20260728), "resultType only for 2026-07-28 clients")
        let reached = harness.fakes["b"]!.requests.filter { $0.method == call.method }
        #expect(!reached.isEmpty && reached.allSatisfy(call.check), "what reached the owner: \(reached.map { JSONWriter.string(.object($0.object)) })")
    }
}

@Suite("Request path: findings of the adversarial review")
struct PipelineReviewTests {
    @Test("initialize inside a batch is refused and never reaches a server")
    func batchedInitialize() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize("2025-03-26")
        let answer = try await harness.send(body: #"[{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}]"#,
                                            headers: ["Mcp-Session-Id": session])
        #expect(answer.json?[0]?["error"]?["code"] == -32600, "\(answer.text)")
        #expect(harness.fakes["demo"]!.requests.isEmpty)
    }

    @Test("a batch is held to the single message's session rules")
    func batchSessionRules() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let unknown = try await harness.send(body: "[\(tool)]", headers: ["Mcp-Session-Id": "expired-or-made-up"])
        #expect(unknown.status == 404 && unknown.code == -32600, "an unknown session says: initialize again")
        let session = try await harness.initialize("2025-03-26")
        let mismatch = try await harness.send(body: "[\(tool)]", headers: ["Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"])
        #expect(mismatch.status == 400 && mismatch.error?["message"]?.stringValue?.contains("does not match") == true)
        #expect(harness.fakes["demo"]!.requests.isEmpty)
    }

    @Test("made-up tool names do not make every call list the servers' tools")
    func missesDoNotMultiplyLists() async throws {
        let policy = """
          policy:
            rego:
              inline: |
                package gatehouse
                import rego.v1
                default decision := {"allow": true}

        """
        let harness = try await PipelineHarness(policy, servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        for id in 1...20 { _ = try await harness.tool(session, "made_up_\(id)", id: id) }
        let lists = harness.fakes["demo"]!.requests.filter { $0.method == "tools/list" }.count
        #expect(lists <= 2, "\(lists) tools/list for 20 misses")
        let federated = try await PipelineHarness(servers: [FakeServer(name: "a"), FakeServer(name: "b")])
        let other = try await federated.initialize()
        for id in 1...20 { #expect(try await federated.tool(other, "nope_\(id)", id: id).code == -32602) }
        let fanned = federated.fakes["a"]!.requests.filter { $0.method == "tools/list" }.count
        #expect(fanned <= 2, "\(fanned) tools/list on a for 20 misses")
    }

    @Test("a completion on a prompt the policy denies is denied too")
    func completionsFollowPromptRules() async throws {
        let policy = """
          policy:
            deniedTools: error
            rego:
              inline: |
                package gatehouse
                import rego.v1
                default decision := {"allow": true}
                decision := {"allow": false, "message": "greet is closed"} if input.request.prompt == "greet"

        """
        let harness = try await PipelineHarness(policy, servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        #expect(try await harness.call(session, "prompts/get", params: ["name": "greet"]).code == -32001)
        let completion = try await harness.call(session, "completion/complete", params: ["ref": ["type": "ref/prompt", "name": "greet"], "argument": ["name": "a", "value": ""]])
        #expect(completion.code == -32001, "\(completion.text)")
        #expect(harness.fakes["demo"]!.requests.allSatisfy { $0.method != "completion/complete" })
    }

    @Test("a federated logging/setLevel that every server refuses is an error, not success")
    func broadcastFailure() async throws {
        let refusing: @Sendable (FakeServer, JSONRPCMessage) async -> FakeServer.Reply = { server, message in
            message.method == "logging/setLevel" ? FakeServer.Reply(error: (-32603, "no logging here")) : server.standard(message)
        }
        let harness = try await PipelineHarness(servers: [FakeServer(name: "a", handler: refusing), FakeServer(name: "b", handler: refusing)])
        let session = try await harness.initialize()
        let answer = try await harness.call(session, "logging/setLevel", params: ["level": "info"])
        #expect(answer.code == -32603, "\(answer.text)")
    }

    @Test("what only the operator may see never reaches a client")
    func operatorDetails() async throws {
        let error = UpstreamError(upstream: "tools", kind: .unavailable, detail: "its command was not found in PATH (the gateway log names it)",
                                  operatorDetail: "command '/opt/internal/secret/bin/server' was not found in PATH")
        let answer = GatewayError.upstream(error).answer(id: 1)
        #expect(!JSONWriter.string(.object(answer.object)).contains("/opt/internal"))
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        harness.fakes["demo"]!.fail(next: 2, operatorDetail: "endpoint http://10.20.30.40:8443/internal")
        let call = try await harness.tool(session, "echo")
        #expect(call.code == -32603 && !call.text.contains("10.20.30.40"), "\(call.text)")
        let stateless = try await harness.stateless("tools/call", params: ["name": "echo"], name: "echo")
        #expect(stateless.code == -32603 && !stateless.text.contains("10.20.30.40"))
    }
}
