import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
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

    // MARK: The connection bridge

    /// A request as the aggregator hands it on, its body already complete.
    func aggregated(_ path: String, body: String = "", on loop: any EventLoop) -> AggregatedHTTPRequest {
        let pending = PendingBody(promise: loop.makePromise())
        pending.promise.succeed(bytes(body))
        return AggregatedHTTPRequest(head: HTTPRequest(method: .post, scheme: "http", authority: "127.0.0.1", path: path), body: GatheredBody(pending: pending))
    }

    /// A connected channel whose pipeline is one `HTTP1Connection`.
    func connected() async throws -> (EmbeddedChannel, HTTP1Connection) {
        let channel = EmbeddedChannel()
        let connection = HTTP1Connection(channel: channel)
        try channel.pipeline.syncOperations.addHandler(connection)
        try await channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        return (channel, connection)
    }

    @Test("requests reach the connection's task in order; reading pauses while one waits and resumes when it is taken")
    func requestsInOrderWithBackpressure() async throws {
        let reads = ReadCounter()
        let channel = EmbeddedChannel()
        let connection = HTTP1Connection(channel: channel)
        try channel.pipeline.syncOperations.addHandlers([reads, connection])
        try channel.writeInbound(aggregated("/first", on: channel.eventLoop))
        try channel.writeInbound(aggregated("/second", on: channel.eventLoop))
        channel.read()
        #expect(reads.count == 0, "two requests wait: no more is read")
        #expect(try await connection.next()?.head.path == "/first")
        channel.read()
        #expect(reads.count == 0, "one still waits")
        #expect(try await connection.next()?.head.path == "/second")
        #expect(reads.count == 1, "the held read goes on once the queue is empty")
        channel.read()
        #expect(reads.count == 2)
        // A task that asks before the request has come is woken by it.
        let waiting = Task { try await connection.next()?.head.path }
        try await Task.sleep(for: .milliseconds(20))
        try channel.writeInbound(aggregated("/third", on: channel.eventLoop))
        #expect(try await waiting.value == "/third")
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("no more is read while answers back up unread; reading goes on once the channel is writable again")
    func noReadsWhileAnswersBackUp() async throws {
        let reads = ReadCounter()
        let channel = EmbeddedChannel()
        let connection = HTTP1Connection(channel: channel)
        try channel.pipeline.syncOperations.addHandlers([reads, connection])
        channel.isWritable = false
        channel.read()
        #expect(reads.count == 0, "answers are not being read by the client: read nothing more")
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(reads.count == 1)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("a stream's head can go before its first part")
    func streamHeadFirst() async throws {
        let (channel, connection) = try await connected()
        var writer = HTTP1Connection.BodyWriter(connection: connection, head: HTTPResponse(status: .ok, headerFields: [.contentType: "text/event-stream"]))
        writer.sendHead()
        guard case .head(let head) = try channel.readOutbound(as: HTTPResponsePart.self) else {
            Issue.record("expected the head")
            return
        }
        #expect(head.status == .ok)
        #expect(try channel.readOutbound(as: HTTPResponsePart.self) == nil, "nothing else yet")
        try await writer.write(bytes("event: message\ndata: 1\n\n"))
        guard case .body = try channel.readOutbound(as: HTTPResponsePart.self) else {
            Issue.record("expected the first part, without a second head")
            return
        }
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("the end of input ends the requests after the queued ones; a parse error comes after them too")
    func endAndParseErrorAfterQueued() async throws {
        let channel = EmbeddedChannel()
        let connection = HTTP1Connection(channel: channel)
        try channel.pipeline.syncOperations.addHandler(connection)
        try channel.writeInbound(aggregated("/queued", on: channel.eventLoop))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(try await connection.next()?.head.path == "/queued")
        #expect(try await connection.next() == nil, "the client closed its side: no more requests")

        let broken = EmbeddedChannel()
        let brokenConnection = HTTP1Connection(channel: broken)
        try broken.pipeline.syncOperations.addHandler(brokenConnection)
        try broken.writeInbound(aggregated("/before", on: broken.eventLoop))
        broken.pipeline.fireErrorCaught(HTTPParserError.invalidHeaderToken)
        #expect(try await brokenConnection.next()?.head.path == "/before", "the request before the bad bytes is still answered")
        await #expect(throws: HTTPParserError.self) { _ = try await brokenConnection.next() }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        _ = try? broken.finish(acceptAlreadyClosed: true)
    }

    @Test("an answer leaves as head, body and end in order; a streamed answer's later parts are written one by one")
    func writesInOrder() async throws {
        let (channel, connection) = try await connected()
        let json = Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: bytes(#"{"ok":true}"#)))
        try await json.body.write(HTTP1Connection.BodyWriter(connection: connection, head: json.head))
        let stream = Response(status: .ok, headers: [.contentType: "text/event-stream"], body: .init { writer in
            try await writer.write(ByteBuffer(string: "event: message\ndata: 1\n\n"))
            try await writer.write(ByteBuffer(string: "event: message\ndata: 2\n\n"))
            try await writer.finish(nil)
        })
        try await stream.body.write(HTTP1Connection.BodyWriter(connection: connection, head: stream.head))
        var parts: [String] = []
        while let part = try channel.readOutbound(as: HTTPResponsePart.self) {
            switch part {
            case .head(let head): parts.append("head \(head.status.code) \(head.headerFields[.contentType] ?? "")")
            case .body(var buffer): parts.append("body \(buffer.readString(length: buffer.readableBytes) ?? "")")
            case .end: parts.append("end")
            }
        }
        #expect(parts == [
            "head 200 application/json", #"body {"ok":true}"#, "end",
            "head 200 text/event-stream", "body event: message\ndata: 1\n\n", "body event: message\ndata: 2\n\n", "end",
        ])
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("writing to a closed connection fails instead of pretending, so a stream stops and its upstream call is cancelled")
    func writeAfterClose() async throws {
        let (channel, connection) = try await connected()
        var writer = HTTP1Connection.BodyWriter(connection: connection, head: HTTPResponse(status: .ok))
        try await writer.write(bytes("event: message\ndata: 1\n\n"))
        try await channel.close()
        await #expect(throws: (any Error).self) { try await writer.write(bytes("event: message\ndata: 2\n\n")) }
    }

    @Test("the Date header is an IMF-fixdate")
    func dateHeader() {
        #expect(HTTPDate.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(1_796_599_153) == "Sun, 06 Dec 2026 23:19:13 GMT")
        #expect(HTTPDate.now().hasSuffix(" GMT"))
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

/// Counts the reads that reach the head of the pipeline.
final class ReadCounter: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = Any
    private(set) var count = 0
    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
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
