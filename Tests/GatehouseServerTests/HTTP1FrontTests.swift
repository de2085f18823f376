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

    func collect(_ request: AggregatedHTTPRequest, limit: Int = 1 << 20) async throws -> String {
        var body = try await request.body.collect(upTo: limit)
        return body.readString(length: body.readableBytes) ?? ""
    }

    @Test("a body sent in several parts reaches the responder as one buffer, request by request")
    func gathersBodies() async throws {
        let channel = EmbeddedChannel(handler: HTTPRequestAggregator(maxBodyBytes: { 1024 }))
        try channel.writeInbound(HTTPRequestPart.head(Self.head))
        try channel.writeInbound(HTTPRequestPart.body(bytes(#"{"jsonrpc":"2.0","#)))
        #expect(try channel.readInbound(as: AggregatedHTTPRequest.self) == nil, "nothing before the end of the request")
        try channel.writeInbound(HTTPRequestPart.body(bytes(#""id":1,"#)))
        try channel.writeInbound(HTTPRequestPart.body(bytes(#""method":"ping"}"#)))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        // A second request without a body on the same connection.
        try channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/mcp")))
        try channel.writeInbound(HTTPRequestPart.end(nil))

        let first = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self))
        #expect(first.head.path == "/mcp")
        #expect(try await collect(first) == #"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        let second = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self))
        #expect(second.head.method == .get)
        #expect(try await collect(second) == "")
        #expect(try channel.readInbound(as: AggregatedHTTPRequest.self) == nil)
        _ = try channel.finish()
    }

    @Test("an over-limit body goes on at once with a body that fails to collect; its rest is dropped, the next request is intact")
    func overLimit() async throws {
        let channel = EmbeddedChannel(handler: HTTPRequestAggregator(maxBodyBytes: { 10 }))
        try channel.writeInbound(HTTPRequestPart.head(Self.head))
        try channel.writeInbound(HTTPRequestPart.body(bytes("123456")))
        try channel.writeInbound(HTTPRequestPart.body(bytes("7890ab")))  // 12 > 10
        let refused = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self), "delivered before the body ends")
        await #expect(throws: NIOTooManyBytesError.self) { _ = try await collect(refused) }
        try channel.writeInbound(HTTPRequestPart.body(bytes("more that is dropped")))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        #expect(try channel.readInbound(as: AggregatedHTTPRequest.self) == nil, "the rest of the refused body is no request")

        try channel.writeInbound(HTTPRequestPart.head(Self.head))
        try channel.writeInbound(HTTPRequestPart.body(bytes("0123456789")))  // exactly the limit
        try channel.writeInbound(HTTPRequestPart.end(nil))
        let next = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self))
        #expect(try await collect(next) == "0123456789")
        _ = try channel.finish()
    }

    @Test("the limit is read when each request starts (a reload applies to the next request)")
    func limitPerRequest() async throws {
        let limit = LimitBox(4)
        let channel = EmbeddedChannel(handler: HTTPRequestAggregator(maxBodyBytes: { limit.value }))
        try channel.writeInbound(HTTPRequestPart.head(Self.head))
        try channel.writeInbound(HTTPRequestPart.body(bytes("12345")))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        let refused = try #require(try channel.readInbound(as: AggregatedHTTPRequest.self))
        await #expect(throws: NIOTooManyBytesError.self) { _ = try await collect(refused) }
        limit.value = 8
        try channel.writeInbound(HTTPRequestPart.head(Self.head))
        try channel.writeInbound(HTTPRequestPart.body(bytes("12345")))
        try channel.writeInbound(HTTPRequestPart.end(nil))
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
