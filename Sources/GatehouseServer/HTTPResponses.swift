import HTTPTypes
import Hummingbird
import MCPWire
import NIOCore

extension HTTPField.Name {
    static let mcpSessionID = HTTPField.Name(MCPHeader.sessionID)!
    static let traceparent = HTTPField.Name("traceparent")!
    static let xRequestID = HTTPField.Name("X-Request-Id")!
    static let tracestate = HTTPField.Name("tracestate")!
    static let mcpProtocolVersion = HTTPField.Name(MCPHeader.protocolVersion)!
    static let mcpMethod = HTTPField.Name(MCPHeader.method)!
    static let mcpName = HTTPField.Name(MCPHeader.name)!
    static let xAccelBuffering = HTTPField.Name("X-Accel-Buffering")!
}

/// Builders for the HTTP answers the MCP endpoint sends.
enum HTTPResponses {
    static func json(_ message: JSONRPCMessage, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: message.bytes)))
    }

    static func jsonArray(_ messages: [JSONRPCMessage], headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        let bytes = JSONWriter.bytes(.array(messages.map { .object($0.object) }))
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// A JSON-RPC error answer with an HTTP status.
    static func error(status: HTTPResponse.Status, id: JSONValue?, code: Int, message: String, data: JSONValue? = nil, headers: HTTPFields = [:]) -> Response {
        json(.error(id: id, code: code, message: message, data: data), status: status, headers: headers)
    }

    static func accepted() -> Response {
        Response(status: .accepted)
    }

    static var sseHeaders: HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        headers[.xAccelBuffering] = "no"
        return headers
    }

    static func sse(headers extra: HTTPFields = [:], _ write: @Sendable @escaping (inout any ResponseBodyWriter) async throws -> Void) -> Response {
        var headers = sseHeaders
        for field in extra { headers.append(field) }
        // The body is written after the handler returned: carry the request id into it.
        let requestID = RequestID.current
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await RequestID.$current.withValue(requestID) { try await write(&writer) }
        })
    }
}

extension ResponseBodyWriter {
    mutating func writeSSE(_ message: JSONRPCMessage) async throws {
        try await write(ByteBuffer(bytes: SSEEncoder.message(message.bytes)))
    }
}

/// Case-insensitive matching of header values against lowercase ASCII patterns, on the bytes
/// (no lowercased copy, no Foundation string search: this runs for every request).
enum ASCII {
    static func contains(_ text: String, _ pattern: StaticString) -> Bool {
        find(text, pattern, prefixOnly: false)
    }

    static func hasPrefix(_ text: String, _ pattern: StaticString) -> Bool {
        find(text, pattern, prefixOnly: true)
    }

    /// Whether a Content-Type names exactly this media type, with or without parameters:
    /// `application/json; charset=utf-8` is, `application/jsonx` is not.
    static func isMediaType(_ text: String, _ type: StaticString) -> Bool {
        guard find(text, type, prefixOnly: true) else { return false }
        let utf8 = text.utf8
        let rest = utf8.index(utf8.startIndex, offsetBy: type.utf8CodeUnitCount)
        guard rest < utf8.endIndex else { return true }
        let next = utf8[rest]
        return next == UInt8(ascii: ";") || next == UInt8(ascii: " ") || next == UInt8(ascii: "\t")
    }

    private static func find(_ text: String, _ pattern: StaticString, prefixOnly: Bool) -> Bool {
        let needle = UnsafeBufferPointer(start: pattern.utf8Start, count: pattern.utf8CodeUnitCount)
        var text = text
        return text.withUTF8 { hay in
            guard needle.count <= hay.count else { return false }
            let last = prefixOnly ? 0 : hay.count - needle.count
            var start = 0
            while start <= last {
                var matched = true
                for offset in 0..<needle.count {
                    var byte = hay[start + offset]
                    if byte >= 0x41 && byte <= 0x5A { byte |= 0x20 }
                    if byte != needle[offset] {
                        matched = false
                        break
                    }
                }
                if matched { return true }
                start += 1
            }
            return false
        }
    }
}

extension HTTPFields {
    /// `self[name]` for the request path: the one value of a field that appears once (the usual
    /// case) without going through `HTTPFields`' joining of repeated fields, which runs generic
    /// code that looks up type metadata on every call (~3% of the gateway's CPU per request with a
    /// dozen lookups). A repeated field is joined exactly as `self[name]` joins it.
    func value(_ name: HTTPField.Name) -> String? {
        var found: String?
        for field in self where field.name == name {
            if found != nil { return self[name] }
            found = field.value
        }
        return found
    }
}
