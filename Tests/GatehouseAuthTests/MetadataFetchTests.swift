import AsyncHTTPClient
import Foundation
import GatehouseConfig
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import GatehouseAuth

/// Client ID Metadata Document fetches: the address check and the connection pinned to the
/// checked address (no second DNS lookup, so no DNS rebinding window).
@Suite struct MetadataFetchTests {
    /// Answers every connection with one fixed HTTP response.
    final class FixedResponder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let body: String
        init(body: String) { self.body = body }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response)), promise: nil)
            context.close(promise: nil)
        }
    }

    func withClients(_ body: (OAuthClients) async throws -> Void) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gh-cimd-\(UUID().uuidString).db").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try await AuthStore.open(.sqlite(path: path), logger: Logger(label: "test"))
        let fetcher = HTTPClient(eventLoopGroupProvider: .singleton)
        let clients = OAuthClients(config: Auth.AuthorizationServer(), store: store, fetcher: fetcher, logger: Logger(label: "test"))
        var failure: (any Error)?
        do { try await body(clients) } catch { failure = error }
        try await fetcher.shutdown()
        await store.close()
        if let failure { throw failure }
    }

    @Test func checkedTargetsArePinnedToACheckedAddress() async throws {
        try await withClients { clients in
            let v4 = try clients.checkTarget("https://8.8.8.8/client.json")
            #expect(v4 == .init(host: "8.8.8.8", address: "8.8.8.8"))
            let v6 = try clients.checkTarget("https://[2606:4700::1111]/client.json")
            #expect(v6 == .init(host: "[2606:4700::1111]", address: "2606:4700::1111"))
            for url in ["https://[64:ff9b::7f00:1]/c.json", "https://[2002:a9fe:a9fe::1]/c.json", "https://[::ffff:0:a00:1]/c.json",
                        "https://localhost/c.json", "https://127.0.0.1/c.json"]
            {
                #expect(throws: OAuthClients.LookupError.self, "\(url)") { try clients.checkTarget(url) }
            }
        }
    }

    /// The fetch connects to the pinned address, whatever the name resolves to (here: nothing).
    @Test func theFetchConnectsToThePinnedAddress() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(FixedResponder(body: #"{"pinned":true}"#)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(server.localAddress?.port)
        try await withClients { clients in
            let body = try await clients.fetch("http://metadata.invalid:\(port)/client.json",
                                               pinned: .init(host: "metadata.invalid", address: "127.0.0.1"))
            #expect(String(buffer: body) == #"{"pinned":true}"#)
        }
        try await server.close()
    }
}
