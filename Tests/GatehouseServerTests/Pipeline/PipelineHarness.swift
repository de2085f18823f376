import Foundation
import GatehouseConfig
import GatehouseUpstream
import HTTPTypes
import Hummingbird
import Logging
import MCPWire
import NIOCore
import NIOEmbedded
@testable import GatehouseServer

/// A whole MCP endpoint in the test process: the real request path (every HTTP and request
/// step), real config loading and policy, and fake upstream servers — no sockets.
struct PipelineHarness {
    let endpoint: MCPEndpoint
    let fakes: [String: FakeServer]
    let metrics: Metrics
    /// The negotiated version of each session this harness started.
    let versions = Versions()

    final class Versions: @unchecked Sendable {
        private var byID: [String: String] = [:]
        private let lock = NSLock()
        subscript(id: String) -> String? {
            get { lock.withLock { byID[id] } }
            set { lock.withLock { byID[id] = newValue } }
        }
    }

    /// `yaml` is the Gateway's `spec` body (indented two spaces); each fake gets an MCPServer.
    init(_ spec: String = "", servers fakes: [FakeServer], serverSpec: [String: String] = [:], endpointPath: String = "/mcp",
         pins: ToolPins? = nil) async throws
    {
        var text = "apiVersion: gatehouse.dev/v1alpha1\nkind: Gateway\nmetadata: {name: t}\nspec:\n  listen: {bind: 127.0.0.1, port: 8080}\n" + spec
        if !spec.contains("endpoints:") { text += "  endpoints:\n    - path: /mcp\n" }
        for fake in fakes {
            text += "\n---\napiVersion: gatehouse.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: \(fake.name)}\nspec:\n  http: {url: \"http://fake.invalid/\(fake.name)\"}\n"
            if let extra = serverSpec[fake.name] { text += extra + "\n" }
        }
        let config = try ConfigLoader(environment: { _ in nil }).load(yaml: text, file: "test.yaml")
        var logger = Logger(label: "pipeline-test")
        logger.logLevel = .critical
        let metrics = Metrics()
        let policy = try config.policy.map { try GatewayPolicy(config: $0, servers: config.servers, logger: logger, metrics: metrics) }
        let byName = Dictionary(uniqueKeysWithValues: fakes.map { ($0.name, $0) })
        var upstreams: [UpstreamServer] = []
        for server in config.servers {
            let upstream = UpstreamServer(config: server, backend: byName[server.name]!, logger: logger)
            await upstream.start()
            upstreams.append(upstream)
        }
        let endpointConfig = config.endpoints.first { $0.path == endpointPath }!
        let servers = endpointConfig.servers.compactMap { name in upstreams.first { $0.config.name == name } }
        self.endpoint = MCPEndpoint(config: config, endpoint: endpointConfig, servers: servers, sealer: SessionSealer(secret: nil), logger: logger,
                                    policy: policy, metrics: metrics,
                                    rateLimiter: RateLimiter(limits: config.rateLimits, metrics: metrics, logger: logger), pins: pins)
        self.fakes = byName
        self.metrics = metrics
    }

    // MARK: Sending

    struct Answer {
        var status: Int
        var headers: HTTPFields
        var body: [UInt8]

        var text: String { String(decoding: body, as: UTF8.self) }
        /// The body as one JSON value (nil for SSE and empty bodies).
        var json: JSONValue? { try? JSONParser.parse(body) }
        var error: JSONObject? { json?["error"]?.objectValue }
        var code: Int? { error?["code"]?.intValue }
        var result: JSONValue? { json?["result"] }
        var reason: String? { error?["data"]?["gatehouse"]?["reason"]?.stringValue }
        var isSSE: Bool { headers[.contentType] == "text/event-stream" }
        /// The JSON-RPC messages of an SSE body, in order.
        var events: [JSONValue] {
            text.components(separatedBy: "\n").compactMap { line in
                guard line.hasPrefix("data: ") else { return nil }
                return try? JSONParser.parse(Array(line.dropFirst(6).utf8))
            }
        }
    }

    func send(_ method: HTTPRequest.Method = .post, body: String? = nil, headers: [String: String] = [:],
              contentType: String? = "application/json", accept: String? = "application/json, text/event-stream") async throws -> Answer {
        var fields = HTTPFields()
        if let contentType { fields[.contentType] = contentType }
        if let accept { fields[.accept] = accept }
        var authority = "127.0.0.1:8080"
        for (name, value) in headers {
            if name == "Host" { authority = value } else { fields[HTTPField.Name(name)!] = value }
        }
        let head = HTTPRequest(method: method, scheme: "http", authority: authority, path: endpoint.endpoint.path, headerFields: fields)
        let request = Request(head: head, body: RequestBody(buffer: ByteBuffer(string: body ?? "")))
        let channel = NIOAsyncTestingChannel()
        let context = GatewayRequestContext(source: .init(channel: channel, logger: Logger(label: "test")))
        let response = await endpoint.handle(request, context: context)
        let collector = BodyCollector()
        try await response.body.write(collector.writer)
        return Answer(status: Int(response.status.code), headers: response.headers, body: collector.bytes.value)
    }

    /// Posts one JSON-RPC message as text.
    func post(_ message: String, headers: [String: String] = [:], accept: String? = "application/json, text/event-stream") async throws -> Answer {
        try await send(body: message, headers: headers, accept: accept)
    }

    /// A 2026-07-28 request with the headers that era requires.
    func stateless(_ method: String, id: Int = 1, params: JSONObject = [:], name: String? = nil, accept: String = "application/json, text/event-stream",
                   headers extra: [String: String] = [:]) async throws -> Answer {
        var params = params
        var meta = params["_meta"]?.objectValue ?? [:]
        meta[MetaKey.protocolVersion] = "2026-07-28"
        meta[MetaKey.clientInfo] = ["name": "test", "version": "1"]
        meta[MetaKey.clientCapabilities] = [:]
        params["_meta"] = .object(meta)
        let message = JSONRPCMessage.request(id: .int(id), method: method, params: params)
        var headers = ["MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method]
        if let name { headers["Mcp-Name"] = name }
        for (key, value) in extra { headers[key] = value }
        return try await send(body: String(decoding: message.bytes, as: UTF8.self), headers: headers, accept: accept)
    }

    /// Starts a session of `version`; returns its id.
    func initialize(_ version: String = "2025-11-25", capabilities: JSONObject = [:]) async throws -> String {
        let answer = try await post(#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"\#(version)","capabilities":\#(JSONWriter.string(.object(capabilities))),"clientInfo":{"name":"t","version":"1"}}}"#)
        guard answer.status == 200, let id = answer.headers[HTTPField.Name("Mcp-Session-Id")!] else {
            throw HarnessError(message: "initialize failed: \(answer.status) \(answer.text)")
        }
        versions[id] = version
        return id
    }

    /// A request in a session.
    func call(_ session: String, _ method: String, id: Int = 1, params: JSONObject = [:], version: String? = nil,
              accept: String = "application/json, text/event-stream") async throws -> Answer {
        let version = version ?? versions[session] ?? "2025-11-25"
        let message = JSONRPCMessage.request(id: .int(id), method: method, params: params)
        return try await send(body: String(decoding: message.bytes, as: UTF8.self),
                              headers: ["Mcp-Session-Id": session, "MCP-Protocol-Version": version], accept: accept)
    }

    func tool(_ session: String, _ name: String, arguments: JSONObject = [:], id: Int = 1, accept: String = "application/json, text/event-stream") async throws -> Answer {
        try await call(session, "tools/call", id: id, params: ["name": .string(name), "arguments": .object(arguments)], accept: accept)
    }

    func counter(_ name: String, _ labels: [String]) -> Double { metrics.value(name, labels) }
}

struct HarnessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Collects a response body (JSON or a whole SSE stream).
struct BodyCollector {
    final class Bytes: @unchecked Sendable { var value: [UInt8] = [] }
    let bytes = Bytes()

    var writer: Writer { Writer(bytes: bytes) }

    struct Writer: ResponseBodyWriter {
        let bytes: Bytes
        mutating func write(_ buffer: ByteBuffer) async throws { bytes.value.append(contentsOf: buffer.readableBytesView) }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}

extension JSONValue {
    /// An array's element (tests read answers like `result.content[0].text`).
    subscript(index: Int) -> JSONValue? {
        guard case .array(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }
}
