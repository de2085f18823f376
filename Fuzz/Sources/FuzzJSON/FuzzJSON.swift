import MCPWire

/// MCPWire's JSON parser, writer and JSON-RPC envelope.
///
/// Properties (a violation is a crash, i.e. a finding):
/// - write(parse(x)) parses again, to an equal value, and writing that gives the same bytes;
/// - the generic `parseDocument(_:)` agrees with `parseDocument(buffer:)`;
/// - `idRange` points at bytes that parse to the top-level `"id"`;
/// - a valid envelope survives a round trip through its bytes, also after its id is replaced
///   (the relay path that patches the id inside the original bytes).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    let document: JSONParser.Document
    do {
        document = try JSONParser.parseDocument(buffer: input)
    } catch {
        // The generic entry point must reject it too.
        if let value = try? JSONParser.parse(Array(input)) {
            fatalError("parse(buffer:) rejected what parse(_:) accepted (\(error)); parse(_:) gave \(JSONWriter.string(value))")
        }
        return 0
    }
    let value = document.value

    // Writer round trip.
    let written = JSONWriter.bytes(value)
    let reparsed: JSONValue
    do {
        reparsed = try JSONParser.parse(written)
    } catch {
        fatalError("JSONWriter output does not parse: \(error); written: \(String(decoding: written, as: UTF8.self))")
    }
    precondition(reparsed == value, "re-parsed value differs; written: \(String(decoding: written, as: UTF8.self))")
    let rewritten = JSONWriter.bytes(reparsed)
    precondition(rewritten == written, "JSONWriter is not stable: \(String(decoding: written, as: UTF8.self)) then \(String(decoding: rewritten, as: UTF8.self))")

    // Both entry points agree.
    do {
        let generic = try JSONParser.parseDocument(Array(input))
        precondition(generic.value == value && generic.verbatim == document.verbatim && generic.idRange == document.idRange,
                     "parseDocument(_:) and parseDocument(buffer:) disagree")
    } catch {
        fatalError("parseDocument(_:) rejected what parseDocument(buffer:) accepted: \(error)")
    }

    // idRange locates the top-level id.
    if let range = document.idRange {
        precondition(range.lowerBound >= 0 && range.upperBound <= size, "idRange \(range) is outside the input (\(size) bytes)")
        guard case .object(let object) = value, let id = object["id"] else {
            fatalError("idRange \(range) set but the document has no top-level id")
        }
        let idValue: JSONValue
        do {
            idValue = try JSONParser.parse(Array(input[range]))
        } catch {
            fatalError("the bytes at idRange \(range) do not parse: \(error)")
        }
        // With a repeated "id" key the range may point at either occurrence; only verbatim documents are relayed.
        if document.verbatim {
            precondition(idValue == id, "the bytes at idRange \(range) are \(JSONWriter.string(idValue)), the id is \(JSONWriter.string(id))")
        }
    } else if document.verbatim, case .object(let object) = value, object["id"] != nil {
        fatalError("verbatim document with a top-level id but no idRange")
    }

    // The JSON-RPC envelope.
    guard var message = try? JSONRPCMessage(validating: value) else {
        if (try? JSONRPCMessage(document: document, bytes: input)) != nil {
            fatalError("JSONRPCMessage(document:bytes:) accepted what JSONRPCMessage(validating:) rejected")
        }
        return 0
    }
    _ = (message.method, message.params, message.result, message.error, message.id?.idKey, message.isResponse)
    let fromDocument: JSONRPCMessage
    do {
        fromDocument = try JSONRPCMessage(document: document, bytes: input)
    } catch {
        fatalError("JSONRPCMessage(document:bytes:) rejected what JSONRPCMessage(validating:) accepted: \(error)")
    }
    precondition(fromDocument == message, "the two JSONRPCMessage initialisers disagree")
    checkBytes(of: fromDocument, "as read")

    // Replace the id the way the relay does: in the kept bytes when there are any.
    if fromDocument.id != nil {
        var patched = fromDocument
        patched.id = .string("gh-fuzz-\u{1F600}\"\n")
        checkBytes(of: patched, "after replacing a string id")
        patched.id = .int(-42)
        checkBytes(of: patched, "after replacing an integer id")
    }
    if message.id != nil {
        message.id = .int(7)
        checkBytes(of: message, "after replacing the id of a message without kept bytes")
    }
    return 0
}

/// A message's bytes must say exactly what its object says.
func checkBytes(of message: JSONRPCMessage, _ context: String) {
    let bytes = message.bytes
    let value: JSONValue
    do {
        value = try JSONParser.parse(bytes)
    } catch {
        fatalError("message bytes \(context) do not parse: \(error); bytes: \(String(decoding: bytes, as: UTF8.self))")
    }
    precondition(value == .object(message.object),
                 "message bytes \(context) differ from its object: \(String(decoding: bytes, as: UTF8.self)) vs \(JSONWriter.string(.object(message.object)))")
    do {
        let again = try JSONRPCMessage(validating: value)
        precondition(again.kind == message.kind, "message kind changed \(context): \(message.kind) -> \(again.kind)")
    } catch {
        fatalError("message bytes \(context) no longer validate: \(error)")
    }
}
