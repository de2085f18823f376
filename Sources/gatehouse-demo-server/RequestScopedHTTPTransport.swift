// A thin wrapper around the SDK's StatefulHTTPServerTransport that sends the messages a
// request handler emits (progress notifications, log messages, server-to-client requests
// such as roots/list) on that request's own POST SSE stream.
//
// Why: in swift-sdk 0.12.1, StatefulHTTPServerTransport.send(_:) routes every notification
// and every server-initiated request to the standalone GET stream (its per-request routing,
// routeToRequestStream, is private). The spec says such messages SHOULD go on the stream of
// the request they relate to, and a client that has not opened a GET stream (or has not
// opened it yet) would otherwise never see a tool's progress. Everything else (sessions,
// validation, priming events, resumability, GET, DELETE) is left to the SDK transport.

import Foundation
import Logging
import MCP

actor RequestScopedHTTPTransport: Transport, HTTPContextProviding {
    nonisolated let logger: Logger

    private let inner: StatefulHTTPServerTransport
    private var incoming: AsyncThrowingStream<Data, Swift.Error>?

    /// Open POST streams, by JSON-RPC request id (as the SDK spells ids: string, or decimal
    /// integer). Each wraps the SDK's stream for that request so extra events can be added.
    private var requestStreams: [String: RequestStream] = [:]
    /// Progress token → request id, for requests that asked for progress.
    private var progressTokens: [String: String] = [:]
    private var nextStreamSerial = 0

    private struct RequestStream {
        let serial: Int
        let continuation: AsyncThrowingStream<Data, Swift.Error>.Continuation
        let progressTokenKey: String?
    }

    init(inner: StatefulHTTPServerTransport, logger: Logger) {
        self.inner = inner
        self.logger = logger
    }

    // MARK: Transport

    func connect() async throws {
        try await inner.connect()
        incoming = await inner.receive()
    }

    func disconnect() async {
        await inner.disconnect()
        finishAll()
    }

    func receive() -> AsyncThrowingStream<Data, Swift.Error> {
        // Server.start(transport:) connects before it receives, so `incoming` is set by now.
        if let incoming { return incoming }
        return AsyncThrowingStream { $0.finish(throwing: MCPError.internalError("not connected")) }
    }

    func send(_ data: Data) async throws {
        if let message = JSONRPCEnvelope(data: data), message.method != nil,
            let requestID = relatedRequestID(for: message),
            let stream = requestStreams[requestID]
        {
            // A notification or server-to-client request that belongs to an in-flight
            // client request: put it on that request's SSE stream, ahead of its response.
            stream.continuation.yield(Self.sseMessageEvent(data))
            return
        }
        try await inner.send(data)
    }

    // MARK: HTTPContextProviding

    func httpRequestContext(for id: ID) async -> MCP.HTTPRequest? {
        await inner.httpRequestContext(for: id)
    }

    // MARK: HTTP

    /// Handles one HTTP request for this session (POST, GET or DELETE on the MCP endpoint).
    func handleRequest(_ request: MCP.HTTPRequest) async -> MCP.HTTPResponse {
        // Register the wrapper stream before the SDK transport hands the message to the
        // server, so nothing the handler sends early can miss it.
        var registered: (id: String, serial: Int, stream: AsyncThrowingStream<Data, Swift.Error>)?
        if request.method.uppercased() == "POST", let body = request.body,
            let message = JSONRPCEnvelope(data: body), message.method != nil,
            let id = message.id
        {
            let (stream, continuation) = AsyncThrowingStream<Data, Swift.Error>.makeStream()
            nextStreamSerial += 1
            let serial = nextStreamSerial
            let tokenKey = message.progressTokenKey
            requestStreams[id]?.continuation.finish()
            requestStreams[id] = RequestStream(
                serial: serial, continuation: continuation, progressTokenKey: tokenKey)
            if let tokenKey { progressTokens[tokenKey] = id }
            registered = (id, serial, stream)
        }

        let response = await inner.handleRequest(request)

        guard let registered else { return response }
        guard case .stream(let innerStream, let headers) = response else {
            // Rejected (validation error etc.): no stream to extend.
            removeStream(id: registered.id, serial: registered.serial)
            return response
        }
        let id = registered.id
        let serial = registered.serial
        guard let continuation = requestStreams[id]?.continuation else { return response }
        Task { [weak self] in
            do {
                for try await chunk in innerStream {
                    continuation.yield(chunk)
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
            await self?.removeStream(id: id, serial: serial)
        }
        return .stream(registered.stream, headers: headers)
    }

    // MARK: Routing helpers

    private func relatedRequestID(for message: JSONRPCEnvelope) -> String? {
        if message.method == ProgressNotification.name, let tokenKey = message.progressTokenKey,
            let id = progressTokens[tokenKey]
        {
            return id
        }
        // The SDK runs each handler with Server.currentHandlerContext set (a task-local that
        // unstructured child tasks inherit, including the ones Server uses to send its own
        // requests); its httpContext is the POST that carried the request being handled.
        if let body = Server.currentHandlerContext?.httpContext?.body,
            let origin = JSONRPCEnvelope(data: body), origin.method != nil
        {
            return origin.id
        }
        return nil
    }

    private func removeStream(id: String, serial: Int) {
        guard let stream = requestStreams[id], stream.serial == serial else { return }
        requestStreams.removeValue(forKey: id)
        if let tokenKey = stream.progressTokenKey, progressTokens[tokenKey] == id {
            progressTokens.removeValue(forKey: tokenKey)
        }
    }

    private func finishAll() {
        for stream in requestStreams.values {
            stream.continuation.finish()
        }
        requestStreams.removeAll()
        progressTokens.removeAll()
    }

    private static func sseMessageEvent(_ data: Data) -> Data {
        // JSONEncoder output has no raw newlines, so one data: line suffices.
        Data("event: message\ndata: ".utf8) + data + Data("\n\n".utf8)
    }
}

/// The few JSON-RPC fields routing needs.
struct JSONRPCEnvelope {
    let id: String?
    let method: String?
    let progressTokenKey: String?

    init?(data: Data) {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return nil
        }
        id = Self.key(object["id"])
        method = object["method"] as? String
        let params = object["params"] as? [String: Any]
        let meta = params?["_meta"] as? [String: Any]
        // A progress notification names its token in params; a request, in params._meta.
        let tokenValue =
            method == ProgressNotification.name ? params?["progressToken"] : meta?["progressToken"]
        progressTokenKey = Self.key(tokenValue).map { token in
            (tokenValue is String ? "s:" : "n:") + token
        }
    }

    /// Spells an id (or token) the way the SDK's HTTP transport does: strings as is,
    /// integers in decimal.
    private static func key(_ value: Any?) -> String? {
        if let string = value as? String { return string }
        if let int = value as? Int { return String(int) }
        return nil
    }
}
