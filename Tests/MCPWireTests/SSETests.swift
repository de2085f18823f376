import Testing
@testable import MCPWire

@Suite("SSE codec")
struct SSETests {
    @Test("encoder frames one message per event")
    func encode() {
        let frame = String(decoding: SSEEncoder.message(Array(#"{"a":1}"#.utf8)), as: UTF8.self)
        #expect(frame == "event: message\ndata: {\"a\":1}\n\n")
    }

    @Test("newlines inside data cannot end the event early")
    func injection() throws {
        let frame = SSEEncoder.message(Array("x\n\nevent: evil\ndata: y".utf8))
        var parser = SSEParser()
        let events = try parser.feed(frame)
        #expect(events.count == 1)
        #expect(events.first?.event == "message")
    }

    @Test("parser handles split chunks, CRLF, comments and multi-line data")
    func parse() throws {
        var parser = SSEParser()
        let stream = ": keep-alive\r\nevent: message\r\nid: 1\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata: second\n\n"
        var events: [SSEEvent] = []
        for byte in Array(stream.utf8) { events += try parser.feed([byte]) }
        #expect(events == [SSEEvent(event: "message", data: "{\"a\":\n1}", id: "1"), SSEEvent(data: "second", id: "1")])
    }

    @Test("every split of a stream gives the same events (runs copied in one go, CRLF across chunks)")
    func splits() throws {
        let stream = Array(": c\r\nevent: message\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata: second\r\rdata: third\n\n".utf8)
        var whole = SSEParser()
        let expected = try whole.feed(stream)
        #expect(expected.map(\.data) == ["{\"a\":\n1}", "second", "third"])
        for cut in 1..<stream.count {
            var parser = SSEParser()
            let events = try parser.feed(Array(stream[..<cut])) + parser.feed(stream[cut...])
            #expect(events == expected, "split at \(cut)")
        }
    }

    @Test("an event larger than the limit fails instead of growing without bound")
    func limit() {
        var parser = SSEParser(maxEventBytes: 16)
        #expect(throws: SSEParser.TooLarge.self) { try parser.feed(Array("data: 0123456789012345678901234567890\n".utf8)) }
    }
}
