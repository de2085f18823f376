import Foundation
import GatehouseConfig
import Logging
import MCPWire
import NIOCore
import NIOPosix
import Synchronization

/// A channel to a Streamable HTTP upstream: either one upstream session (session-era upstream)
/// or stateless requests carrying `_meta` (2026-07-28 upstream).
final class HTTPChannel: UpstreamChannel, @unchecked Sendable {
    let transport: HTTPTransport
    let info: UpstreamInfo
    let client: ClientDescription
    let sessionID: String?
    /// The endpoint this channel's upstream session lives on (nil: stateless, balanced per request).
    let member: Int?
    /// With several endpoints, the member is part of the id kept in the client's session id, so
    /// a replica resuming the session reaches the same endpoint.
    var upstreamSessionID: String? {
        guard let sessionID else { return nil }
        guard transport.members.count > 1, let member else { return sessionID }
        return "\(member)~\(sessionID)"
    }
    let requestTimeout: Double
    fileprivate let lock = NSLock()
    private var nextID = 1
    /// The client's request id -> Gatehouse's id upstream, for cancellation.
    fileprivate var inFlight: [String: Int] = [:]
    private var unsolicited: (@Sendable (JSONRPCMessage) -> Void)?
    private var listenTask: Task<Void, Never>?
    private var closed = false

    init(transport: HTTPTransport, info: UpstreamInfo, client: ClientDescription, sessionID: String?, member: Int? = nil, requestTimeout: Double) {
        self.transport = transport
        self.member = member
        self.info = info
        self.client = client
        self.sessionID = sessionID
        self.requestTimeout = requestTimeout
    }

    /// Runs the session-era handshake and returns a channel bound to the new upstream session.
    static func initialize(transport: HTTPTransport, client: ClientDescription, member: Int? = nil, probe: Bool = false,
                           requestTimeout: Double) async throws -> HTTPChannel {
        let version = ProtocolVersion.latestSessionEra
        let request = JSONRPCMessage.request(id: 0, method: "initialize", params: [
            "protocolVersion": .string(version.rawValue),
            "capabilities": .object(client.capabilities),
            "clientInfo": .object(client.clientInfo),
        ])
        let box = Box<JSONRPCMessage?>(nil)
        let head = try await withTimeout(requestTimeout, upstream: transport.serverName) {
            try await transport.post(request, sessionID: nil, version: version, member: member, probe: probe) { message in
                if message.isResponse, message.id == .int(0) {
                    box.value = message
                    return false
                }
                return true
            }
        }
        guard let answer = box.value else {
            throw UpstreamError(upstream: transport.serverName, kind: .protocolViolation, detail: "no answer to initialize")
        }
        guard answer.kind == .response, let result = answer.result?.objectValue else {
            let message = answer.error?["message"]?.stringValue ?? "unknown error"
            throw UpstreamError(upstream: transport.serverName, kind: .unavailable, detail: "initialize failed: \(message)")
        }
        guard let negotiated = result["protocolVersion"]?.stringValue.flatMap(ProtocolVersion.init), !negotiated.isStateless else {
            throw UpstreamError(upstream: transport.serverName, kind: .protocolViolation,
                                detail: "it chose protocol version \(result["protocolVersion"].map(JSONWriter.string) ?? "none"), which Gatehouse does not speak")
        }
        let info = UpstreamInfo(
            version: negotiated, capabilities: result["capabilities"]?.objectValue ?? [:],
            serverInfo: result["serverInfo"]?.objectValue, instructions: result["instructions"]?.stringValue)
        let channel = HTTPChannel(transport: transport, info: info, client: client, sessionID: head.sessionID, member: head.member, requestTimeout: requestTimeout)
        try await transport.post(.notification(method: "notifications/initialized", params: nil), sessionID: head.sessionID, version: negotiated,
                                 member: head.member, probe: probe) { _ in true }
        channel.startListening()
        return channel
    }

    /// Asks a 2026-07-28 upstream `server/discover`. Returns nil if it is not a stateless server.
    static func discover(transport: HTTPTransport, member: Int? = nil, probe: Bool = false, requestTimeout: Double) async throws -> UpstreamInfo? {
        var discover = JSONRPCMessage.request(id: 0, method: "server/discover", params: [:])
        VersionBridge.prepareRequest(&discover, upstream: .v2026_07_28, client: .gateway)
        let request = discover
        let box = Box<JSONRPCMessage?>(nil)
        do {
            try await withTimeout(requestTimeout, upstream: transport.serverName) {
                try await transport.post(request, sessionID: nil, version: .v2026_07_28, member: member, probe: probe) { message in
                    if message.isResponse {
                        box.value = message
                        return false
                    }
                    return true
                }
            }
        } catch let error as UpstreamError where error.kind == .unavailable && error.detail.hasPrefix("it answered HTTP") {
            return nil  // a session-era server refusing the unknown request: fall back to initialize
        }
        guard let answer = box.value, answer.kind == .response, let result = answer.result?.objectValue,
            let versions = result["supportedVersions"]?.arrayValue, versions.contains(.string(ProtocolVersion.v2026_07_28.rawValue))
        else { return nil }
        return UpstreamInfo(
            version: .v2026_07_28, capabilities: result["capabilities"]?.objectValue ?? [:],
            serverInfo: result["_meta"]?[MetaKey.serverInfo]?.objectValue ?? result["serverInfo"]?.objectValue,
            instructions: result["instructions"]?.stringValue)
    }

    func startListening() {
        let task = Task { [weak self] in
            var delay = 0.5
            while !Task.isCancelled {
                guard let self else { return }
                do {
                    let offered = try await self.transport.listen(sessionID: self.sessionID, version: self.info.version, member: self.member ?? 0) { [weak self] message in
                        self?.deliverUnsolicited(message)
                    }
                    if !offered { return }
                    delay = 0.5
                } catch {
                    if Task.isCancelled { return }
                }
                try? await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 30)
            }
        }
        lock.withLock { listenTask = task }
    }

    private func deliverUnsolicited(_ message: JSONRPCMessage) {
        // Answers belong to requests; on the GET stream none is the gateway's to relay.
        guard !message.isResponse else {
            transport.logger.warning("dropping a response the upstream sent outside any request", metadata: ["upstream": "\(transport.serverName)"])
            return
        }
        let handler = lock.withLock { unsolicited }
        if let handler {
            handler(message)
        } else if message.kind == .request, let id = message.id {
            // Nobody to ask: refuse, so the upstream does not wait forever.
            Task { try? await self.send(response: .error(id: id, code: JSONRPCErrorCode.methodNotFound, message: "no client is connected to answer this request")) }
        }
    }

    func setUnsolicitedHandler(_ handler: @escaping @Sendable (JSONRPCMessage) -> Void) {
        lock.withLock { unsolicited = handler }
    }

    func send(request: JSONRPCMessage, headers: [(String, String)]) -> UpstreamEvents {
        var message = request
        let originalID = message.id ?? .null
        let upstreamID = lock.withLock { () -> Int in
            defer { nextID += 1 }
            return nextID
        }
        message.id = .int(upstreamID)
        // Progress tokens are unique per upstream session only if Gatehouse makes them so:
        // stateless clients of one identity share a session and may reuse tokens.
        let upstreamToken = JSONValue.string("gh-\(upstreamID)")
        let clientToken = message.replaceProgressToken(with: upstreamToken)
        VersionBridge.prepareRequest(&message, upstream: info.version, client: client)
        // The id map serves notifications/cancelled, which only session-era upstreams get.
        let key = info.version.isStateless ? nil : request.id?.idKey ?? ""
        if let key { lock.withLock { inFlight[key] = upstreamID } }
        let call = Call(channel: self, upstreamID: upstreamID, originalID: originalID, upstreamToken: upstreamToken, clientToken: clientToken, key: key)
        if transport.isLean(member: member) {
            // Read in the caller's task: the timeout closes the connection.
            return UpstreamEvents(source: PulledCall(call: call, exchange: HTTPExchange(
                transport: transport, message: message, sessionID: sessionID, version: info.version, member: member,
                probe: false, extraHeaders: headers)))
        }
        return UpstreamEvents(streamed(call, message: message, headers: headers))
    }

    /// What one request needs to map the answer back to the client.
    struct Call: Sendable {
        let channel: HTTPChannel
        let upstreamID: Int
        let originalID: JSONValue
        let upstreamToken: JSONValue
        let clientToken: JSONValue?
        let key: String?

        /// The event for a message of the answer; `final` when it is the response; nil for a
        /// response to something else. The upstream never saw the client's ids (they are
        /// rewritten), so such a response is forged or stray: relayed, a client could take it
        /// for the answer to one of its requests — a whole tools/list that no pin checked.
        func event(for incoming: JSONRPCMessage) -> (event: UpstreamEvent, final: Bool)? {
            if incoming.isResponse {
                guard incoming.id == .int(upstreamID) else {
                    channel.transport.logger.warning("dropping a response to a request the gateway did not send on this stream", metadata: [
                        "upstream": "\(channel.transport.serverName)",
                    ])
                    return nil
                }
                var response = incoming
                response.id = originalID
                return (.response(response), true)
            }
            if let clientToken, incoming.method == "notifications/progress", incoming.params?[MetaKey.progressToken] == upstreamToken {
                return (.message(incoming.withProgressToken(clientToken)), false)
            }
            return (.message(incoming), false)
        }

        func ended() {
            guard let key else { return }
            _ = channel.lock.withLock { channel.inFlight.removeValue(forKey: key) }
        }

        /// Session-era upstreams learn of cancellation by notification; stateless ones by the
        /// closed connection.
        func cancelled() {
            guard !channel.info.version.isStateless else { return }
            let channel = self.channel
            let upstreamID = self.upstreamID
            Task {
                try? await channel.send(notification: .notification(method: "notifications/cancelled", params: [
                    "requestId": .int(upstreamID), "reason": "the client cancelled the request",
                ]))
            }
        }

        var timeoutError: UpstreamError {
            UpstreamError(upstream: channel.transport.serverName, kind: .timeout, detail: "no answer within \(formatSeconds(channel.requestTimeout))")
        }
    }

    /// A request read in the caller's task (plain-HTTP upstreams): no task or stream between
    /// the upstream's answer and the client's.
    final class PulledCall: UpstreamEventSource, @unchecked Sendable {
        // Used by one task at a time; the timer only touches `timedOut` and the exchange's
        // cancellation, which are thread-safe.
        private let call: Call
        private let exchange: HTTPExchange
        private let timedOut = Mutex(false)
        private var timer: Scheduled<Void>?
        private var done = false

        init(call: Call, exchange: HTTPExchange) {
            self.call = call
            self.exchange = exchange
        }

        func next() async throws -> UpstreamEvent? {
            guard !done else { return nil }
            if timer == nil {
                let seconds = call.channel.requestTimeout
                timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(Int64(seconds * 1_000_000_000))) { [weak self] in
                    guard let self else { return }
                    self.timedOut.withLock { $0 = true }
                    self.exchange.cancel()
                }
            }
            do {
                while true {
                    guard let incoming = try await exchange.next() else {
                        finish()
                        throw UpstreamError(upstream: call.channel.transport.serverName, kind: .protocolViolation, detail: "it closed the stream without answering")
                    }
                    guard let (event, final) = call.event(for: incoming) else { continue }  // dropped
                    if final { finish() }
                    return event
                }
            } catch {
                let wasOpen = !done
                finish()
                if timedOut.withLock({ $0 }) { throw call.timeoutError }
                if error is CancellationError, wasOpen { call.cancelled() }
                throw error
            }
        }

        private func finish() {
            guard !done else { return }
            done = true
            timer?.cancel()
            exchange.close()
            call.ended()
        }

        func abandon() {
            guard !done else { return }
            finish()
            exchange.cancel()
            call.cancelled()
        }
    }

    /// A request read by a task of its own (https upstreams through AsyncHTTPClient, whose
    /// requests are cancelled by cancelling their task): the timeout cancels that task.
    private func streamed(_ call: Call, message outgoing: JSONRPCMessage, headers: [(String, String)]) -> AsyncThrowingStream<UpstreamEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<UpstreamEvent, any Error>.makeStream()
        let timedOut = Mutex(false)
        let running = Mutex<Task<Void, Never>?>(nil)
        let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(Int64(requestTimeout * 1_000_000_000))) {
            timedOut.withLock { $0 = true }
            running.withLock { $0 }?.cancel()
        }
        let task = Task {
            defer {
                timer.cancel()
                call.ended()
            }
            do {
                let answered = Box(false)
                try await self.transport.post(outgoing, sessionID: self.sessionID, version: self.info.version, member: self.member, extraHeaders: headers) { incoming in
                    guard let (event, final) = call.event(for: incoming) else { return true }
                    continuation.yield(event)
                    if final { answered.value = true }
                    return !final
                }
                if answered.value {
                    continuation.finish()
                } else {
                    continuation.finish(throwing: UpstreamError(upstream: self.transport.serverName, kind: .protocolViolation, detail: "it closed the stream without answering"))
                }
            } catch {
                continuation.finish(throwing: timedOut.withLock({ $0 }) ? call.timeoutError : error)
            }
        }
        running.withLock { $0 = task }
        continuation.onTermination = { termination in
            guard case .cancelled = termination else { return }
            task.cancel()
            call.cancelled()
        }
        return stream
    }

    func send(notification: JSONRPCMessage) async throws {
        // 2026-07-28 defines no client notifications over HTTP: cancellation is a closed stream.
        guard !info.version.isStateless else { return }
        var outgoing = notification
        if notification.method == "notifications/cancelled" {
            // The client names its own request id; upstream knows Gatehouse's.
            guard let clientID = notification.params?["requestId"], let upstreamID = lock.withLock({ inFlight[clientID.idKey] }) else { return }
            var params = notification.params ?? [:]
            params["requestId"] = .int(upstreamID)
            outgoing.params = params
        }
        let message = outgoing
        try await withTimeout(requestTimeout, upstream: transport.serverName) {
            try await self.transport.post(message, sessionID: self.sessionID, version: self.info.version, member: self.member) { _ in true }
        }
    }

    func send(response: JSONRPCMessage) async throws {
        try await withTimeout(requestTimeout, upstream: transport.serverName) {
            try await self.transport.post(response, sessionID: self.sessionID, version: self.info.version, member: self.member) { _ in true }
        }
    }

    func close() async {
        let task = lock.withLock { () -> Task<Void, Never>? in
            guard !closed else { return nil }
            closed = true
            return listenTask
        }
        task?.cancel()
        if let sessionID { await transport.delete(sessionID: sessionID, version: info.version, member: member ?? 0) }
    }
}

/// Runs `body`, failing with an upstream timeout after `seconds`.
///
/// One child task and one timer on an event loop: cheaper per request than a task group racing
/// a sleeping task (this wraps every upstream request).
@discardableResult
public func withTimeout<T: Sendable>(_ seconds: Double, upstream: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let task = Task { try await body() }
    let timedOut = Mutex(false)
    let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(Int64(seconds * 1_000_000_000))) {
        timedOut.withLock { $0 = true }
        task.cancel()
    }
    defer { timer.cancel() }
    do {
        return try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    } catch {
        if timedOut.withLock({ $0 }) {
            throw UpstreamError(upstream: upstream, kind: .timeout, detail: "no answer within \(formatSeconds(seconds))")
        }
        throw error
    }
}

func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
}

/// A mutable cell handed between a request and the callback that fills it (used sequentially).
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
