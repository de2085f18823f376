import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Synchronization

/// The plaintext HTTP/1.1 front: Hummingbird's `HTTP1Channel` pipeline, except for how a
/// request's body reaches the responder.
///
/// Why: Hummingbird hands a request's body to the responder as an async sequence read from the
/// connection's `NIOAsyncChannel`, one `next()` (and often a suspension) per part. Every MCP POST
/// is collected in full anyway (the gateway needs the whole message for routing and policy), so
/// `HTTPRequestAggregator` gathers the body on the event loop, up to the configured limit, and
/// hands it over in one piece. The request itself goes on as soon as its head has arrived, so
/// the Host/Origin guards and authentication still decide before the body is read: when the
/// responder has answered without reading the body (401, 403, ...), the rest of it is dropped
/// instead of kept. A body over the limit fails `collect(upTo:)` at once (the endpoint answers
/// 413 without waiting for the rest, which is dropped). TLS listeners keep Hummingbird's channel
/// (`TLSCertificates.serverBuilder`).
struct GatehouseHTTP1Channel: ServerChildChannel {
    typealias Value = NIOAsyncChannel<AggregatedHTTPRequest, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    /// The largest body kept, read when a request starts (`spec.limits.maxBodyBytes` of the
    /// current snapshot, so a reload applies to the next request).
    let maxBodyBytes: @Sendable () -> Int

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false,  // requests are answered in order by `handle`
                withErrorHandling: false,  // parse errors are answered by `handle`
                withOutboundHeaderValidation: false,  // HTTPTypes validated the fields already
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: .init()
            )
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            // Idle-connection closing on graceful shutdown, as in Hummingbird's channel.
            try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            try channel.pipeline.syncOperations.addHandler(HTTPRequestAggregator(maxBodyBytes: maxBodyBytes))
            return try NIOAsyncChannel(
                wrappingChannelSynchronously: channel,
                configuration: .init(isOutboundHalfClosureEnabled: true)
            )
        }
    }

    func handle(value asyncChannel: Value, logger: Logger) async {
        do {
            try await withTaskCancellationHandler {
                try await asyncChannel.executeThenClose { inbound, outbound in
                    do {
                        for try await aggregated in inbound {
                            let request = Request(head: aggregated.head, body: RequestBody(asyncSequence: aggregated.body))
                            try await responder(request, ResponseWriter(outbound: outbound), asyncChannel.channel)
                            // Answered: what the responder did not read of the body is not kept.
                            aggregated.body.pending.abandon()
                            if aggregated.head.headerFields.value(.connection) == "close" { break }
                        }
                    } catch is HTTPParserError {
                        logger.debug("HTTP parse error, closing connection")
                        try await outbound.write(.head(.init(status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])))
                        try await outbound.write(.end(nil))
                    }
                    outbound.finish()
                    try await asyncChannel.channel.closeFuture.get()
                }
            } onCancel: {
                asyncChannel.channel.close(mode: .input, promise: nil)
            }
        } catch {
            logger.trace("Failed to read/write to Channel. Error: \(error)")
        }
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
