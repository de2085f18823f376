import Testing
@testable import MCPWire

@Suite("JSON values keep what the gateway must not change")
struct JSONTests {
    @Test("round trip keeps key order and number text")
    func roundTrip() throws {
        let text = #"{"z":1.0,"a":[12345678901234567890,-0.5e10,true,null],"m":{"b":"x","a":"y"}}"#
        let value = try JSONParser.parse(text)
        #expect(JSONWriter.string(value) == text)
    }

    @Test("strings are unescaped and re-escaped correctly")
    func strings() throws {
        let value = try JSONParser.parse(#"["a\"b\\c\n\u00e9\ud83d\ude00\/"]"#)
        #expect(value == .array([.string("a\"b\\c\né😀/")]))
        #expect(JSONWriter.string(value) == #"["a\"b\\c\né😀/"]"#)
        #expect(JSONWriter.string(.string("\u{01}")) == #""\u0001""#)
    }

    @Test("strings are written in runs: escapes at the start, middle and end, long and bridged strings")
    func stringRuns() {
        #expect(JSONWriter.string(.string("")) == #""""#)
        #expect(JSONWriter.string(.string("\"x")) == #""\"x""#)
        #expect(JSONWriter.string(.string("x\t")) == #""x\t""#)
        #expect(JSONWriter.string(.string("\r\n\u{1f}")) == #""\r\n\u001f""#)
        let long = String(repeating: "a", count: 5000) + "\"" + String(repeating: "é", count: 100) + "\\"
        #expect(JSONWriter.string(.string(long)) == "\"" + String(repeating: "a", count: 5000) + "\\\"" + String(repeating: "é", count: 100) + "\\\\\"")
        // A string that is not native UTF-8 storage takes the byte-by-byte path.
        let bridged = String(decoding: Array("q\"\u{2}".utf16), as: UTF16.self)
        #expect(JSONWriter.string(.string(bridged)) == #""q\"\u0002""#)
    }

    @Test("invalid JSON is rejected with a position", arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "tru", "01", "1.", "\"\u{01}\"", "{\"a\":1}x", "\"\\ud800\"", "[1 2]", "{'a':1}",
    ])
    func invalid(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test("nesting deeper than the limit is refused, not a stack overflow")
    func depthLimit() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        do {
            _ = try JSONParser.parse(deep, maxDepth: 64)
            Issue.record("expected a depth error")
        } catch {
            #expect(error.kind == .tooDeep(limit: 64))
        }
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try JSONParser.parse(ok, maxDepth: 64) }
        let over = String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(over, maxDepth: 64) }
    }

    @Test("invalid UTF-8 in a string is a parse error")
    func invalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test("object subscripts set, replace and remove keys in place")
    func objectEditing() {
        var object: JSONObject = ["a": 1, "b": 2]
        object["a"] = "x"
        object["c"] = true
        object["b"] = nil
        #expect(object.keys == ["a", "c"])
        #expect(object["a"] == "x")
    }
}
