import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The plaintext HTTP/1.1 front: NIO's HTTP/1 codec and Hummingbird's request and response
/// types, with two parts of our own on the request path.
///
/// Why: every MCP POST is collected in full anyway (the gateway needs the whole message for
/// routing and policy), so `HTTPRequestAggregator` gathers the body on the event loop, up to the
/// configured limit, and hands it over in one piece, instead of Hummingbird's async sequence read
/// part by part from the connection's `NIOAsyncChannel`. And `HTTP1Connection` hands requests to
/// the connection's task and writes answers without `NIOAsyncChannel`'s writer and producer
/// (a lock, a state machine and often a hop per part, ~10% of the gateway's CPU per call): an
/// answer written from the connection's event loop — where SwiftNIO, as the concurrency executor,
/// usually runs the task — goes straight into the pipeline.
///
/// The request goes on as soon as its head has arrived, so the Host/Origin guards and
/// authentication decide before the body is read: when the responder has answered without
/// reading the body (401, 403, ...), the rest of it is dropped instead of kept. A body over the
/// limit fails `collect(upTo:)` at once (the endpoint answers 413 without waiting for the rest,
/// which is dropped). TLS listeners keep Hummingbird's channel (`TLSCertificates.serverBuilder`).
struct GatehouseHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Connection
    typealias Respond = @Sendable (Request, any Channel) async throws -> Response

    /// The gateway's responder (router and endpoints) for one request.
    let respond: Respond
    /// The largest body kept, read when a request starts (`spec.limits.maxBodyBytes` of the
    /// current snapshot, so a reload applies to the next request).
    let maxBodyBytes: @Sendable () -> Int
    let serverName: String
    /// Timeouts and the connection limit, read when a connection opens.
    let limits: @Sendable () -> ConnectionLimits
    let connections: ConnectionCounter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let limits = self.limits()
            if connections.acquire(limit: limits.maxConnections) {
                let connections = self.connections
                channel.closeFuture.whenComplete { _ in connections.release() }
            } else {
                logger.warning("refusing a connection: too many open", metadata: ["limit": "\(limits.maxConnections)"])
                try channel.pipeline.syncOperations.addHandler(ConnectionRefusal())
            }
            let deadlines = ConnectionDeadlines(limits: limits)
            try channel.pipeline.syncOperations.addHandler(ConnectionReadActivity(deadlines))
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false,  // requests are answered in order by `handle`
                withErrorHandling: false,  // parse errors are answered by `handle`
                withOutboundHeaderValidation: false,  // HTTPTypes validated the fields already
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: .init()
            )
            try channel.pipeline.syncOperations.addHandler(ConnectionDeadlineHandler(deadlines))
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            // Idle-connection closing on graceful shutdown, as in Hummingbird's channel.
            try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            try channel.pipeline.syncOperations.addHandler(HTTPRequestAggregator(maxBodyBytes: maxBodyBytes))
            let connection = HTTP1Connection(channel: channel)
            try channel.pipeline.syncOperations.addHandler(connection)
            return connection
        }
    }

    /// Answers the connection's requests one after another, in order, until it closes. When
    /// the client goes away — closes the connection, or its sending side, as clients that give
    /// up do — the request still being answered is cancelled (its upstream request with it,
    /// which frees its concurrency slot), as nginx and Envoy treat a client that closed: one
    /// child task per connection serves, and the client's leaving cancels it.
    func handle(value connection: Value, logger: Logger) async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.serve(connection, logger: logger) }
            try? await connection.gone.futureResult.get()
            group.cancelAll()
        }
    }

    private func serve(_ connection: Value, logger: Logger) async {
        await withTaskCancellationHandler {
            do {
                while let request = try await connection.next() {
                    try await answer(request, on: connection, logger: logger)
                    // Answered: what the responder did not read of the body is not kept.
                    request.body.pending.abandon()
                    if request.head.headerFields.value(.connection) == "close" { break }
                }
            } catch is HTTPParserError {
                logger.debug("HTTP parse error, closing connection")
                connection.send(.head(HTTPResponse(status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])), .end(nil))
            } catch {
                // Not an HTTP conversation any more (a head that cannot be converted, a write
                // that failed): close the connection, not only our side of it.
                logger.trace("Failed to read/write to Channel. Error: \(error)")
                connection.channel.close(promise: nil)
            }
            connection.closeOutput()
            try? await connection.channel.closeFuture.get()
        } onCancel: {
            connection.channel.close(mode: .input, promise: nil)
        }
    }

    private func answer(_ aggregated: AggregatedHTTPRequest, on connection: HTTP1Connection, logger: Logger) async throws {
        let request = Request(head: aggregated.head, body: RequestBody(asyncSequence: aggregated.body))
        var response: Response
        do {
            response = try await respond(request, connection.channel)
        } catch let error as HTTPParserError {
            throw error
        } catch {
            logger.debug("unhandled error in the responder", metadata: ["error.type": "\(error)"])
            response = Response(status: .internalServerError)
        }
        response.headers[.date] = HTTPDate.now()
        response.headers[.server] = serverName
        var writer = HTTP1Connection.BodyWriter(connection: connection, head: response.head)
        // A stream of unknown length (SSE) may wait long for its first part: its head goes now.
        if response.body.contentLength == nil { writer.sendHead() }
        try await response.body.write(writer)
    }
}

/// The bridge between one connection's pipeline and the task that answers it: requests are
/// queued on the event loop until the task asks for the next one (reading from the socket
/// pauses while one waits, and while answers back up unread, so a pipelining client that does
/// not read cannot make the gateway queue without bound), and answers are
/// written from the task in order, straight into the pipeline when the task runs on the
/// connection's event loop and through one `execute` otherwise.
final class HTTP1Connection: ChannelDuplexHandler, RemovableChannelHandler, ServerChildChannelValue, @unchecked Sendable {
    typealias InboundIn = AggregatedHTTPRequest
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    // Confined to the event loop.
    private var context: ChannelHandlerContext?
    private var queue = CircularBuffer<AggregatedHTTPRequest>(initialCapacity: 2)
    private var waiter: UnsafeContinuation<AggregatedHTTPRequest?, any Error>?
    private var readPending = false
    private var inputEnded = false
    private var failure: (any Error)?
    private var closed = false
    /// Succeeds once when the client has gone: its input ended or the connection closed.
    let gone: EventLoopPromise<Void>
    private var goneSignalled = false

    let channel: any Channel
    private let loop: any EventLoop

    init(channel: any Channel) {
        self.channel = channel
        self.loop = channel.eventLoop
        self.gone = channel.eventLoop.makePromise()
    }

    private func signalGone() {
        guard !goneSignalled else { return }
        goneSignalled = true
        gone.succeed()
    }

    // MARK: Pipeline side (event loop)

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        closed = true
        endInput()
        signalGone()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = unwrapInboundIn(data)
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: request)
        } else {
            queue.append(request)
        }
    }

    func read(context: ChannelHandlerContext) {
        // One request waiting for the task is enough: read more once it is taken. Nor read
        // while answers back up (a client that sends and does not read): the socket's buffer,
        // not our memory, then holds what it sends.
        if queue.isEmpty, context.channel.isWritable { context.read() } else { readPending = true }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeReading(context)
        context.fireChannelWritabilityChanged()
    }

    private func resumeReading(_ context: ChannelHandlerContext) {
        guard readPending, queue.isEmpty, context.channel.isWritable else { return }
        readPending = false
        context.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            endInput()
            signalGone()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        endInput()
        signalGone()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A parse error is answered (400) after the requests before it; others end the input.
        if failure == nil { failure = error }
        if let waiter {
            self.waiter = nil
            waiter.resume(throwing: error)
        }
        context.fireErrorCaught(error)
    }

    private func endInput() {
        inputEnded = true
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: nil)
        }
    }

    private func take(_ continuation: UnsafeContinuation<AggregatedHTTPRequest?, any Error>) {
        if let request = queue.popFirst() {
            continuation.resume(returning: request)
            if let context { resumeReading(context) }
        } else if let failure {
            continuation.resume(throwing: failure)
        } else if inputEnded {
            continuation.resume(returning: nil)
        } else {
            waiter = continuation
        }
    }

    /// Runs `body` on the event loop: at once when already there (writes keep their order:
    /// anything sent through `execute` earlier runs before this task could resume here).
    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }

    // MARK: Task side

    /// The next request; nil when the client has closed (or the connection has).
    func next() async throws -> AggregatedHTTPRequest? {
        try await withUnsafeThrowingContinuation { continuation in
            onLoop { self.take(continuation) }
        }
    }

    /// Writes parts and flushes; failures show in the channel (it closes) and the next read.
    func send(_ first: HTTPResponsePart, _ second: HTTPResponsePart? = nil, promise: EventLoopPromise<Void>? = nil) {
        onLoop {
            guard let context = self.context, !self.closed else {
                promise?.fail(ChannelError.ioOnClosedChannel)
                return
            }
            guard let second else {
                context.writeAndFlush(self.wrapOutboundOut(first), promise: promise)
                return
            }
            context.write(self.wrapOutboundOut(first), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(second), promise: promise)
        }
    }

    /// Ends the response side (half-close), as the async channel's writer did when finished.
    func closeOutput() {
        onLoop {
            guard let context = self.context else { return }
            context.close(mode: .output, promise: nil)
        }
    }

    /// Writes one response: the head goes with the first part of the body, so a JSON answer
    /// leaves in one write; later parts (SSE events) wait for their write, which surfaces a
    /// client that has gone and holds a stream back while the client reads slowly.
    struct BodyWriter: ResponseBodyWriter {
        let connection: HTTP1Connection
        var head: HTTPResponse?

        /// Sends the head on its own (for a stream whose first part may be long in coming).
        mutating func sendHead() {
            guard let head else { return }
            self.head = nil
            connection.send(.head(head))
        }

        mutating func write(_ buffer: ByteBuffer) async throws {
            if let head {
                self.head = nil
                guard connection.channel.isActive else { throw ChannelError.ioOnClosedChannel }
                connection.send(.head(head), .body(buffer))
            } else {
                let promise = connection.loop.makePromise(of: Void.self)
                connection.send(.body(buffer), promise: promise)
                try await promise.futureResult.get()
            }
        }

        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
            if let head {
                connection.send(.head(head), .end(trailingHeaders))
            } else {
                connection.send(.end(trailingHeaders))
            }
        }
    }
}

/// The Date header's value (RFC 9110 IMF-fixdate), formatted once per second (the audit log's
/// RFC 3339 stamps are `Timestamp`, whose padding this shares).
enum HTTPDate {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func now() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        let second = time.tv_sec
        return cache.withLock { cached in
            if cached.second == second { return cached.text }
            cached = (second, format(second))
            return cached.text
        }
    }

    static func format(_ second: Int) -> String {
        var t = time_t(second)
        var parts = tm()
        gmtime_r(&t, &parts)
        let two = { (n: Int32) in Timestamp.pad(n, 2) }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}

/// One request, sent on when its head has arrived; its body follows through `body`.
struct AggregatedHTTPRequest: Sendable {
    let head: HTTPRequest
    let body: GatheredBody
}

/// A request body gathered by `HTTPRequestAggregator`: one buffer, or `NIOTooManyBytesError` when
/// it was longer than the limit (or the connection's error when it broke off).
struct GatheredBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let pending: PendingBody

    struct AsyncIterator: AsyncIteratorProtocol {
        let pending: PendingBody
        var done = false
        mutating func next() async throws -> ByteBuffer? {
            if done { return nil }
            done = true
            return try await pending.promise.futureResult.get()
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(pending: pending) }
}

/// The body of one request while it arrives: the promise the aggregator completes on the event
/// loop, and whether the request has been answered already (then the body is dropped as it comes).
final class PendingBody: Sendable {
    let promise: EventLoopPromise<ByteBuffer>
    private let answered = Atomic<Bool>(false)

    init(promise: EventLoopPromise<ByteBuffer>) {
        self.promise = promise
    }

    func abandon() { answered.store(true, ordering: .relaxed) }
    var isAbandoned: Bool { answered.load(ordering: .relaxed) }
}

/// Turns `head, body*, end` into one `AggregatedHTTPRequest` sent on at the head, whose body is
/// completed at the end (see `GatehouseHTTP1Channel`).
final class HTTPRequestAggregator: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = AggregatedHTTPRequest

    // Plain stored properties, not an enum with payloads: the body buffer then grows in place
    // (a copy bound out of an enum would make every append copy the whole body).
    private var pending: PendingBody?
    private var body: ByteBuffer?
    private var limit = 0
    private let maxBodyBytes: @Sendable () -> Int

    init(maxBodyBytes: @escaping @Sendable () -> Int) {
        self.maxBodyBytes = maxBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            finish(with: ChannelError.inputClosed)  // a head without the previous end cannot come from NIO's decoder
            let pending = PendingBody(promise: context.eventLoop.makePromise())
            self.pending = pending
            limit = maxBodyBytes()
            context.fireChannelRead(wrapInboundOut(AggregatedHTTPRequest(head: head, body: GatheredBody(pending: pending))))
        case .body(var chunk):
            guard let pending else { return }  // refused or answered: dropped
            if pending.isAbandoned {
                finish(with: ChannelError.inputClosed)
                return
            }
            if (body?.readableBytes ?? 0) + chunk.readableBytes > limit {
                finish(with: NIOTooManyBytesError(maxBytes: limit))
                return
            }
            if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
        case .end:
            guard let pending else { return }
            self.pending = nil
            let whole = body ?? ByteBuffer()
            body = nil
            pending.promise.succeed(whole)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(with: ChannelError.eof)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(with: error)
        context.fireErrorCaught(error)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish(with: ChannelError.ioOnClosedChannel)
    }

    /// Ends the body being gathered, if any, with an error; what follows of it is dropped.
    private func finish(with error: any Error) {
        body = nil
        guard let pending else { return }
        self.pending = nil
        pending.promise.fail(error)
    }
}
