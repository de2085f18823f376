import MCPWire

/// The 2026-07-28 Streamable HTTP request rules (`StatelessRequestRules`), `ProtocolVersion` and
/// the `Mcp-Name` header value codec, with header values taken from the input.
///
/// Input: fields separated by 0x00 bytes —
///   body JSON \0 MCP-Protocol-Version \0 Mcp-Method \0 Mcp-Name \0 extra
/// A missing field is a missing header. The first byte of `extra` (if any) picks the header-name
/// spelling (lookups must be case-insensitive).
///
/// Properties (a violation is a crash, i.e. a finding):
/// - `check` never crashes, and only answers 400 with a known error code;
/// - it accepts only when the version header equals the body's `_meta` version and that version
///   is stateless;
/// - `decodeHeaderValue(encodeHeaderValue(s)) == s` for any string, and the encoded form is
///   header-safe (printable ASCII, no leading or trailing space);
/// - a request built from the fields, with headers mirrored from it as a conforming client does,
///   passes `check` exactly when its version is a stateless revision.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    let fields = input.split(separator: 0, maxSplits: 4, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    let body = input.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false).first ?? input[...]
    let versionHeader = fields.count > 1 ? fields[1] : nil
    let methodHeader = fields.count > 2 ? fields[2] : nil
    let nameHeader = fields.count > 3 ? fields[3] : nil
    let spelling = fields.count > 4 ? (fields[4].utf8.first ?? 0) : 0

    var headers: [String: String] = [:]
    if let versionHeader { headers[MCPHeader.protocolVersion] = versionHeader }
    if let methodHeader { headers[MCPHeader.method] = methodHeader }
    if let nameHeader { headers[MCPHeader.name] = nameHeader }

    // Protocol versions.
    for text in [versionHeader, methodHeader].compactMap({ $0 }) {
        if let version = ProtocolVersion(text) {
            precondition(version.rawValue == text && ProtocolVersion.all.contains(version), "ProtocolVersion(\(text.debugDescription)) is not a known revision")
            _ = (version.isStateless, version.allowsBatches, version.hasVersionHeader)
        }
    }

    // The header value codec.
    for text in fields {
        let encoded = StatelessRequestRules.encodeHeaderValue(text)
        precondition(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E } && encoded.first != " " && encoded.last != " ",
                     "encodeHeaderValue(\(text.debugDescription)) is not header-safe: \(encoded.debugDescription)")
        let decoded = StatelessRequestRules.decodeHeaderValue(encoded)
        precondition(decoded == text, "decodeHeaderValue(encodeHeaderValue(\(text.debugDescription))) = \(decoded.debugDescription)")
        _ = StatelessRequestRules.decodeHeaderValue(text)
    }

    // The body as sent, with the headers as sent.
    if let document = try? JSONParser.parseDocument(buffer: UnsafeBufferPointer(rebasing: body)),
        let message = try? JSONRPCMessage(document: document, bytes: body)
    {
        check(message, headers: headers, spelling: spelling)
    }

    // A conforming request built from the fields: method and name from the header fields, the
    // version in both places. It must pass exactly when the version is stateless.
    if let version = versionHeader, let method = methodHeader {
        let nameField = StatelessRequestRules.nameField(for: method)
        var params: JSONObject = ["_meta": .object([MetaKey.protocolVersion: .string(version)])]
        if let nameField { params[nameField] = .string(nameHeader ?? "") }
        let message = JSONRPCMessage.request(id: .int(1), method: method, params: params)
        var mirrored = [MCPHeader.protocolVersion: version, MCPHeader.method: method]
        if nameField != nil { mirrored[MCPHeader.name] = StatelessRequestRules.encodeHeaderValue(nameHeader ?? "") }
        let outcome = check(message, headers: mirrored, spelling: spelling)
        let stateless = ProtocolVersion(version)?.isStateless ?? false
        switch outcome {
        case .success(let negotiated):
            precondition(stateless && negotiated.rawValue == version, "accepted \(version.debugDescription) for a mirrored request, negotiated \(negotiated)")
        case .failure(let rejection):
            precondition(!stateless && rejection.code == JSONRPCErrorCode.unsupportedProtocolVersion,
                         "rejected a conforming request (version \(version.debugDescription), method \(method.debugDescription), name \(String(describing: nameHeader).debugDescription)): \(rejection)")
        }
    }
    return 0
}

@discardableResult
func check(_ message: JSONRPCMessage, headers: [String: String], spelling: UInt8) -> Result<ProtocolVersion, WireRejection> {
    // Header names as a client might spell them; the lookup is case-insensitive.
    var spelled: [(String, String)] = []
    for (name, value) in headers {
        switch spelling % 3 {
        case 0: spelled.append((name, value))
        case 1: spelled.append((name.lowercased(), value))
        default: spelled.append((name.uppercased(), value))
        }
    }
    let lookup: (String) -> String? = { wanted in
        spelled.first { $0.0.lowercased() == wanted.lowercased() }?.1
    }
    do throws(WireRejection) {
        let version = try StatelessRequestRules.check(message, header: lookup)
        let body = StatelessRequestRules.metaVersion(of: message)
        precondition(version.isStateless && body == version.rawValue && lookup(MCPHeader.protocolVersion) == version.rawValue,
                     "check accepted version \(version) with body \(String(describing: body)) and header \(String(describing: lookup(MCPHeader.protocolVersion)))")
        return .success(version)
    } catch {
        precondition(error.httpStatus == 400, "rejection with HTTP status \(error.httpStatus)")
        precondition(error.code == JSONRPCErrorCode.headerMismatch || error.code == JSONRPCErrorCode.unsupportedProtocolVersion,
                     "rejection with code \(error.code)")
        _ = error.description
        return .failure(error)
    }
}
