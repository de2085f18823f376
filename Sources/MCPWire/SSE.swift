/// One Server-Sent Event.
public struct SSEEvent: Sendable, Equatable {
    public var event: String?
    public var data: String
    public var id: String?
    public var retry: Int?

    public init(event: String? = nil, data: String, id: String? = nil, retry: Int? = nil) {
        self.event = event
        self.data = data
        self.id = id
        self.retry = retry
    }
}

/// SSE framing (WHATWG HTML, "Server-sent events").
public enum SSEEncoder {
    /// Frames one JSON-RPC message as an `event: message` event.
    public static func message(_ json: [UInt8], id: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(json.count + 32)
        out.append(contentsOf: "event: message\n".utf8)
        if let id { out.append(contentsOf: "id: \(id)\n".utf8) }
        // Compact JSON has no raw newlines, but a message from elsewhere might: split them so
        // a newline can never end the event early or inject a field.
        var lineStart = true
        for byte in json {
            if lineStart {
                out.append(contentsOf: "data: ".utf8)
                lineStart = false
            }
            if byte == 0x0A || byte == 0x0D {
                out.append(0x0A)
                lineStart = true
            } else {
                out.append(byte)
            }
        }
        if lineStart { out.append(contentsOf: "data: ".utf8) }
        out.append(contentsOf: "\n\n".utf8)
        return out
    }

    public static func encode(_ event: SSEEvent) -> [UInt8] {
        var text = ""
        if let e = event.event { text += "event: \(e)\n" }
        if let id = event.id { text += "id: \(id)\n" }
        if let retry = event.retry { text += "retry: \(retry)\n" }
        for line in event.data.split(separator: "\n", omittingEmptySubsequences: false) {
            text += "data: \(line)\n"
        }
        text += "\n"
        return Array(text.utf8)
    }

    /// A comment line, used as a keep-alive on long-lived streams.
    public static let keepAlive: [UInt8] = Array(":\n\n".utf8)
}

/// An incremental SSE parser: feed it bytes as they arrive, take complete events out.
public struct SSEParser: Sendable {
    private var buffer: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var eventType: String?
    private var lastID: String?
    private var retry: Int?
    private var lastWasCR = false
    /// Maximum bytes of one event; beyond it the stream is malformed (or hostile).
    public let maxEventBytes: Int

    public init(maxEventBytes: Int = 16 << 20) {
        self.maxEventBytes = maxEventBytes
    }

    public struct TooLarge: Error, CustomStringConvertible {
        public var description: String { "an SSE event exceeded the size limit" }
    }

    /// Feeds bytes and returns the events they complete. Inlinable so callers get it
    /// specialised; contiguous bytes (a `ByteBuffer`'s view, an array) are scanned in place.
    @inlinable
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [SSEEvent] {
        if let events = try bytes.withContiguousStorageIfAvailable({ try feed(buffer: $0) }) { return events }
        return try Array(bytes).withUnsafeBufferPointer { try feed(buffer: $0) }
    }

    /// Feeds bytes in place: runs between line ends are copied in one go.
    public mutating func feed(buffer bytes: UnsafeBufferPointer<UInt8>) throws -> [SSEEvent] {
        var events: [SSEEvent] = []
        var index = 0
        let count = bytes.count
        while index < count {
            if lastWasCR && bytes[index] == 0x0A {
                // The LF of a CRLF pair.
                lastWasCR = false
                index += 1
                continue
            }
            var end = index
            while end < count && bytes[end] != 0x0A && bytes[end] != 0x0D { end += 1 }
            if end > index {
                buffer.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<end]))
                lastWasCR = false
                if buffer.count + data.count > maxEventBytes { throw TooLarge() }
            }
            guard end < count else { break }
            lastWasCR = bytes[end] == 0x0D
            if let event = processLine() { events.append(event) }
            buffer.removeAll(keepingCapacity: true)
            index = end + 1
        }
        return events
    }

    private mutating func processLine() -> SSEEvent? {
        if buffer.isEmpty {
            // Blank line: dispatch.
            defer {
                data.removeAll(keepingCapacity: true)
                hasData = false
                eventType = nil
                retry = nil
            }
            guard hasData else { return nil }
            return SSEEvent(event: eventType, data: String(decoding: data, as: UTF8.self), id: lastID, retry: retry)
        }
        if buffer.first == UInt8(ascii: ":") { return nil }  // comment
        let field: String
        var value: ArraySlice<UInt8>
        if let colon = buffer.firstIndex(of: UInt8(ascii: ":")) {
            field = String(decoding: buffer[..<colon], as: UTF8.self)
            value = buffer[(colon + 1)...]
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        } else {
            field = String(decoding: buffer, as: UTF8.self)
            value = []
        }
        switch field {
        case "data":
            if hasData { data.append(0x0A) }
            data.append(contentsOf: value)
            hasData = true
        case "event": eventType = String(decoding: value, as: UTF8.self)
        case "id": lastID = String(decoding: value, as: UTF8.self)
        case "retry": retry = Int(String(decoding: value, as: UTF8.self))
        default: break
        }
        return nil
    }
}
