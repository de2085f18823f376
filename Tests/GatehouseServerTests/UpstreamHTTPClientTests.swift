import Foundation
import GatehouseUpstream
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// The lean upstream client against a real HTTP/1.1 server on 127.0.0.1 (SwiftNIO's server
/// pipeline) whose behaviour each test chooses: keep-alive reuse, a connection closed as a
/// request arrives, SSE pulled chunk by chunk, body caps, refused connections, cancellation
/// and the connection cap.
@Suite("Lean upstream HTTP client")
struct UpstreamHTTPClientTests {
    @Test func endpointURLsAreParsed() throws {
        let plain = try #require(UpstreamHTTPClient.Endpoint(url: "http://127.0.0.1:9100/mcp?x=1"))
        #expect(plain.host == "127.0.0.1" && plain.port == 9100 && plain.target == "/mcp?x=1" && plain.authority == "127.0.0.1:9100")
        let bare = try #require(UpstreamHTTPClient.Endpoint(url: "http://example.internal"))
        #expect(bare.port == 80 && bare.target == "/")
        let v6 = try #require(UpstreamHTTPClient.Endpoint(url: "http://[::1]:8080/mcp"))
        #expect(v6.host == "::1" && v6.port == 8080)
        #expect(UpstreamHTTPClient.Endpoint(url: "https://example.internal/mcp") == nil)  // TLS stays on AsyncHTTPClient
        #expect(UpstreamHTTPClient.Endpoint(url: "http://user:pw@example.internal/") == nil)
        #expect(UpstreamHTTPClient.Endpoint(url: "http://example.internal:99999/") == nil)
    }

    @Test func keepAliveConnectionsAreReused() async throws {
        let server = try await TestHTTPServer.start { _, _ in .json("{\"ok\":true}") }
        defer { server.stop() }
        let client = server.client()
        for index in 0..<5 {
            let response = try await client.execute(method: .POST, headers: ["Content-Type": "application/json"], body: ByteBuffer(string: "{\"n\":\(index)}"))
            #expect(response.head.status == .ok)
            guard case .complete(let body) = response.body else { Issue.record("expected a complete body"); return }
            #expect(String(buffer: body) == "{\"ok\":true}")
        }
        #expect(server.state.withLock { $0.connections } == 1)
        #expect(server.state.withLock { $0.bodies } == (0..<5).map { "{\"n\":\($0)}" })
    }

    @Test func aConnectionClosedAsTheRequestArrivesIsRetriedOnANewOne() async throws {
        // The second request on any connection finds it closed (a server's keep-alive timeout
        // racing the request): the client sends it again on a new connection.
        let server = try await TestHTTPServer.start { request, connectionRequests in
            connectionRequests == 2 ? .closeWithoutAnswer : .json("{\"n\":\(request)}")
        }
        defer { server.stop() }
        let client = server.client()
        _ = try await client.execute(method: .POST, headers: [:], body: ByteBuffer(string: "1"))
        let second = try await client.execute(method: .POST, headers: [:], body: ByteBuffer(string: "2"))
        guard case .complete(let body) = second.body else { Issue.record("expected a complete body"); return }
        #expect(String(buffer: body) == "{\"n\":3}")  // the server's third request overall
        #expect(server.state.withLock { $0.connections } == 2)
    }

    @Test func aFirstRequestOnANewConnectionIsNotRetried() async throws {
        let server = try await TestHTTPServer.start { _, _ in .closeWithoutAnswer }
        defer { server.stop() }
        await #expect(throws: UpstreamHTTPClient.Failure.connectionClosed) {
            _ = try await server.client().execute(method: .POST, headers: [:], body: ByteBuffer(string: "x"))
        }
        #expect(server.state.withLock { $0.requests } == 1)
    }

    @Test func eventStreamsArePulledAsTheyArrive() async throws {
        let release = Gate()
        let server = try await TestHTTPServer.start { _, _ in .sse(first: "data: one\n\n", then: "data: two\n\n", after: release) }
        defer { server.stop() }
        let client = server.client()
        let response = try await client.execute(method: .POST, headers: [:], body: ByteBuffer(string: "x"))
        guard case .stream(let stream) = response.body else { Issue.record("expected a stream"); return }
        // The first event arrives while the server still holds the second.
        let first = try await stream.next()
        #expect(first.map { String(buffer: $0) } == "data: one\n\n")
        release.open()
        var rest = ""
        while let chunk = try await stream.next() { rest += String(buffer: chunk) }
        #expect(rest == "data: two\n\n")
        // The connection went back to the pool after the stream ended.
        _ = try await client.execute(method: .POST, headers: [:], body: ByteBuffer(string: "y"))
        #expect(server.state.withLock { $0.connections } == 1)
    }

    @Test func anAbandonedStreamClosesItsConnection() async throws {
        let release = Gate()
        let server = try await TestHTTPServer.start { _, count in
            count == 1 ? .sse(first: "data: one\n\n", then: "data: two\n\n", after: release) : .json("{}")
        }
        defer { server.stop() }
        let client = server.client()
        let response = try await client.execute(method: .POST, headers: [:], body: ByteBuffer(string: "x"))
        guard case .stream(let stream) = response.body else { Issue.record("expected a stream"); return }
        _ = try await stream.next()
        stream.close()
        try await server.waitUntil { $0.closed == 1 }
        release.open()
        _ = try await client.execute(method: .POST, headers: [:], body: ByteBuffer(string: "y"))
        #expect(server.state.withLock { $0.connections } == 2)
    }

    @Test func bodiesOverTheCapFail() async throws {
        let server = try await TestHTTPServer.start { _, _ in .json(String(repeating: "x", count: 4096)) }
        defer { server.stop() }
        await #expect(throws: UpstreamHTTPClient.Failure.bodyTooLarge) {
            _ = try await server.client(maxBody: 1024).execute(method: .POST, headers: [:], body: ByteBuffer())
        }
    }

    @Test func aRefusedConnectionSaysSo() async throws {
        // A port that was just free.
        let server = try await TestHTTPServer.start { _, _ in .json("{}") }
        let port = server.port
        server.stop()
        try await Task.sleep(for: .milliseconds(50))
        let client = UpstreamHTTPClient(endpoint: try #require(.init(url: "http://127.0.0.1:\(port)/mcp")), group: .singleton)
        await #expect(throws: UpstreamHTTPClient.Failure.connectionRefused) {
            _ = try await client.execute(method: .POST, headers: [:], body: ByteBuffer())
        }
    }

    @Test func cancellingARequestClosesItsConnection() async throws {
        let server = try await TestHTTPServer.start { _, _ in .neverAnswer }
        defer { server.stop() }
        let client = server.client()
        let task = Task { try await client.execute(method: .POST, headers: [:], body: ByteBuffer(string: "slow")) }
        try await server.waitUntil { $0.requests == 1 }
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        // The server learns of the cancellation by the closed connection.
        try await server.waitUntil { $0.closed == 1 }
    }

    @Test func theConnectionCapMakesRequestsWait() async throws {
        let server = try await TestHTTPServer.start { _, _ in .json("{}", delay: .milliseconds(30)) }
        defer { server.stop() }
        // One loop, so the cap of one connection per loop is one connection in all.
        let client = UpstreamHTTPClient(endpoint: try #require(.init(url: "http://127.0.0.1:\(server.port)/mcp")), maxConnections: 1,
                                        group: TestHTTPServer.clientGroup)
        try await withThrowingTaskGroup(of: HTTPResponseStatus.self) { tasks in
            for _ in 0..<4 {
                tasks.addTask { try await client.execute(method: .POST, headers: [:], body: ByteBuffer()).head.status }
            }
            for try await status in tasks { #expect(status == .ok) }
        }
        #expect(server.state.withLock { $0.connections } == 1)
        #expect(server.state.withLock { $0.requests } == 4)
    }
}

/// A one-shot latch a test opens to let the server continue.
final class Gate: Sendable {
    private let opened = Mutex(false)
    func open() { opened.withLock { $0 = true } }
    var isOpen: Bool { opened.withLock { $0 } }
}

/// A small HTTP/1.1 server; `respond(requestNumberOverall, requestNumberOnConnection)` says
/// what to do with each request.
final class TestHTTPServer: Sendable {
    enum Action: Sendable {
        case json(String, delay: TimeAmount = .zero)
        case sse(first: String, then: String, after: Gate)
        case closeWithoutAnswer
        case neverAnswer
    }

    struct State: Sendable {
        var connections = 0
        var closed = 0
        var requests = 0
        var bodies: [String] = []
    }

    let state = Mutex(State())
    let channel: any Channel
    let port: Int

    private init(channel: any Channel) {
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
    }

    static func start(_ respond: @escaping @Sendable (Int, Int) -> Action) async throws -> TestHTTPServer {
        let box = Mutex<TestHTTPServer?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(server: { box.withLock { $0 } }, respond: respond))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = TestHTTPServer(channel: channel)
        box.withLock { $0 = server }
        return server
    }

    /// Clients on one event loop: a test's task runs outside SwiftNIO's loops, and a client
    /// picks a loop's pool at random for such callers.
    static let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    func client(maxBody: Int = 32 << 20) -> UpstreamHTTPClient {
        UpstreamHTTPClient(endpoint: .init(url: "http://127.0.0.1:\(port)/mcp")!, maxBody: maxBody, group: Self.clientGroup)
    }

    func stop() { channel.close(promise: nil) }

    func waitUntil(_ condition: (State) -> Bool) async throws {
        for _ in 0..<200 {
            if state.withLock({ condition($0) }) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("the server never reached the expected state: \(state.withLock { $0 })")
    }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: @Sendable () -> TestHTTPServer?
        let respond: @Sendable (Int, Int) -> Action
        var onConnection = 0
        var body = ""

        init(server: @escaping @Sendable () -> TestHTTPServer?, respond: @escaping @Sendable (Int, Int) -> Action) {
            self.server = server
            self.respond = respond
        }

        func channelActive(context: ChannelHandlerContext) {
            server()?.state.withLock { $0.connections += 1 }
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            server()?.state.withLock { $0.closed += 1 }
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head:
                body = ""
            case .body(let chunk):
                body += String(buffer: chunk)
            case .end:
                onConnection += 1
                let overall = server()?.state.withLock { state -> Int in
                    state.requests += 1
                    state.bodies.append(body)
                    return state.requests
                } ?? 0
                act(respond(overall, onConnection), context: context)
            }
        }

        private func act(_ action: Action, context: ChannelHandlerContext) {
            let loop = context.eventLoop
            switch action {
            case .json(let text, let delay):
                let send = {
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: "application/json")
                    headers.add(name: "Content-Length", value: String(text.utf8.count))
                    context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                    context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                    context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                }
                if delay == .zero { send() } else { loop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: delay) { send() } }
            case .sse(let first, let then, let gate):
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "text/event-stream")
                headers.add(name: "Transfer-Encoding", value: "chunked")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: first)))), promise: nil)
                func poll() {
                    guard context.channel.isActive else { return }
                    if gate.isOpen {
                        context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: then)))), promise: nil)
                        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                    } else {
                        loop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: .milliseconds(5)) { poll() }
                    }
                }
                poll()
            case .closeWithoutAnswer:
                context.close(promise: nil)
            case .neverAnswer:
                break
            }
        }
    }
}
