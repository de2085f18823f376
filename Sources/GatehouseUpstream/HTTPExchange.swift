import GatehouseConfig
import Logging
import MCPWire
import NIOCore
import NIOHTTP1

/// One POST to a Streamable HTTP upstream, read message by message by the task that asks:
/// the request goes out on the first `next()`, a JSON answer is parsed whole, an SSE answer
/// is parsed as its chunks are pulled. No task of its own, so an answer reaches the caller
/// without a hop between tasks.
///
/// The endpoint is chosen here: a request pinned to a member (a session's) goes there; others
/// go to the balancer's pick and, if the connection cannot be made (the request never left),
/// to the next member. Each exchange reports its outcome to the member's health exactly once.
final class HTTPExchange: @unchecked Sendable {
    // Used by one task at a time; only `cancel()` may come from elsewhere.
    private let transport: HTTPTransport
    private let message: JSONRPCMessage
    private let sessionID: String?
    private let version: ProtocolVersion
    private let pinned: Int?
    private let probe: Bool
    private let extraHeaders: [(String, String)]
    /// Closes the connection of a lean request or stream (timeouts, abandoned calls).
    let cancellation = UpstreamHTTPClient.Cancellation()

    /// Status, upstream session id and member of the answer, once it has come.
    private(set) var head: HTTPTransport.Head?
    private var started = false
    private var status: HTTPResponseStatus = .ok
    private var member = 0
    private var queued: [JSONRPCMessage] = []
    private var nextQueued = 0
    private var chunks: HTTPTransport.ChunkReader?
    private var stream: UpstreamBodyStream?
    private var parser = SSEParser()
    private var settled = true

    init(transport: HTTPTransport, message: JSONRPCMessage, sessionID: String?, version: ProtocolVersion, member: Int?,
         probe: Bool, extraHeaders: [(String, String)]) {
        self.transport = transport
        self.message = message
        self.sessionID = sessionID
        self.version = version
        self.pinned = member
        self.probe = probe
        self.extraHeaders = extraHeaders
    }

    private var serverName: String { transport.serverName }

    /// The next message of the answer; nil when it has ended. Throws `UpstreamError` (or
    /// `CancellationError`).
    func next() async throws -> JSONRPCMessage? {
        if !started {
            started = true
            try await start()
        }
        if nextQueued < queued.count {
            defer { nextQueued += 1 }
            return queued[nextQueued]
        }
        guard chunks != nil else {
            settle(nil)
            return nil
        }
        do {
            while true {
                if nextQueued < queued.count {
                    defer { nextQueued += 1 }
                    return queued[nextQueued]
                }
                queued.removeAll(keepingCapacity: true)
                nextQueued = 0
                guard let chunk = try await chunks!.next() else {
                    chunks = nil
                    stream = nil
                    settle(nil)
                    return nil
                }
                for event in try parser.feed(chunk.readableBytesView) where event.event == nil || event.event == "message" {
                    guard !event.data.isEmpty else { continue }
                    queued.append(try transport.decode(Array(event.data.utf8)))
                }
            }
        } catch {
            let mapped = streamError(error)
            settle(mapped)
            throw mapped
        }
    }

    /// Stops reading: what is left of an event stream is dropped with its connection.
    func close() {
        stream?.close()
        stream = nil
        chunks = nil
        settle(nil)
    }

    /// From any thread: closes the connection of a lean request (the reading task then fails).
    func cancel() {
        cancellation.cancel()
    }

    private func start() async throws {
        let headers = try await transport.postHeaders(for: message, sessionID: sessionID, version: version, extraHeaders: extraHeaders)
        let body = ByteBuffer(bytes: message.bytes)
        let members = transport.members
        let order = pinned.map { [$0] } ?? members.candidates()
        for (attempt, index) in order.enumerated() {
            if !probe { members.begin(index) }
            let reply: HTTPTransport.Reply
            do {
                reply = try await transport.execute(.POST, member: index, headers: headers, body: body, cancellation: cancellation)
            } catch let error as UpstreamError where error.neverSent && pinned == nil && attempt + 1 < order.count {
                if !probe { members.end(index, .failure) }
                continue
            } catch let error as UpstreamError where error.neverSent && sessionID != nil && members.count > 1 && !probe {
                // A session's endpoint is gone: the session is lost with it. Said as an ended
                // session, so a pooled one is reopened on another endpoint and a client's
                // session ends (it re-initializes) instead of failing forever.
                members.end(index, .failure)
                throw UpstreamError(upstream: serverName, kind: .sessionExpired, detail: "the endpoint of its session cannot be reached (\(error.detail))",
                                    operatorDetail: "endpoint \(DisplayURL.redacted(members.urls[index]))")
            } catch {
                if !probe { members.end(index, error is CancellationError ? .neutral : .failure) }
                throw error
            }
            member = index
            status = reply.status
            settled = probe
            do {
                try await open(reply)
            } catch {
                settle(error)
                throw error
            }
            return
        }
        throw UpstreamError(upstream: serverName, kind: .unavailable, detail: "no endpoint could be reached")
    }

    /// Takes in the answer's head and, for JSON, its messages.
    private func open(_ reply: HTTPTransport.Reply) async throws {
        if case .stream(let stream) = reply.body {
            self.stream = stream
            cancellation.onCancel { stream.close() }
        }
        // A refused upstream token is fetched anew for the next request.
        if status == .unauthorized { transport.credentials?.invalidate() }
        head = HTTPTransport.Head(status: Int(status.code), sessionID: reply.headers.first(name: MCPHeader.sessionID), member: member)
        if status == .accepted { return }
        if status == .notFound, sessionID != nil {
            throw UpstreamError(upstream: serverName, kind: .sessionExpired, detail: "HTTP 404 for its session")
        }
        let contentType = reply.headers.first(name: "content-type")?.lowercased() ?? ""
        if contentType.hasPrefix("text/event-stream"), status == .ok {
            chunks = HTTPTransport.ChunkReader(reply.body)
            return
        }
        let body: ByteBuffer
        switch reply.body {
        case .complete(let whole):
            body = whole
        case .stream, .client:
            var reader = HTTPTransport.ChunkReader(reply.body)
            var collected = ByteBuffer()
            do {
                while var chunk = try await reader.next() {
                    guard collected.readableBytes + chunk.readableBytes <= HTTPTransport.maxJSONBody else {
                        throw UpstreamError(upstream: serverName, kind: .protocolViolation,
                                            detail: "the response body is larger than \(HTTPTransport.maxJSONBody >> 20) MB")
                    }
                    collected.writeBuffer(&chunk)
                }
            } catch let error as UpstreamError {
                throw error
            } catch {
                if Task.isCancelled { throw CancellationError() }
                throw UpstreamError(upstream: serverName, kind: .protocolViolation, detail: "the response body could not be read")
            }
            body = collected
            stream = nil
        }
        if (200..<300).contains(status.code) || contentType.hasPrefix("application/json") {
            if let document = try? JSONParser.parseDocument(body.readableBytesView, maxDepth: 256) {
                queued = try transport.messages(in: document, bytes: body.readableBytesView)
                return
            }
        }
        guard (200..<300).contains(status.code) else {
            transport.logger.debug("upstream HTTP error", metadata: ["upstream": "\(serverName)", "status": "\(status.code)"])
            // Redirects are not followed (a gateway must not be steered elsewhere by an answer):
            // say where it points, so the config can name the final URL.
            if (300..<400).contains(status.code), let location = reply.headers.first(name: "location") {
                throw UpstreamError(upstream: serverName, kind: .unavailable,
                                    detail: "it answered HTTP \(status.code), a redirect; redirects are not followed, put the final URL in spec.http.url (the gateway log names the target)",
                                    operatorDetail: "redirecting to \(Self.withoutQuery(location))")
            }
            throw UpstreamError(upstream: serverName, kind: .unavailable, detail: "it answered HTTP \(status.code)")
        }
        throw UpstreamError(upstream: serverName, kind: .protocolViolation, detail: "the response is not JSON-RPC")
    }

    private func streamError(_ error: any Error) -> any Error {
        if error is UpstreamError || error is CancellationError { return error }
        if Task.isCancelled || cancellation.isCancelled { return CancellationError() }
        transport.logger.warning("upstream stream failed", metadata: ["upstream": "\(serverName)", "error": "\(error)"])
        return UpstreamError(upstream: serverName, kind: .unavailable, detail: "the response stream broke off")
    }

    /// Reports the outcome to the member's health, once: 5xx answers and broken connections
    /// count against it, cancellations count for nothing.
    private func settle(_ error: (any Error)?) {
        guard !settled else { return }
        settled = true
        guard let error else {
            transport.members.end(member, status.code >= 500 ? .failure : .success)
            return
        }
        let failed = status.code >= 500 || (error as? UpstreamError)?.kind == .unavailable
        transport.members.end(member, error is CancellationError ? .neutral : failed ? .failure : .success)
    }
}

extension HTTPExchange {
    /// A redirect target for the log: its query (which may carry credentials) and user info
    /// removed, at most 200 characters.
    static func withoutQuery(_ location: String) -> String {
        let base = location.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        return String(DisplayURL.redacted(base).prefix(200))
    }
}
