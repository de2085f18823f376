import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// The plaintext HTTP/1.1 front: Hummingbird's `HTTP1Channel` pipeline, except that each request
/// reaches the responder with its whole body already in one buffer.
///
/// Why: Hummingbird hands a request's body to the responder as an async sequence read from the
/// connection's `NIOAsyncChannel`, one `next()` (and often a suspension) per part. Every MCP POST
/// is collected in full anyway (the gateway needs the whole message for routing and policy), so
/// the body is gathered on the event loop by `HTTPRequestAggregator`, up to the configured limit,
/// and the connection's loop receives one element per request. Bodies over the limit are not kept:
/// the request arrives at once with a body that fails `collect(upTo:)`, so the endpoint answers
/// 413 without waiting for the rest, which is read and dropped. TLS listeners keep Hummingbird's
/// channel (`TLSCertificates.serverBuilder`).
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
                            let request = Request(head: aggregated.head, body: aggregated.body)
                            try await responder(request, ResponseWriter(outbound: outbound), asyncChannel.channel)
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

/// One request with its body: the bytes as one buffer, or a body that fails when collected
/// because it was longer than the limit.
struct AggregatedHTTPRequest: Sendable {
    let head: HTTPRequest
    let body: RequestBody
}

/// Gathers `head, body*, end` into one `AggregatedHTTPRequest` (see `GatehouseHTTP1Channel`).
final class HTTPRequestAggregator: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = AggregatedHTTPRequest

    // Plain stored properties, not an enum with payloads: the body buffer then grows in place
    // (a copy bound out of an enum would make every append copy the whole body).
    private var head: HTTPRequest?
    private var body: ByteBuffer?
    private var limit = 0
    /// The request went on with an over-limit body; the rest of it is dropped.
    private var discarding = false
    private let maxBodyBytes: @Sendable () -> Int

    init(maxBodyBytes: @escaping @Sendable () -> Int) {
        self.maxBodyBytes = maxBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = nil
            limit = maxBodyBytes()
            discarding = false
        case .body(var chunk):
            guard let h = head, !discarding else { return }
            if (body?.readableBytes ?? 0) + chunk.readableBytes > limit {
                discarding = true
                body = nil
                let tooLarge = RequestBody(asyncSequence: OverLimitBody(maxBytes: limit))
                context.fireChannelRead(wrapInboundOut(AggregatedHTTPRequest(head: h, body: tooLarge)))
                return
            }
            if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
        case .end:
            defer {
                head = nil
                body = nil
                discarding = false
            }
            // Parts without a head cannot come from NIO's decoder; such an end is dropped.
            guard let h = head, !discarding else { return }
            let b = body ?? ByteBuffer()
            body = nil
            context.fireChannelRead(wrapInboundOut(AggregatedHTTPRequest(head: h, body: RequestBody(buffer: b))))
        }
    }
}

/// A request body that was longer than the limit: collecting it fails as it would have when read
/// from the connection (`NIOTooManyBytesError`).
struct OverLimitBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let maxBytes: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let maxBytes: Int
        mutating func next() async throws -> ByteBuffer? {
            throw NIOTooManyBytesError(maxBytes: maxBytes)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(maxBytes: maxBytes) }
}
