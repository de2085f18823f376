import HTTPTypes
import Hummingbird
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Synchronization
import Testing
@testable import GatehouseServer

@Suite("Plaintext HTTP/1.1 front")
struct HTTP1FrontTests {
    static let head = HTTPRequest(method: .post, scheme: "http", authority: "127.0.0.1", path: "/mcp")

    func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    /// Writes a whole POST to /mcp: its head, the body in the given parts, its end.
    func sendWhole(_ channel: EmbeddedChannel, _ parts: String...) throws {
        try channel.writeInbound(HTTPRequestPart.head(Self.head))
        for part in parts { try channel.writeInbound(HTTPRequestPart.body(bytes(part))) }
        try channel.writeInbound(HTTPRequestPart.end(nil))
    }

    func collect(_ request: AggregatedHTTPRequest, limit: Int = 1 << 20) async throws -> String {
        var body = try await RequestBody(asyncSequence: request.body).collect(upTo: limit)
        return body.readString(length: body.readableBytes) ?? ""
    }

    @Test("a request goes on at its head (guards and authentication decide before the body); its body follows in one buffer")
    func gathersBodies() async throws {
        let channel = EmbeddedChannel(handler: HTTPRequestAggregator(maxBodyBytes: { 1024 }))
        try channel.writeInbound(HTTPRequestPart.head(Self.head))
        let first = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self), "sent on before any of the body")
        #expect(first.head.path == "/mcp")
        try channel.writeInbound(HTTPRequestPart.body(bytes(#"{"jsonrpc":"2.0","#)))
        try channel.writeInbound(HTTPRequestPart.body(bytes(#""id":1,"#)))
        try channel.writeInbound(HTTPRequestPart.body(bytes(#""method":"ping"}"#)))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        #expect(try await collect(first) == #"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        // A second request without a body on the same connection.
        try channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/mcp")))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        let second = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self))
        #expect(second.head.method == .get)
        #expect(try await collect(second) == "")
        #expect(try channel.readInbound(as: AggregatedHTTPRequest.self) == nil)
        _ = try channel.finish()
    }

    @Test("an over-limit body fails to collect as soon as it passes the limit; its rest is dropped, the next request is intact")
    func overLimit() async throws {
        let channel = EmbeddedChannel(handler: HTTPRequestAggregator(maxBodyBytes: { 10 }))
        try channel.writeInbound(HTTPRequestPart.head(Self.head))
        let refused = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self))
        try channel.writeInbound(HTTPRequestPart.body(bytes("123456")))
        try channel.writeInbound(HTTPRequestPart.body(bytes("7890ab")))  // 12 > 10
        await #expect(throws: NIOTooManyBytesError.self) { _ = try await collect(refused) }
        try channel.writeInbound(HTTPRequestPart.body(bytes("more that is dropped")))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        #expect(try channel.readInbound(as: AggregatedHTTPRequest.self) == nil, "the rest of the refused body is no request")

        try sendWhole(channel, "0123456789")  // exactly the limit
        let next = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self))
        #expect(try await collect(next) == "0123456789")
        _ = try channel.finish()
    }

    @Test("a request answered without reading its body (e.g. 401) keeps none of it")
    func answeredEarly() async throws {
        let channel = EmbeddedChannel(handler: HTTPRequestAggregator(maxBodyBytes: { 1 << 20 }))
        try channel.writeInbound(HTTPRequestPart.head(Self.head))
        let answered = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self))
        answered.body.pending.abandon()  // what the connection's loop does after the response
        try channel.writeInbound(HTTPRequestPart.body(bytes(String(repeating: "x", count: 4096))))
        await #expect(throws: (any Error).self, "the body is dropped, not gathered") { _ = try await collect(answered) }
        try channel.writeInbound(HTTPRequestPart.body(bytes("more")))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        try sendWhole(channel, "next")
        let next = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self))
        #expect(try await collect(next) == "next")
        _ = try channel.finish()
    }

    @Test("a connection that closes inside a body fails the body instead of leaving the reader waiting")
    func closedInsideBody() async throws {
        let channel = EmbeddedChannel(handler: HTTPRequestAggregator(maxBodyBytes: { 1024 }))
        try channel.writeInbound(HTTPRequestPart.head(Self.head))
        let cut = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self))
        try channel.writeInbound(HTTPRequestPart.body(bytes("half")))
        _ = try channel.finish(acceptAlreadyClosed: true)
        await #expect(throws: (any Error).self) { _ = try await collect(cut) }
    }

    @Test("the limit is read when each request starts (a reload applies to the next request)")
    func limitPerRequest() async throws {
        let limit = LimitBox(4)
        let channel = EmbeddedChannel(handler: HTTPRequestAggregator(maxBodyBytes: { limit.value }))
        try sendWhole(channel, "12345")
        let refused = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self))
        await #expect(throws: NIOTooManyBytesError.self) { _ = try await collect(refused) }
        limit.value = 8
        try sendWhole(channel, "12345")
        let accepted = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self))
        #expect(try await collect(accepted) == "12345")
        _ = try channel.finish()
    }

    @Test("header values: one field as is, repeated fields joined like HTTPFields does, names case-insensitive")
    func headerValues() {
        var fields = HTTPFields()
        fields.append(HTTPField(name: .contentType, value: "application/json"))
        fields.append(HTTPField(name: .accept, value: "application/json"))
        fields.append(HTTPField(name: .accept, value: "text/event-stream"))
        fields.append(HTTPField(name: HTTPField.Name("MCP-Protocol-Version")!, value: "2026-07-28"))
        #expect(fields.value(.contentType) == "application/json")
        #expect(fields.value(.accept) == "application/json, text/event-stream")
        #expect(fields.value(.accept) == fields[.accept])
        #expect(fields.value(.mcpProtocolVersion) == "2026-07-28")
        #expect(fields.value(.authorization) == nil)
    }
}

/// A limit the test changes between requests (the gateway reads it from the current snapshot).
final class LimitBox: Sendable {
    private let stored: Mutex<Int>
    init(_ value: Int) { stored = Mutex(value) }
    var value: Int {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}
