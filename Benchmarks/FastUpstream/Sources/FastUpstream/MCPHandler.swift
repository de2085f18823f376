import NIOCore
import NIOHTTP1

struct Options: Sendable {
    var host = "127.0.0.1"
    var port = 9100
    var threads = 1
    /// When set, `server/discover` is refused, so clients (Gatehouse) treat this as a
    /// session-era (2025-11-25) server and open one upstream session per client session.
    var noDiscover = false
}

/// One HTTP/1.1 connection: collects a request, answers it from the raw bytes, keeps the
/// connection alive. Everything MCP-specific is a byte scan; nothing is decoded into objects.
final class MCPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let options: Options
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?

    init(options: Options) {
        self.options = options
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = nil
        case .body(var chunk):
            if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let body = self.body ?? ByteBuffer()
            self.body = nil
            respond(context: context, head: head, body: body)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        switch head.method {
        case .POST:
            post(context: context, head: head, body: body)
        case .GET where head.uri.hasPrefix("/healthz"):
            send(context: context, head: head, status: .ok, contentType: "text/plain", body: ByteBuffer(string: "ok\n"))
        case .DELETE:
            send(context: context, head: head, status: .ok, contentType: nil, body: ByteBuffer())
        default:
            // GET streams are not offered (a server may answer 405, the spec allows it).
            send(context: context, head: head, status: .methodNotAllowed, contentType: nil, body: ByteBuffer())
        }
    }

    private func post(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        let stateless = head.headers.first(name: "mcp-protocol-version") == "2026-07-28"
        let sse = head.uri.contains("sse=1") || head.headers.first(name: "x-bench-sse") == "1"
        var status = HTTPResponseStatus.ok
        var sessionID: String?
        let payload: ByteBuffer? = body.withUnsafeReadableBytes { raw -> ByteBuffer? in
            let json = MiniJSON(bytes: raw)
            guard let top = json.members(ofObjectAt: 0, wanted: [Keys.id, Keys.method, Keys.params]) else {
                status = .badRequest
                return Responses.error(context.channel.allocator, json: json, id: nil, code: -32700, message: "parse error")
            }
            guard let idRange = top[0], let methodRange = top[1].flatMap(json.stringContents) else {
                status = .accepted  // notifications and responses
                return nil
            }
            let alloc = context.channel.allocator
            if json.equals(methodRange, Keys.toolsCall) {
                var arguments: Range<Int>?
                if let params = top[2], let members = json.members(ofObjectAt: params.lowerBound, wanted: [Keys.arguments]) {
                    arguments = members[0]
                }
                return Responses.toolsCall(alloc, json: json, id: idRange, arguments: arguments, stateless: stateless)
            }
            if json.equals(methodRange, Keys.toolsList) {
                return Responses.result(alloc, json: json, id: idRange, result: stateless ? Responses.toolsList2026 : Responses.toolsList)
            }
            if json.equals(methodRange, Keys.initialize) {
                sessionID = Responses.newSessionID()
                return Responses.result(alloc, json: json, id: idRange, result: Responses.initializeResult)
            }
            if json.equals(methodRange, Keys.discover) {
                if options.noDiscover {
                    status = .notFound
                    return Responses.error(alloc, json: json, id: idRange, code: -32601, message: "Method not found")
                }
                return Responses.result(alloc, json: json, id: idRange, result: Responses.discoverResult)
            }
            if json.equals(methodRange, Keys.ping) {
                return Responses.result(alloc, json: json, id: idRange, result: stateless ? Responses.emptyResult2026 : Responses.emptyResult)
            }
            if stateless { status = .notFound }
            return Responses.error(alloc, json: json, id: idRange, code: -32601, message: "Method not found")
        }
        guard let payload else {
            send(context: context, head: head, status: status, contentType: nil, body: ByteBuffer())
            return
        }
        if sse, status == .ok {
            var framed = context.channel.allocator.buffer(capacity: payload.readableBytes + 24)
            framed.writeStaticString("event: message\ndata: ")
            framed.writeImmutableBuffer(payload)
            framed.writeStaticString("\n\n")
            send(context: context, head: head, status: status, contentType: "text/event-stream", body: framed, sessionID: sessionID)
        } else {
            send(context: context, head: head, status: status, contentType: "application/json", body: payload, sessionID: sessionID)
        }
    }

    private func send(
        context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus,
        contentType: String?, body: ByteBuffer, sessionID: String? = nil
    ) {
        var headers = HTTPHeaders()
        if let contentType { headers.add(name: "content-type", value: contentType) }
        headers.add(name: "content-length", value: String(body.readableBytes))
        if let sessionID { headers.add(name: "mcp-session-id", value: sessionID) }
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

enum Keys {
    static let id = Array("id".utf8)
    static let method = Array("method".utf8)
    static let params = Array("params".utf8)
    static let arguments = Array("arguments".utf8)
    static let toolsCall = Array("tools/call".utf8)
    static let toolsList = Array("tools/list".utf8)
    static let initialize = Array("initialize".utf8)
    static let discover = Array("server/discover".utf8)
    static let ping = Array("ping".utf8)
}

enum Responses {
    static let serverInfo = #"{"name":"fast-upstream","version":"1.0.0"}"#
    static let initializeResult = #"{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":\#(serverInfo)}"#
    static let discoverResult = #"{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"_meta":{"io.modelcontextprotocol/serverInfo":\#(serverInfo)},"ttlMs":0,"cacheScope":"public"}"#
    static let tools = #"[{"name":"echo","description":"Echoes its arguments as text.","inputSchema":{"type":"object","properties":{"text":{"type":"string"}}}},{"name":"add","description":"Adds two numbers.","inputSchema":{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}}]"#
    static let toolsList = #"{"tools":\#(tools)}"#
    static let toolsList2026 = #"{"resultType":"complete","tools":\#(tools)}"#
    static let emptyResult = "{}"
    static let emptyResult2026 = #"{"resultType":"complete"}"#

    static func result(_ alloc: ByteBufferAllocator, json: MiniJSON, id: Range<Int>, result: String) -> ByteBuffer {
        var out = alloc.buffer(capacity: result.utf8.count + 48)
        out.writeStaticString(#"{"jsonrpc":"2.0","id":"#)
        out.writeBytes(UnsafeRawBufferPointer(rebasing: json.bytes[id]))
        out.writeStaticString(#","result":"#)
        out.writeString(result)
        out.writeStaticString("}")
        return out
    }

    static func error(_ alloc: ByteBufferAllocator, json: MiniJSON, id: Range<Int>?, code: Int, message: String) -> ByteBuffer {
        var out = alloc.buffer(capacity: 96)
        out.writeStaticString(#"{"jsonrpc":"2.0","id":"#)
        if let id {
            out.writeBytes(UnsafeRawBufferPointer(rebasing: json.bytes[id]))
        } else {
            out.writeStaticString("null")
        }
        out.writeString(#","error":{"code":\#(code),"message":"\#(message)"}}"#)
        return out
    }

    /// `{"content":[{"type":"text","text":"<the arguments' JSON text>"}],"isError":false}`.
    static func toolsCall(_ alloc: ByteBufferAllocator, json: MiniJSON, id: Range<Int>, arguments: Range<Int>?, stateless: Bool) -> ByteBuffer {
        let argCount = arguments?.count ?? 2
        var out = alloc.buffer(capacity: argCount + argCount / 8 + 128)
        out.writeStaticString(#"{"jsonrpc":"2.0","id":"#)
        out.writeBytes(UnsafeRawBufferPointer(rebasing: json.bytes[id]))
        out.writeStaticString(#","result":{"#)
        if stateless { out.writeStaticString(#""resultType":"complete","#) }
        out.writeStaticString(#""content":[{"type":"text","text":""#)
        if let arguments {
            writeEscaped(UnsafeRawBufferPointer(rebasing: json.bytes[arguments]), into: &out)
        } else {
            out.writeStaticString("{}")
        }
        out.writeStaticString(#""}],"isError":false}}"#)
        return out
    }

    /// Writes bytes as the inside of a JSON string, copying unescaped runs in one go.
    static func writeEscaped(_ bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        var runStart = 0
        var i = 0
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || b < 0x20 {
                if runStart < i { out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<i])) }
                if b < 0x20 {
                    out.writeBytes([UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 0xF)]])
                } else {
                    out.writeBytes([UInt8(ascii: "\\"), b])
                }
                runStart = i + 1
            }
            i += 1
        }
        if runStart < bytes.count { out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<bytes.count])) }
    }

    static func newSessionID() -> String {
        let a = UInt64.random(in: .min ... .max), b = UInt64.random(in: .min ... .max)
        return "fs-" + String(a, radix: 16) + String(b, radix: 16)
    }
}
