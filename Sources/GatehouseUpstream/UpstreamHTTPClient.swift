import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A lean HTTP/1.1 client for the request path to plain-HTTP upstreams.
///
/// Why not AsyncHTTPClient here: its per-request machinery (request state machines, a
/// connection-pool manager behind a lock, a body writer and a task per transaction) was the
/// largest share of Gatehouse's CPU per forwarded call (docs/performance.md). This client
/// does the minimum a keep-alive HTTP/1.1 exchange needs:
///
/// - connections are pooled per event loop and a request is served on the loop its task runs
///   on (SwiftNIO is the concurrency executor), so the pool needs no lock;
/// - the idle connection used last is taken first (it is the least likely to have been closed
///   by the server's keep-alive timeout); a reused connection that closes before any byte of an
///   answer is retried once on a new connection (the request cannot have been processed);
/// - JSON answers are collected up to a size cap and handed over whole; SSE answers are pulled
///   chunk by chunk — nothing is read from the socket until the reader asks (backpressure);
/// - `maxConnections` per loop caps what one gateway opens to one endpoint; requests beyond it
///   wait for a connection to come back.
///
/// https endpoints, the long-lived GET streams and DELETEs stay on AsyncHTTPClient.
public final class UpstreamHTTPClient: Sendable {
    public struct Endpoint: Sendable, Hashable {
        public var host: String
        public var port: Int
        /// Path and query sent as the request target.
        public var target: String
        /// The Host header.
        public var authority: String

        /// Parses an `http://host[:port]/path` URL; nil for anything else (https stays on
        /// AsyncHTTPClient).
        public init?(url: String) {
            guard url.lowercased().hasPrefix("http://") else { return nil }
            let rest = url.dropFirst("http://".count)
            let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            let authority = String(rest[..<slash])
            var target = String(rest[slash...])
            if target.isEmpty { target = "/" } else if target.hasPrefix("?") { target = "/" + target }
            guard !authority.isEmpty, !authority.contains("@") else { return nil }
            var host = authority
            var port = 80
            if authority.hasPrefix("[") {
                // [v6]:port
                guard let close = authority.firstIndex(of: "]") else { return nil }
                host = String(authority[authority.index(after: authority.startIndex)..<close])
                let after = authority[authority.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }
                    port = p
                } else if !after.isEmpty {
                    return nil
                }
            } else if let colon = authority.lastIndex(of: ":") {
                host = String(authority[..<colon])
                guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { return nil }
                port = p
            }
            guard !host.isEmpty else { return nil }
            self.host = host
            self.port = port
            self.target = target
            self.authority = authority
        }
    }

    public enum Failure: Error, Sendable, Equatable {
        /// The connection could not be made (the request never left).
        case connectionRefused
        case connectTimeout
        case connectFailed(String)
        /// The connection closed or broke before the answer was complete.
        case connectionClosed
        /// The answer's body is larger than the cap.
        case bodyTooLarge
    }

    let endpoint: Endpoint
    let connectTimeout: TimeAmount
    let idleTimeout: TimeAmount
    let maxConnectionsPerLoop: Int
    let maxBody: Int
    private let pools: [LoopPool]

    public init(endpoint: Endpoint, connectTimeout: TimeAmount = .seconds(5), idleTimeout: TimeAmount = .seconds(60),
                maxConnections: Int = 512, maxBody: Int = 32 << 20, group: MultiThreadedEventLoopGroup = .singleton) {
        self.endpoint = endpoint
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.maxBody = maxBody
        let loops = Array(group.makeIterator())
        self.maxConnectionsPerLoop = max(1, maxConnections / max(1, loops.count))
        self.pools = loops.map { LoopPool(loop: $0) }
    }

    /// The pool of the loop this task runs on (no hop), else the next one.
    private func pool() -> LoopPool {
        if pools.count == 1 { return pools[0] }
        for pool in pools where pool.loop.inEventLoop { return pool }
        return pools[Int.random(in: 0..<pools.count)]
    }

    /// Sends one request and returns the answer's head with its body (buffered JSON, or a
    /// stream to pull for `text/event-stream`). Cancelling the task closes the connection.
    /// `cancellation` may close the request from outside its task (a timeout): the call then
    /// fails with `CancellationError`.
    public func execute(method: HTTPMethod, headers: HTTPHeaders, body: ByteBuffer, cancellation: Cancellation? = nil) async throws -> UpstreamHTTPResponse {
        let pool = pool()
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: endpoint.target, headers: headers)
        head.headers.replaceOrAdd(name: "Host", value: endpoint.authority)
        head.headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        let exchange = Exchange(head: head, body: body, promise: pool.loop.makePromise())
        cancellation?.onCancel { pool.loop.execute { exchange.cancel(pool) } }
        return try await withTaskCancellationHandler {
            // Usually the task already runs on the pool's loop (SwiftNIO is the executor): start
            // at once instead of queueing a job.
            if pool.loop.inEventLoop {
                start(exchange, on: pool, allowRetry: true)
            } else {
                pool.loop.execute { self.start(exchange, on: pool, allowRetry: true) }
            }
            return try await exchange.promise.futureResult.get()
        } onCancel: {
            pool.loop.execute { exchange.cancel(pool) }
        }
    }

    /// On the pool's loop: find a connection and send.
    private func start(_ exchange: Exchange, on pool: LoopPool, allowRetry: Bool) {
        guard !exchange.cancelled else { return }
        while let connection = pool.idle.popLast() {
            connection.idleTimer?.cancel()
            connection.idleTimer = nil
            if connection.isUsable {
                send(exchange, on: connection, pool: pool, reused: true, allowRetry: allowRetry)
                return
            }
        }
        if pool.open >= maxConnectionsPerLoop {
            pool.waiters.append(exchange)
            return
        }
        pool.open += 1
        let handler = UpstreamConnectionHandler(maxBody: maxBody)
        ClientBootstrap(group: pool.loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    let connection = handler.connection(channel: channel, onClose: { [weak pool] connection in
                        guard let pool else { return }
                        self.closed(connection, pool: pool)
                    })
                    if !channel.isActive {
                        // Closed while connecting; onClose has run (or will): nothing to send on.
                        exchange.fail(.connectionClosed)
                        return
                    }
                    self.send(exchange, on: connection, pool: pool, reused: false, allowRetry: false)
                case .failure(let error):
                    pool.open -= 1
                    exchange.fail(Self.describeConnect(error))
                    self.serveWaiter(on: pool)
                }
            }
    }

    private func send(_ exchange: Exchange, on connection: PooledConnection, pool: LoopPool, reused: Bool, allowRetry: Bool) {
        if exchange.cancelled {
            release(connection, pool: pool)
            return
        }
        exchange.connection = connection
        connection.handler.send(exchange.head, body: exchange.body) { [self] outcome in
            exchange.connection = nil
            switch outcome {
            case .response(let response, let keepAlive):
                exchange.succeed(response)
                if !keepAlive { connection.channel.close(promise: nil) }
            case .finished(let keepAlive):
                // A streamed body ended: the connection is free again.
                if keepAlive { release(connection, pool: pool) } else { connection.channel.close(promise: nil) }
            case .released:
                release(connection, pool: pool)
            case .failed(let failure, let receivedAny):
                connection.channel.close(promise: nil)
                if reused, allowRetry, !receivedAny, failure == .connectionClosed, !exchange.cancelled {
                    // The server closed an idle keep-alive connection as we sent: the request
                    // was not processed. Once more on a new connection.
                    start(exchange, on: pool, allowRetry: false)
                } else {
                    exchange.fail(failure)
                }
            }
        }
    }

    /// A connection whose exchange is over goes back to the pool (or to a waiting request).
    private func release(_ connection: PooledConnection, pool: LoopPool) {
        guard connection.isUsable else { return }
        if let waiter = pool.waiters.popFirstLive() {
            send(waiter, on: connection, pool: pool, reused: true, allowRetry: true)
            return
        }
        pool.idle.append(connection)
        connection.idleTimer = pool.loop.scheduleTask(in: idleTimeout) { [weak connection] in
            connection?.channel.close(promise: nil)
        }
    }

    private func closed(_ connection: PooledConnection, pool: LoopPool) {
        pool.open -= 1
        connection.idleTimer?.cancel()
        if let index = pool.idle.firstIndex(where: { $0 === connection }) { pool.idle.remove(at: index) }
        serveWaiter(on: pool)
    }

    private func serveWaiter(on pool: LoopPool) {
        if pool.open < maxConnectionsPerLoop, let waiter = pool.waiters.popFirstLive() {
            start(waiter, on: pool, allowRetry: true)
        }
    }

    /// Closes every idle connection (shutdown, or an endpoint retired by a reload).
    public func closeIdle() {
        for pool in pools {
            pool.loop.execute {
                let idle = pool.idle
                pool.idle.removeAll()
                for connection in idle {
                    connection.idleTimer?.cancel()
                    connection.channel.close(promise: nil)
                }
            }
        }
    }

    static func describeConnect(_ error: any Error) -> Failure {
        if let channelError = error as? ChannelError, case .connectTimeout = channelError { return .connectTimeout }
        let text = String(describing: error)
        if text.contains("connectTimeout") { return .connectTimeout }
        if text.contains("refused") || text.contains("ECONNREFUSED") || text.contains("errno: 111") { return .connectionRefused }
        return .connectFailed(text)
    }
}

extension UpstreamHTTPClient {
    /// Cancels a request (or the stream of its answer) from any thread. The action set last
    /// runs once; set after cancelling, it runs at once.
    public final class Cancellation: Sendable {
        private struct State {
            var cancelled = false
            var action: (@Sendable () -> Void)?
        }

        private let state = Mutex(State())

        public init() {}

        public var isCancelled: Bool { state.withLock { $0.cancelled } }

        public func cancel() {
            let action = state.withLock { state -> (@Sendable () -> Void)? in
                guard !state.cancelled else { return nil }
                state.cancelled = true
                defer { state.action = nil }
                return state.action
            }
            action?()
        }

        public func onCancel(_ action: @escaping @Sendable () -> Void) {
            let now = state.withLock { state -> Bool in
                if state.cancelled { return true }
                state.action = action
                return false
            }
            if now { action() }
        }
    }
}

/// What an upstream answered: status, headers and a body read once.
public struct UpstreamHTTPResponse: Sendable {
    public var head: HTTPResponseHead
    public var body: Body

    public enum Body: Sendable {
        /// The whole body (JSON and every non-SSE answer).
        case complete(ByteBuffer)
        /// An event stream, pulled chunk by chunk.
        case stream(UpstreamBodyStream)
    }
}

/// The body of an SSE answer. `next()` reads from the socket only when asked; `close()` gives
/// up on the rest (the connection is closed: it cannot be reused mid-answer).
public final class UpstreamBodyStream: @unchecked Sendable {
    // Touched only on `loop`.
    let loop: any EventLoop
    private var buffered = CircularBuffer<ByteBuffer>()
    private var ended = false
    private var failure: UpstreamHTTPClient.Failure?
    private var waiting: EventLoopPromise<ByteBuffer?>?
    /// Asks the connection for more bytes; nil once the body has ended.
    var requestMore: (() -> Void)?
    var abandon: (() -> Void)?

    init(loop: any EventLoop) {
        self.loop = loop
    }

    public func next() async throws -> ByteBuffer? {
        try await withTaskCancellationHandler {
            // Usually the reader runs on the connection's loop (SwiftNIO is the executor): pull
            // at once instead of queueing a job for it.
            if loop.inEventLoop {
                if let chunk = buffered.popFirst() { return chunk }
                return try await pull().get()
            }
            return try await loop.flatSubmit { self.pull() }.get()
        } onCancel: {
            self.close()
        }
    }

    /// On the loop: a buffered chunk, the end, or a promise of the next chunk (asking for it).
    private func pull() -> EventLoopFuture<ByteBuffer?> {
        if let chunk = buffered.popFirst() { return loop.makeSucceededFuture(chunk) }
        if let failure { return loop.makeFailedFuture(failure) }
        if ended { return loop.makeSucceededFuture(nil) }
        let promise = loop.makePromise(of: ByteBuffer?.self)
        waiting = promise
        requestMore?()
        return promise.futureResult
    }

    /// Stops reading: the rest of the answer is dropped with its connection.
    public func close() {
        loop.execute {
            guard !self.ended, self.failure == nil else { return }
            let abandon = self.abandon
            self.fail(.connectionClosed)
            abandon?()
        }
    }

    // Called by the connection, on the loop.
    func deliver(_ chunk: ByteBuffer) {
        if let waiting {
            self.waiting = nil
            waiting.succeed(chunk)
        } else {
            buffered.append(chunk)
        }
    }

    var wantsMore: Bool { waiting != nil }

    func end() {
        ended = true
        requestMore = nil
        abandon = nil
        waiting?.succeed(nil)
        waiting = nil
    }

    func fail(_ failure: UpstreamHTTPClient.Failure) {
        guard !ended, self.failure == nil else { return }
        self.failure = failure
        requestMore = nil
        abandon = nil
        waiting?.fail(failure)
        waiting = nil
    }
}

/// One request on its way: the promise of its answer, and what cancelling it must undo.
private final class Exchange: @unchecked Sendable {
    // Touched only on the pool's loop (the promise is thread-safe).
    let head: HTTPRequestHead
    let body: ByteBuffer
    let promise: EventLoopPromise<UpstreamHTTPResponse>
    var cancelled = false
    var done = false
    var connection: PooledConnection?

    init(head: HTTPRequestHead, body: ByteBuffer, promise: EventLoopPromise<UpstreamHTTPResponse>) {
        self.head = head
        self.body = body
        self.promise = promise
    }

    func succeed(_ response: UpstreamHTTPResponse) {
        guard !done else { return }
        done = true
        promise.succeed(response)
    }

    func fail(_ failure: UpstreamHTTPClient.Failure) {
        guard !done else { return }
        done = true
        promise.fail(failure)
    }

    func cancel(_ pool: LoopPool) {
        guard !done else { return }
        cancelled = true
        done = true
        // Closing the connection tells a stateless upstream that the call was cancelled.
        connection?.channel.close(promise: nil)
        promise.fail(CancellationError())
    }
}

private final class LoopPool: @unchecked Sendable {
    // Touched only on `loop`.
    let loop: any EventLoop
    var idle: [PooledConnection] = []
    var open = 0
    var waiters = CircularBuffer<Exchange>()

    init(loop: any EventLoop) {
        self.loop = loop
    }
}

private extension CircularBuffer where Element == Exchange {
    /// The first waiter still waiting (cancelled ones are dropped).
    mutating func popFirstLive() -> Exchange? {
        while let first = popFirst() {
            if !first.done { return first }
        }
        return nil
    }
}

final class PooledConnection: @unchecked Sendable {
    // Touched only on the channel's loop.
    let channel: any Channel
    let handler: UpstreamConnectionHandler
    var idleTimer: Scheduled<Void>?

    init(channel: any Channel, handler: UpstreamConnectionHandler) {
        self.channel = channel
        self.handler = handler
    }

    var isUsable: Bool { channel.isActive && handler.isIdle }
}

/// The pipeline end of one upstream connection: one exchange at a time (no pipelining).
///
/// While an SSE body streams, reads wait until its reader asks for more (backpressure): the
/// automatic read after each batch is held here, instead of turning `autoRead` off and on
/// per answer (a channel-option call that cost ~2% of the gateway's CPU per SSE call).
final class UpstreamConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    enum Outcome {
        /// The answer's head with its whole body (or its stream; `finished` follows later).
        case response(UpstreamHTTPResponse, keepAlive: Bool)
        /// A streamed body ended; the connection may be reused if keepAlive.
        case finished(keepAlive: Bool)
        /// The buffered answer was handed over and the connection is free.
        case released
        case failed(UpstreamHTTPClient.Failure, receivedAny: Bool)
    }

    private enum State {
        case idle
        case waitingHead
        case buffering(HTTPResponseHead, ByteBuffer?)
        case streaming(HTTPResponseHead, UpstreamBodyStream)
        case closed
    }

    private let maxBody: Int
    private var state = State.idle
    private var onOutcome: ((Outcome) -> Void)?
    private var context: ChannelHandlerContext?
    private var connectionRef: PooledConnection?
    private var onClose: ((PooledConnection) -> Void)?
    /// A read held back while a streamed body's reader has not asked for more.
    private var readHeld = false

    init(maxBody: Int) {
        self.maxBody = maxBody
    }

    var isIdle: Bool { if case .idle = state { return true } else { return false } }

    func connection(channel: any Channel, onClose: @escaping (PooledConnection) -> Void) -> PooledConnection {
        let connection = PooledConnection(channel: channel, handler: self)
        connectionRef = connection
        self.onClose = onClose
        if case .closed = state {
            // Closed before we were told about it.
            self.onClose = nil
            connectionRef = nil
            onClose(connection)
        }
        return connection
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func send(_ head: HTTPRequestHead, body: ByteBuffer, onOutcome: @escaping (Outcome) -> Void) {
        guard let context, case .idle = state else {
            onOutcome(.failed(.connectionClosed, receivedAny: false))
            return
        }
        state = .waitingHead
        self.onOutcome = onOutcome
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .waitingHead = state else { return }
            if head.status.code / 100 == 1 { return }  // 100 Continue and friends: the answer follows
            let type = head.headers.first(name: "content-type")?.lowercased() ?? ""
            if type.hasPrefix("text/event-stream") {
                let stream = UpstreamBodyStream(loop: context.eventLoop)
                stream.requestMore = { [weak self] in
                    self?.readHeld = false
                    self?.context?.read()
                }
                stream.abandon = { [weak self] in self?.context?.close(promise: nil) }
                state = .streaming(head, stream)
                // Whether the connection stays open is decided when the stream ends (`.finished`):
                // closing it now, for an answer with `Connection: close`, cut the stream at its head.
                emit(.response(UpstreamHTTPResponse(head: head, body: .stream(stream)), keepAlive: true), keep: true)
            } else {
                state = .buffering(head, nil)
            }
        case .body(var chunk):
            switch state {
            case .buffering(let head, var body):
                state = .waitingHead  // drop the reference while appending (no copy-on-write)
                if body == nil {
                    body = chunk
                } else {
                    body!.writeBuffer(&chunk)
                }
                if body!.readableBytes > maxBody {
                    state = .closed
                    emit(.failed(.bodyTooLarge, receivedAny: true), keep: false)
                    context.close(promise: nil)
                    return
                }
                state = .buffering(head, body)
            case .streaming(_, let stream):
                stream.deliver(chunk)
            default:
                return
            }
        case .end:
            switch state {
            case .buffering(let head, let body):
                state = .idle
                let keepAlive = head.isKeepAlive
                let response = UpstreamHTTPResponse(head: head, body: .complete(body ?? ByteBuffer()))
                let handler = onOutcome
                onOutcome = nil
                handler?(.response(response, keepAlive: keepAlive))
                if keepAlive, context.channel.isActive { handler?(.released) }
            case .streaming(let head, let stream):
                state = .idle
                if readHeld {
                    readHeld = false
                    context.read()
                }
                stream.end()
                let handler = onOutcome
                onOutcome = nil
                handler?(.finished(keepAlive: head.isKeepAlive))
            default:
                return
            }
        }
    }

    func read(context: ChannelHandlerContext) {
        if case .streaming(_, let stream) = state, !stream.wantsMore {
            readHeld = true
            return
        }
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A body with neither Content-Length nor chunked encoding ends when the connection
        // closes (RFC 9112 §6.3): that close is its end, not a failure. NIO's decoder does not
        // report such an end itself.
        switch state {
        case .streaming(let head, _) where Self.isCloseDelimited(head),
             .buffering(let head, _) where Self.isCloseDelimited(head):
            channelRead(context: context, data: NIOAny(HTTPClientResponsePart.end(nil)))
        default:
            break
        }
        fail(.connectionClosed)
        state = .closed
        if let connectionRef, let onClose {
            self.onClose = nil
            self.connectionRef = nil
            onClose(connectionRef)
        }
        context.fireChannelInactive()
    }

    static func isCloseDelimited(_ head: HTTPResponseHead) -> Bool {
        !head.headers.contains(name: "content-length") && !head.headers.contains(name: "transfer-encoding")
            && head.status != .noContent && head.status != .notModified && head.status.code >= 200
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(.connectionClosed)
        context.close(promise: nil)
    }

    private func fail(_ failure: UpstreamHTTPClient.Failure) {
        switch state {
        case .waitingHead:
            state = .closed
            emit(.failed(failure, receivedAny: false), keep: false)
        case .buffering:
            state = .closed
            emit(.failed(failure, receivedAny: true), keep: false)
        case .streaming(_, let stream):
            state = .closed
            stream.fail(failure)
            onOutcome = nil
        case .idle, .closed:
            state = .closed
        }
    }

    private func emit(_ outcome: Outcome, keep: Bool) {
        let handler = onOutcome
        if !keep { onOutcome = nil }
        handler?(outcome)
    }
}
