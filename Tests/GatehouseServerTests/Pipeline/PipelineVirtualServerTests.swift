import GatehouseConfig
import GatehouseUpstream
import MCPWire
import Testing
@testable import GatehouseServer

private func names(_ answer: PipelineHarness.Answer) -> [String] {
    answer.result?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
}

private let virtual = """
  endpoints:
    - path: /mcp
      servers: [a, b]
      toolSelection: listed
      tools:
        - {server: a, tool: echo, name: shout, description: "Repeat it back.", annotations: {readOnlyHint: null, openWorldHint: false}}
        - {server: b, tool: delete_item, name: remove, title: Remove an item}
        - {server: b, tool: leak, hide: true}

"""

@Suite("Request path: virtual servers")
struct PipelineVirtualServerTests {
    @Test("a virtual server lists only the chosen tools under their new names, in both eras")
    func listsTheSelection() async throws {
        let harness = try await PipelineHarness(virtual, servers: [FakeServer(name: "a"), FakeServer(name: "b")])
        let stateless = try await harness.stateless("tools/list")
        #expect(names(stateless) == ["shout", "remove"], "\(stateless.text)")
        let session = try await harness.initialize()
        let listed = try await harness.call(session, "tools/list")
        #expect(names(listed) == ["shout", "remove"])
        let shout = try #require(listed.result?["tools"]?.arrayValue?.first)
        #expect(shout["description"] == "Repeat it back.")
        #expect(shout["annotations"] == ["openWorldHint": false], "readOnlyHint removed, openWorldHint set: \(shout)")
        let remove = try #require(listed.result?["tools"]?.arrayValue?.last)
        #expect(remove["title"] == "Remove an item" && remove["description"] == "Deletes")
    }

    @Test("calls by the new name reach the owner under its own name; old, prefixed and unselected names are unknown")
    func routesByTheNewName() async throws {
        let a = FakeServer(name: "a"), b = FakeServer(name: "b")
        let harness = try await PipelineHarness(virtual, servers: [a, b])
        let session = try await harness.initialize()
        let shout = try await harness.tool(session, "shout", arguments: ["text": "hi"])
        #expect(shout.result?["content"]?[0]?["text"] == "a: hi", "\(shout.text)")
        #expect(a.requests.last?.params?["name"] == "echo")
        let remove = try await harness.stateless("tools/call", params: ["name": "remove", "arguments": ["text": "x"]], name: "remove")
        #expect(remove.result?["content"]?[0]?["text"] == "b: x", "\(remove.text)")
        let before = a.requests.count + b.requests.count
        for name in ["echo", "a__echo", "b__delete_item", "b__leak", "leak", "a__progress", "progress"] {
            let refused = try await harness.tool(session, name)
            #expect(refused.code == -32602 && refused.error?["message"] == .string("Unknown tool: \(name)"), "\(name): \(refused.text)")
        }
        let listings = (a.requests + b.requests).filter { $0.mcpMethod == .toolsList }.count
        #expect(a.requests.count + b.requests.count - listings == before, "no refused call reached a server")
    }

    @Test("without a selection, overrides rename and hide on a single-server endpoint too")
    func singleServerOverrides() async throws {
        let spec = """
          endpoints:
            - path: /mcp
              servers: [demo]
              tools:
                - {server: demo, tool: delete_item, hide: true}
                - {server: demo, tool: echo, name: say}

        """
        let demo = FakeServer(name: "demo")
        let harness = try await PipelineHarness(spec, servers: [demo])
        #expect(names(try await harness.stateless("tools/list")) == ["say", "progress", "ask", "leak"])
        let say = try await harness.stateless("tools/call", params: ["name": "say", "arguments": ["text": "x"]], name: "say")
        #expect(say.result?["content"]?[0]?["text"] == "demo: x", "\(say.text)")
        #expect(demo.requests.last?.params?["name"] == "echo")
        for name in ["delete_item", "echo"] {
            let refused = try await harness.stateless("tools/call", params: ["name": .string(name), "arguments": [:]], name: name)
            #expect(refused.error?["message"] == .string("Unknown tool: \(name)"), "\(refused.text)")
        }
        #expect(try await harness.stateless("tools/call", params: ["name": "leak", "arguments": [:]], name: "leak").result != nil)
    }

    @Test("an MCP Apps tool's ui:// resource is exposed under the server's prefix, and readable there")
    func appResources() async throws {
        let tools: [JSONValue] = [["name": "dashboard", "inputSchema": ["type": "object"], "_meta": ["ui": ["resourceUri": "file:///a/readme"], "ui/resourceUri": "file:///a/readme"]]]
        let harness = try await PipelineHarness(servers: [FakeServer(name: "a", tools: tools), FakeServer(name: "b")])
        let listed = try await harness.stateless("tools/list")
        let dashboard = try #require(listed.result?["tools"]?.arrayValue?.first { $0["name"] == "a__dashboard" })
        let uri = try #require(dashboard["_meta"]?["ui"]?["resourceUri"]?.stringValue)
        #expect(uri == "a+file:///a/readme")
        #expect(dashboard["_meta"]?["ui/resourceUri"] == "a+file:///a/readme")
        let read = try await harness.stateless("resources/read", params: ["uri": .string(uri)], name: uri)
        #expect(read.result?["contents"]?[0]?["uri"] == .string(uri), "\(read.text)")
    }

    @Test("the config refuses overrides that cannot work", arguments: [
        ("- {server: c, tool: echo, name: x}", "does not expose"),
        ("- {server: a, tool: echo, name: \"bad name\"}", "invalid tool name"),
        ("- {server: a, tool: echo, name: x}\n        - {server: b, tool: echo, name: x}", "two tools of this endpoint are named 'x'"),
        ("- {server: a, tool: echo, name: x}\n        - {server: a, tool: echo, title: y}", "has two entries"),
        ("- {server: a, tool: echo, name: x, hide: true}", "a hidden tool has no name"),
        ("- {server: a, tool: echo, nmae: x}", "unknown key 'nmae'"),
    ])
    func badOverrides(_ entry: String, _ message: String) async throws {
        let text = """
            apiVersion: gatehouse.dev/v1alpha1
            kind: Gateway
            metadata: {name: t}
            spec:
              endpoints:
                - path: /mcp
                  servers: [a, b]
                  tools:
                    \(entry)
            ---
            apiVersion: gatehouse.dev/v1alpha1
            kind: MCPServer
            metadata: {name: a}
            spec: {http: {url: "http://127.0.0.1:9001/mcp"}}
            ---
            apiVersion: gatehouse.dev/v1alpha1
            kind: MCPServer
            metadata: {name: b}
            spec: {http: {url: "http://127.0.0.1:9002/mcp"}}
            """
        do {
            _ = try ConfigLoader(environment: { _ in nil }).load(yaml: text, file: "g.yaml")
            Issue.record("expected an error for \(entry)")
        } catch {
            #expect(error.description.contains(message), "\(error.description)")
        }
    }
}
