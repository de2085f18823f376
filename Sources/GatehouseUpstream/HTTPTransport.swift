import AsyncHTTPClient
import Foundation
import GatehouseConfig
import Logging
import MCPWire
import NIOCore
import NIOHTTP1
import NIOSSL

/// Streamable HTTP, client side: one POST per message, answers read as JSON or as an SSE stream
/// whose events are handed over as they arrive.
struct HTTPTransport: Sendable {
    let serverName: String
    /// The server's endpoints and the balancer between them.
    let members: UpstreamMembers
    let headers: [(name: String, value: Secret)]
    /// A bearer token for the upstream from its own authorization server (never the client's).
    let credentials: ClientCredentialsToken?
    let client: HTTPClient
    /// Long-lived GET streams use their own pool, so that many open streams can never take
    /// every connection the requests need.
    let streamClient: HTTPClient
    let logger: Logger
    /// TLS towards an https upstream (`spec.http.tls`); nil: the client's defaults.
    var tls: TLSConfiguration? = nil
    /// The lean client per member for plain-HTTP endpoints (nil: https, served by `client`).
    var lean: [UpstreamHTTPClient?] = []
    static let maxJSONBody = 32 << 20

    /// The TLS settings of `spec.http.tls`: its CA bundle instead of the system's, its client
    /// certificate; TLS 1.2 or later.
    static func tlsConfiguration(_ config: ServerConfig.HTTP.UpstreamTLS?) -> TLSConfiguration? {
        guard let config else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let ca = config.caFile { tls.trustRoots = .file(ca) }
        if let certificate = config.certificateFile, let key = config.keyFile {
            tls.certificateChain = (try? NIOSSLCertificate.fromPEMFile(certificate))?.map { .certificate($0) } ?? []
            if let privateKey = try? NIOSSLPrivateKey(file: key, format: .pem) { tls.privateKey = .privateKey(privateKey) }
        }
        return tls
    }

    struct Head: Sendable {
        var status: Int
        var sessionID: String?
        /// The member that answered (a session created here lives on it).
        var member: Int
    }

    /// Posts one message. `onMessage` gets each message of the answer in order and returns
    /// false to stop reading (the final response arrived). Upstream HTTP errors whose body is a
    /// JSON-RPC error are delivered as messages; other failures throw `UpstreamError`.
    /// `member` pins the request to one endpoint (a session's); nil lets the balancer pick, and
    /// a refused connection fails over to the next member (the request never left, so this is
    /// safe for any method).
    @discardableResult
    func post(
        _ message: JSONRPCMessage, sessionID: String?, version: ProtocolVersion, member: Int? = nil, probe: Bool = false,
        extraHeaders: [(String, String)] = [], onMessage: (JSONRPCMessage) async throws -> Bool
    ) async throws -> Head {
        let exchange = HTTPExchange(transport: self, message: message, sessionID: sessionID, version: version, member: member,
                                    probe: probe, extraHeaders: extraHeaders)
        defer { exchange.close() }
        while let incoming = try await exchange.next() {
            if try await !onMessage(incoming) { break }
        }
        guard let head = exchange.head else {
            throw UpstreamError(upstream: serverName, kind: .unavailable, detail: "no endpoint could be reached")
        }
        return head
    }

    /// Whether requests pinned to `member` (nil: balanced over all) go through the lean client,
    /// whose requests can be cancelled from outside the reading task.
    func isLean(member: Int?) -> Bool {
        if let member { return member < lean.count && lean[member] != nil }
        return !lean.isEmpty && lean.allSatisfy { $0 != nil }
    }

    /// The headers of a POST carrying `message`.
    func postHeaders(for message: JSONRPCMessage, sessionID: String?, version: ProtocolVersion, extraHeaders: [(String, String)]) async throws -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.reserveCapacity(8 + self.headers.count + extraHeaders.count)
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Accept", value: "application/json, text/event-stream")
        try await addCommonHeaders(&headers, sessionID: sessionID, version: version)
        if version.isStateless, let method = message.method {
            headers.add(name: MCPHeader.method, value: method)
            if let field = StatelessRequestRules.nameField(for: method), let name = message.params?[field]?.stringValue {
                headers.add(name: MCPHeader.name, value: StatelessRequestRules.encodeHeaderValue(name))
            }
        }
        // A policy decision's headers: added, never replacing the gateway's own.
        for (name, value) in extraHeaders where headers[name].isEmpty { headers.add(name: name, value: value) }
        return headers
    }

    /// An upstream's answer, from either client.
    struct Reply {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: Body

        enum Body {
            /// Collected by the lean client (every answer but an event stream).
            case complete(ByteBuffer)
            /// An event stream from the lean client, pulled chunk by chunk.
            case stream(UpstreamBodyStream)
            /// AsyncHTTPClient's body (https endpoints).
            case client(HTTPClientResponse.Body)
        }
    }

    /// Reads a body chunk by chunk, whichever client received it.
    struct ChunkReader {
        private var complete: ByteBuffer?
        private var stream: UpstreamBodyStream?
        private var client: HTTPClientResponse.Body.AsyncIterator?

        init(_ body: Reply.Body) {
            switch body {
            case .complete(let buffer): complete = buffer
            case .stream(let stream): self.stream = stream
            case .client(let body): client = body.makeAsyncIterator()
            }
        }

        mutating func next() async throws -> ByteBuffer? {
            if let stream { return try await stream.next() }
            if client != nil { return try await client!.next() }
            defer { complete = nil }
            return complete
        }
    }

    /// Opens the session-era standalone GET stream and hands over its messages until it ends.
    /// Returns false if the server does not offer one (405).
    func listen(sessionID: String?, version: ProtocolVersion, member: Int, onMessage: (JSONRPCMessage) async -> Void) async throws -> Bool {
        var request = HTTPClientRequest(url: members.urls[member])
        request.method = .GET
        request.tlsConfiguration = tls
        request.headers.add(name: "Accept", value: "text/event-stream")
        try await addCommonHeaders(&request.headers, sessionID: sessionID, version: version)
        let response = try await streamClient.execute(request, timeout: .hours(24 * 365))
        guard response.status == .ok else { return false }
        var parser = SSEParser()
        for try await chunk in response.body {
            for event in try parser.feed(chunk.readableBytesView) where !event.data.isEmpty {
                if let message = try? decode(Array(event.data.utf8)) { await onMessage(message) }
            }
        }
        return true
    }

    /// Ends a session (DELETE), best effort.
    func delete(sessionID: String, version: ProtocolVersion, member: Int) async {
        var request = HTTPClientRequest(url: members.urls[member])
        request.method = .DELETE
        request.tlsConfiguration = tls
        guard (try? await addCommonHeaders(&request.headers, sessionID: sessionID, version: version)) != nil else { return }
        _ = try? await client.execute(request, timeout: .seconds(2))
    }

    private func addCommonHeaders(_ headers: inout HTTPHeaders, sessionID: String?, version: ProtocolVersion) async throws {
        if version.hasVersionHeader { headers.add(name: MCPHeader.protocolVersion, value: version.rawValue) }
        if let sessionID { headers.add(name: MCPHeader.sessionID, value: sessionID) }
        for header in self.headers { headers.add(name: header.name, value: header.value.value) }
        if let credentials { headers.replaceOrAdd(name: "Authorization", value: "Bearer \(try await credentials.bearer())") }
    }

    /// Sends one request to one member: through the lean client for plain-HTTP endpoints,
    /// through AsyncHTTPClient for https.
    func execute(_ method: HTTPMethod, member: Int, headers: HTTPHeaders, body: ByteBuffer,
                 cancellation: UpstreamHTTPClient.Cancellation? = nil) async throws -> Reply {
        if member < lean.count, let lean = lean[member] {
            do {
                let response = try await lean.execute(method: method, headers: headers, body: body, cancellation: cancellation)
                switch response.body {
                case .complete(let buffer): return Reply(status: response.head.status, headers: response.head.headers, body: .complete(buffer))
                case .stream(let stream): return Reply(status: response.head.status, headers: response.head.headers, body: .stream(stream))
                }
            } catch is CancellationError {
                throw CancellationError()
            } catch let failure as UpstreamHTTPClient.Failure {
                if Task.isCancelled { throw CancellationError() }
                let detail: String
                var neverSent = false
                switch failure {
                case .connectionRefused:
                    detail = "connection refused"
                    neverSent = true
                case .connectTimeout:
                    detail = "connecting timed out"
                    neverSent = true
                case .connectFailed: detail = "the connection could not be made"
                case .connectionClosed: detail = "the connection was closed"
                case .bodyTooLarge:
                    throw UpstreamError(upstream: serverName, kind: .protocolViolation, detail: "the response body is larger than \(Self.maxJSONBody >> 20) MB")
                }
                logger.warning("upstream request failed", metadata: ["upstream": "\(serverName)", "error": "\(failure)"])
                throw UpstreamError(upstream: serverName, kind: .unavailable, detail: detail, neverSent: neverSent)
            }
        }
        var request = HTTPClientRequest(url: members.urls[member])
        request.method = method
        request.headers = headers
        request.tlsConfiguration = tls
        request.body = .bytes(body)
        let response = try await execute(request)
        return Reply(status: response.status, headers: response.headers, body: .client(response.body))
    }

    private func execute(_ request: HTTPClientRequest) async throws -> HTTPClientResponse {
        do {
            return try await client.execute(request, timeout: .hours(24))
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if Task.isCancelled { throw CancellationError() }
            logger.warning("upstream request failed", metadata: ["upstream": "\(serverName)", "error": "\(error)"])
            let (detail, neverSent) = Self.classify(error)
            throw UpstreamError(upstream: serverName, kind: .unavailable, detail: detail, neverSent: neverSent)
        }
    }

    /// What an AsyncHTTPClient failure means for the client, and whether the request never left
    /// (no connection). AsyncHTTPClient wraps NIO's connection errors in several types; their
    /// descriptions are the one stable thing they share, so this reads them once, here.
    static func classify(_ error: any Error) -> (detail: String, neverSent: Bool) {
        let text = String(describing: error)
        if text.contains("connectTimeout") { return ("connecting timed out", true) }
        if text.contains("refused") || text.contains("connectionRefused") || text.contains("ECONNREFUSED") { return ("connection refused", true) }
        if text.contains("remoteConnectionClosed") { return ("the connection was closed", false) }
        if text.contains("handshake") || text.contains("NIOSSL") || text.contains("certificate") || text.contains("BoringSSL") {
            return ("the TLS handshake failed (is its certificate trusted? see spec.http.tls.caFile)", false)
        }
        return ("the request failed", false)
    }

    func decode(_ bytes: [UInt8]) throws -> JSONRPCMessage {
        do {
            return try JSONRPCMessage(document: try JSONParser.parseDocument(bytes, maxDepth: 256), bytes: bytes)
        } catch {
            throw UpstreamError(upstream: serverName, kind: .protocolViolation, detail: "\(error)")
        }
    }

    /// The messages of a JSON answer: one, whose bytes can be relayed, or a batch.
    func messages(in document: JSONParser.Document, bytes: some Collection<UInt8>) throws -> [JSONRPCMessage] {
        do {
            if case .array(let items) = document.value { return try items.map { try JSONRPCMessage(validating: $0) } }
            return [try JSONRPCMessage(document: document, bytes: bytes)]
        } catch {
            throw UpstreamError(upstream: serverName, kind: .protocolViolation, detail: "\(error)")
        }
    }
}
