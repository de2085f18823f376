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
}
