import GatehouseConfig
import NIOCore
import NIOHTTP1
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Limits on the listener's connections, read from `spec.limits` when a connection opens.
///
/// A connection must send a request head within `headerTimeout` of its first byte, and the
/// body within `bodyTimeout` of the head; a connection waiting for a request closes after
/// `idleTimeout`. Answers in progress (an SSE stream can last hours) have no deadline here: the
/// request timeouts apply to them. Without these, 2,000 connections that sent nothing were kept
/// forever and about 20,000 exhausted the file descriptors.
struct ConnectionLimits: Sendable, Equatable {
    var idleTimeout: TimeAmount
    var headerTimeout: TimeAmount
    var bodyTimeout: TimeAmount
    var maxConnections: Int

    init(idleTimeout: TimeAmount, headerTimeout: TimeAmount, bodyTimeout: TimeAmount, maxConnections: Int) {
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.maxConnections = maxConnections
    }

    init(_ limits: GatewayConfig.Limits) {
        func seconds(_ value: Double) -> TimeAmount { .nanoseconds(Int64(value * 1e9)) }
        self.init(idleTimeout: seconds(limits.idleTimeoutSeconds), headerTimeout: seconds(limits.headerTimeoutSeconds),
                  bodyTimeout: seconds(limits.bodyTimeoutSeconds), maxConnections: limits.maxConnections)
    }

    /// How often a connection checks its deadlines: a quarter of the shortest timeout (at least
    /// 100 ms), so a deadline is enforced within 25% of its length, with one timer per
    /// connection and no timer per request.
    var tick: TimeAmount {
        let shortest = min(idleTimeout, headerTimeout, bodyTimeout)
        return max(.milliseconds(100), .nanoseconds(shortest.nanoseconds / 4))
    }
}

/// Counts the listener's open connections; refuses new ones over the limit.
final class ConnectionCounter: Sendable {
    private let state = Mutex((open: 0, peak: 0))

    var open: Int { state.withLock { $0.open } }

    /// Counts a new connection unless `limit` are open already.
    func acquire(limit: Int) -> Bool {
        state.withLock { state in
            guard state.open < limit else { return false }
            state.open += 1
            state.peak = max(state.peak, state.open)
            return true
        }
    }

    /// A connection closed. After a flood (64 or more connections at the peak, a quarter or less
    /// left) the C allocator is asked to give freed memory back to the system: without it,
    /// memory taken by 20,000 connections stayed with the process after they closed.
    func release() {
        let trim = state.withLock { state -> Bool in
            state.open -= 1
            guard state.peak >= 64, state.open <= state.peak / 4 else { return false }
            state.peak = state.open
            return true
        }
        #if os(Linux)
        if trim { _ = gatehouse_malloc_trim(0) }
        #endif
    }
}

#if os(Linux)
/// glibc's `malloc_trim` (malloc.h is not in the Glibc module map).
@_silgen_name("malloc_trim")
private func gatehouse_malloc_trim(_ pad: Int) -> Int32
#endif

/// One connection's reading state, shared by the two handlers below (both on its event loop).
final class ConnectionDeadlines {
    enum Reading {
        case none
        case head(since: NIODeadline)
        case body(since: NIODeadline)
    }

    let limits: ConnectionLimits
    var reading = Reading.none
    /// Requests whose answer has not ended.
    var inFlight = 0
    var lastActivity = NIODeadline.uptimeNanoseconds(0)
    /// Since when the client has not taken what the gateway writes (nil: it has).
    var unwritableSince: NIODeadline?

    init(limits: ConnectionLimits) {
        self.limits = limits
    }

    /// Whether the connection has overstayed a deadline. Reading deadlines count only while no
    /// earlier answer is outstanding: while one is, the gateway itself may be holding reads back.
    func expired(now: NIODeadline) -> Bool {
        // A client that stops reading an answer pins it in memory: it gets the idle timeout.
        if let since = unwritableSince, now - since > limits.idleTimeout { return true }
        switch reading {
        case .head(let since): return inFlight == 0 && now - since > limits.headerTimeout
        case .body(let since): return inFlight <= 1 && now - since > limits.bodyTimeout
        case .none: return inFlight == 0 && now - lastActivity > limits.idleTimeout
        }
    }
}

/// First in the pipeline: notes that bytes of a new request have arrived (the header deadline
/// starts at the first byte, before the HTTP decoder has a head to report).
final class ConnectionReadActivity: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let deadlines: ConnectionDeadlines

    init(_ deadlines: ConnectionDeadlines) { self.deadlines = deadlines }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .none = deadlines.reading { deadlines.reading = .head(since: context.eventLoop.now) }
        context.fireChannelRead(data)
    }
}

/// Between NIO's HTTP/1 codec and the conversion to HTTPTypes: follows request and answer
/// parts, closes the connection when a deadline passes, and makes an absolute-form request
/// target (`POST http://evil.example/mcp`) name its host in `Host`, as RFC 9112 §3.2.2 says the
/// target's authority wins — so the Host guard checks the authority the request really names
/// (the conversion to HTTPTypes keeps only the path and would check the Host header instead).
final class ConnectionDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let deadlines: ConnectionDeadlines
    private var timer: Scheduled<Void>?

    init(_ deadlines: ConnectionDeadlines) { self.deadlines = deadlines }

    func handlerAdded(context: ChannelHandlerContext) {
        deadlines.lastActivity = context.eventLoop.now
        schedule(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    private func schedule(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: deadlines.limits.tick) {
            let (handler, context) = loopBound.value
            guard handler.timer != nil else { return }
            if handler.deadlines.expired(now: context.eventLoop.now) {
                handler.timer = nil
                context.close(promise: nil)
            } else {
                handler.schedule(context: context)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var head):
            deadlines.inFlight += 1
            deadlines.reading = .body(since: context.eventLoop.now)
            if let authority = Self.absoluteFormAuthority(head.uri) {
                head.headers.replaceOrAdd(name: "Host", value: authority)
                context.fireChannelRead(wrapInboundOut(.head(head)))
                return
            }
        case .body:
            break
        case .end:
            deadlines.reading = .none
            deadlines.lastActivity = context.eventLoop.now
        }
        context.fireChannelRead(data)
    }

    /// The authority of an absolute-form target (`http://host:port/path`), nil for origin form.
    static func absoluteFormAuthority(_ uri: String) -> String? {
        guard let first = uri.utf8.first, first != UInt8(ascii: "/"), first != UInt8(ascii: "*"),
            let separator = uri.range(of: "://")
        else { return nil }
        let rest = uri[separator.upperBound...]
        let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<end]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        return String(authority)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        deadlines.unwritableSince = context.channel.isWritable ? nil : context.eventLoop.now
        context.fireChannelWritabilityChanged()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            deadlines.inFlight -= 1
            deadlines.lastActivity = context.eventLoop.now
        }
        context.write(data, promise: promise)
    }
}

/// Answers a connection over the listener's limit with 503 and closes it, before any HTTP is
/// read (first in the pipeline of a refused connection).
final class ConnectionRefusal: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let answer: String = {
        let body = #"{"error":"the gateway has too many open connections (spec.limits.maxConnections); retry shortly"}"#
        return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
    }()

    func channelActive(context: ChannelHandlerContext) {
        // The socket takes this small answer at once; the close follows the write.
        let buffer = context.channel.allocator.buffer(string: Self.answer)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}  // nothing is read from it
}
