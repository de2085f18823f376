import Testing
@testable import MCPWire

@Suite("JSON-RPC envelope")
struct JSONRPCTests {
    func message(_ text: String) throws -> JSONRPCMessage {
        try JSONRPCMessage(validating: try JSONParser.parse(text))
    }

    @Test("classifies requests, notifications, responses and errors")
    func kinds() throws {
        #expect(try message(#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).kind == .request)
        #expect(try message(#"{"jsonrpc":"2.0","id":"a","method":"x","params":{}}"#).kind == .request)
        #expect(try message(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).kind == .notification)
        #expect(try message(#"{"jsonrpc":"2.0","id":1,"result":{}}"#).kind == .response)
        #expect(try message(#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope"}}"#).kind == .errorResponse)
    }

    @Test("rejects what is not JSON-RPC, keeping the id when it can", arguments: [
        #"{"foo":1}"#, #"[]"#, #"1"#, #"{"jsonrpc":"1.0","id":1,"method":"x"}"#, #"{"jsonrpc":"2.0","id":1,"method":5}"#,
        #"{"jsonrpc":"2.0","id":null,"method":"x"}"#, #"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
        #"{"jsonrpc":"2.0","id":{},"method":"x"}"#, #"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#,
        #"{"jsonrpc":"2.0","result":{}}"#, #"{"jsonrpc":"2.0","id":1,"error":{"code":"x"}}"#,
    ])
    func invalid(_ text: String) {
        #expect(throws: JSONRPCEnvelopeError.self) { try message(text) }
    }

    @Test("an invalid request still reports its id")
    func idKept() throws {
        do {
            _ = try message(#"{"jsonrpc":"2.0","id":7,"method":5}"#)
            Issue.record("expected an error")
        } catch let error as JSONRPCEnvelopeError {
            #expect(error.id == .number("7"))
        }
    }

    @Test("built messages serialize in JSON-RPC shape")
    func building() {
        #expect(JSONWriter.string(.object(JSONRPCMessage.error(id: 3, code: -32601, message: "m").object))
                == #"{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"m"}}"#)
        #expect(JSONWriter.string(.object(JSONRPCMessage.error(id: nil, code: -32700, message: "p").object))
                == #"{"jsonrpc":"2.0","error":{"code":-32700,"message":"p"}}"#)
    }

    // MARK: Relaying the bytes a message came as

    func relayed(_ text: String) throws -> JSONRPCMessage {
        let bytes = Array(text.utf8)
        return try JSONRPCMessage(document: try JSONParser.parseDocument(bytes), bytes: bytes)
    }

    func text(_ message: JSONRPCMessage) -> String { String(decoding: message.bytes, as: UTF8.self) }

    @Test("an unchanged message goes on as it came: escapes, spacing and key order included")
    func unchangedBytes() throws {
        let body = #"{ "jsonrpc":"2.0", "id":7,"method":"tools/call","params":{"name":"echo","arguments":{"s":"\u0041\/","n":1.0E+2}}}"#
        let message = try relayed(body)
        #expect(message.wire != nil)
        #expect(text(message) == body)
    }

    @Test("a new id replaces the old one in place, of any length and type, again and again")
    func idReplacedInPlace() throws {
        var message = try relayed(#"{"jsonrpc":"2.0","id":"client-id-1","method":"ping","params":{"a":"\u0041"}}"#)
        message.id = .int(42)
        #expect(text(message) == #"{"jsonrpc":"2.0","id":42,"method":"ping","params":{"a":"\u0041"}}"#)
        message.id = .string("a much longer id than before")
        #expect(text(message) == #"{"jsonrpc":"2.0","id":"a much longer id than before","method":"ping","params":{"a":"\u0041"}}"#)
        #expect(message.id == .string("a much longer id than before"))
        // The bytes still parse to what the message holds.
        #expect(try JSONParser.parse(message.bytes) == .object(message.object))
    }

    @Test("any other change writes the message anew, so the change is never lost")
    func otherChangesRewrite() throws {
        var message = try relayed(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"s":"\u0041"}}}"#)
        message.params?["name"] = "b"
        #expect(message.wire == nil)
        #expect(text(message) == #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b","arguments":{"s":"A"}}}"#)
        var response = try relayed(#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#)
        response.object["result"] = .object(["redacted": true])
        #expect(text(response) == #"{"jsonrpc":"2.0","id":1,"result":{"redacted":true}}"#)
    }

    @Test("bytes another reader could read differently, or that break line framing, are never relayed", arguments: [
        // A repeated key: we keep the last, a server may keep the first (a policy bypass).
        #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"allowed","name":"forbidden"}}"#,
        #"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
        // Line breaks between tokens: stdio and SSE data lines carry one message per line.
        "{\"jsonrpc\":\"2.0\",\n\"id\":1,\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n",
    ])
    func notRelayed(_ body: String) throws {
        let message = try relayed(body)
        #expect(message.wire == nil)
        #expect(!text(message).contains("\n"))
        #expect(try JSONParser.parse(message.bytes) == .object(message.object))
    }

    @Test("the id found is the top-level one, not an id inside params")
    func topLevelID() throws {
        var message = try relayed(#"{"jsonrpc":"2.0","method":"x","params":{"id":5},"id":9}"#)
        message.id = .int(1)
        #expect(text(message) == #"{"jsonrpc":"2.0","method":"x","params":{"id":5},"id":1}"#)
        var notification = try relayed(#"{"jsonrpc":"2.0","method":"n","params":{"id":5}}"#)
        notification.id = .int(3)  // becomes a request: written anew
        #expect(notification.wire == nil)
        #expect(notification.id == .int(3))
    }
}
