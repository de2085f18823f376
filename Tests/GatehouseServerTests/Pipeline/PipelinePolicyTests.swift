import GatehouseUpstream
import MCPWire
import Testing
@testable import GatehouseServer

private func policy(deniedTools: String = "hide") -> String {
    """
      policy:
        deniedTools: \(deniedTools)
        rego:
          inline: |
            package gatehouse
            import rego.v1
            open_tools := {"echo", "leak", "progress"}
            default decision := {"allow": false, "message": "only open tools may be called"}
            decision := {"allow": true, "redact": {"detectors": ["email"]}, "headers": {"response": {"X-Policy": "open"}}} if input.request.tool in open_tools
            decision := {"allow": true} if input.request.method != "tools/call"

    """
}

@Suite("Request path: policy")
struct PipelinePolicyTests {
    @Test("allowed calls carry the decision's redaction and headers; denied ones never reach the server", arguments: ["hide", "error"])
    func allowAndDeny(_ deniedTools: String) async throws {
        let harness = try await PipelineHarness(policy(deniedTools: deniedTools), servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        let leak = try await harness.tool(session, "leak")
        #expect(leak.status == 200)
        #expect(leak.result?["content"]?[0]?["text"]?.stringValue?.contains("alice@example.com") == false, "\(leak.text)")
        #expect(leak.headers[.init("X-Policy")!] == "open")
        let before = harness.fakes["demo"]!.requests.count
        let denied = try await harness.tool(session, "delete_item")
        #expect(harness.fakes["demo"]!.requests.count == before, "a denied call never reaches the server")
        if deniedTools == "hide" {
            #expect(denied.code == -32602 && denied.error?["message"] == "Unknown tool: delete_item", "hidden: answered like an unknown tool")
            #expect(harness.counter("gatehouse_requests_total", ["/mcp", "tools/call", "demo", "delete_item", "denied"]) == 1)
        } else {
            #expect(denied.code == -32001 && denied.reason == "policy_denied")
            #expect(denied.error?["message"] == "Forbidden: only open tools may be called")
        }
        let missing = try await harness.tool(session, "no_such_tool")
        if deniedTools == "hide" {
            #expect(missing.error?["message"] == "Unknown tool: no_such_tool", "missing and forbidden look the same")
        }
    }

    @Test("lists show only what the caller may use")
    func listFiltering() async throws {
        let harness = try await PipelineHarness(policy(), servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        let names = try await harness.call(session, "tools/list").result?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
        #expect(names == ["echo", "progress", "leak"])
        let stateless = try await harness.stateless("tools/list").result?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
        #expect(stateless == ["echo", "progress", "leak"])
    }

    @Test("federated lists are filtered per server")
    func federatedFiltering() async throws {
        let harness = try await PipelineHarness(policy(), servers: [FakeServer(name: "a"), FakeServer(name: "b")])
        let session = try await harness.initialize()
        let names = try await harness.call(session, "tools/list").result?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
        #expect(names == ["a__echo", "a__progress", "a__leak", "b__echo", "b__progress", "b__leak"])
    }

    @Test("what a server sends while it works is redacted too, and arrives before the answer")
    func streamRedaction() async throws {
        let harness = try await PipelineHarness(policy(), servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        let answer = try await harness.tool(session, "progress")
        #expect(answer.isSSE)
        let events = answer.events
        #expect(events.count == 4, "\(answer.text)")
        #expect(events.prefix(3).allSatisfy { $0["method"] == "notifications/progress" })
        #expect(events.prefix(3).allSatisfy { $0["params"]?["message"]?.stringValue?.contains("bob@example.com") == false })
        #expect(events.last?["result"]?["content"]?[0]?["text"] == "done" && events.last?["id"] == 1)
    }

    @Test("a policy that fails to evaluate denies (fail closed)")
    func failClosed() async throws {
        let spec = """
          policy:
            rego:
              inline: |
                package gatehouse
                import rego.v1
                decision := {"allow": true} if input.request.method == "tools/list"
                decision := {"allow": false} if input.request.method == "tools/list"
                decision := {"allow": 1 / 0 == 1} if input.request.method == "tools/call"

        """
        let harness = try await PipelineHarness(spec, servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        let answer = try await harness.tool(session, "echo")
        #expect(answer.code == -32001, "\(answer.text)")
        #expect(harness.fakes["demo"]!.requests.allSatisfy { $0.method != "tools/call" })
    }
}

@Suite("Request path: limits, retries and the breaker")
struct PipelineResilienceTests {
    @Test("a rate limit refuses with 429, -32029 and Retry-After; other methods pass")
    func rateLimit() async throws {
        let spec = "  rateLimits:\n    - {name: calls, key: [identity], requestsPerSecond: 0.001, burst: 2, methods: [tools/call]}\n"
        let harness = try await PipelineHarness(spec, servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        #expect(try await harness.tool(session, "echo").status == 200)
        #expect(try await harness.tool(session, "echo").status == 200)
        let limited = try await harness.tool(session, "echo")
        #expect(limited.status == 429 && limited.code == -32029 && limited.reason == "rate_limited")
        #expect(limited.headers[.retryAfter] != nil)
        #expect(limited.error?["data"]?["gatehouse"]?["limit"] == "calls")
        #expect(try await harness.call(session, "tools/list").status == 200)
        #expect(harness.fakes["demo"]!.requests.filter { $0.method == "tools/call" }.count == 2)
        #expect(harness.counter("gatehouse_requests_total", ["/mcp", "tools/call", "demo", "echo", "rate_limited"]) == 1)
    }

    @Test("lists and reads are retried when the upstream could not be reached; calls are not")
    func retries() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")],
                                                serverSpec: ["demo": "  resilience: {retries: 2, retryBackoffSeconds: 0.001}"])
        let session = try await harness.initialize()
        harness.fakes["demo"]!.fail(next: 2)
        let list = try await harness.call(session, "tools/list")
        #expect(list.status == 200 && list.result?["tools"] != nil, "\(list.text)")
        #expect(harness.counter("gatehouse_upstream_retries_total", ["demo"]) == 2)
        harness.fakes["demo"]!.fail(next: 1)
        let call = try await harness.tool(session, "echo")
        #expect(call.code == -32603 && call.reason == "upstream_unavailable", "a call may have side effects: not repeated")
        #expect(harness.counter("gatehouse_requests_total", ["/mcp", "tools/call", "demo", "echo", "error"]) == 1)
    }

    @Test("the circuit breaker opens after repeated failures and fails fast")
    func breaker() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")],
                                                serverSpec: ["demo": "  resilience: {circuitBreaker: {failures: 2, openSeconds: 60}}"])
        let session = try await harness.initialize()
        harness.fakes["demo"]!.fail(next: 2)
        _ = try await harness.tool(session, "echo")
        _ = try await harness.tool(session, "echo")
        let before = harness.fakes["demo"]!.requests.count
        let open = try await harness.tool(session, "echo")
        #expect(open.code == -32603 && open.error?["message"]?.stringValue?.contains("circuit breaker") == true, "\(open.text)")
        #expect(harness.fakes["demo"]!.requests.count == before, "an open breaker sends nothing")
    }

    @Test("an upstream at its concurrency limit is refused at once, and the slot comes back")
    func concurrency() async throws {
        let slow = FakeServer(name: "demo") { server, message in
            var reply = server.standard(message)
            if message.params?["name"] == "echo" { reply.delay = .milliseconds(300) }
            return reply
        }
        let harness = try await PipelineHarness(servers: [slow], serverSpec: ["demo": "  maxConcurrentRequests: 1"])
        let session = try await harness.initialize()
        async let first = harness.tool(session, "echo", id: 1)
        try await Task.sleep(for: .milliseconds(100))
        let second = try await harness.tool(session, "leak", id: 2)
        #expect(second.status == 429 && second.reason == "upstream_busy", "\(second.text)")
        #expect(try await first.status == 200)
        #expect(try await harness.tool(session, "leak", id: 3).status == 200, "the slot was released")
    }

    @Test("a stream's slot is released when the stream ends")
    func streamSlot() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")], serverSpec: ["demo": "  maxConcurrentRequests: 1"])
        let session = try await harness.initialize()
        for id in 1...3 {
            let answer = try await harness.tool(session, "progress", id: id)
            #expect(answer.isSSE && answer.events.count == 4)
        }
        #expect(harness.endpoint.servers[0].slotsInUse == 0)
    }
}

@Suite("Request path: streams")
struct PipelineStreamTests {
    @Test("progress arrives in order before the answer; a JSON-only client gets just the answer")
    func order() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        let sse = try await harness.tool(session, "progress")
        #expect(sse.events.compactMap { $0["params"]?["progress"]?.intValue } == [1, 2, 3])
        let json = try await harness.tool(session, "progress", accept: "application/json")
        #expect(!json.isSSE && json.result?["content"]?[0]?["text"] == "done")
    }

    @Test("a server's request reaches a session client under a gateway id; a 2026 client's is refused upstream")
    func serverRequests() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        let sse = try await harness.tool(session, "ask")
        let ask = sse.events.first
        #expect(ask?["method"] == "roots/list")
        #expect(ask?["id"] != "ask-1", "the client sees the gateway's id, not the server's")
        let stateless = try await harness.stateless("tools/call", params: ["name": "ask"], name: "ask")
        #expect(stateless.events.count == 1 || stateless.result != nil)
        #expect(harness.fakes["demo"]!.answers.last?.error?["code"] == -32601, "the server learns its request cannot be relayed")
    }

    @Test("requests are counted once with their outcome, streams at their end")
    func metrics() async throws {
        let harness = try await PipelineHarness(servers: [FakeServer(name: "demo")])
        let session = try await harness.initialize()
        _ = try await harness.tool(session, "echo")
        _ = try await harness.tool(session, "progress")
        _ = try await harness.tool(session, "unknown_thing")
        #expect(harness.counter("gatehouse_requests_total", ["/mcp", "tools/call", "demo", "echo", "ok"]) == 1)
        #expect(harness.counter("gatehouse_requests_total", ["/mcp", "tools/call", "demo", "progress", "ok"]) == 1)
        #expect(harness.counter("gatehouse_requests_total", ["/mcp", "tools/call", "demo", "other", "tool_error"]) == 1, "a made-up tool name is not a label")
    }
}
