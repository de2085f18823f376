import MCPWire

/// MCPWire's SSE parser and encoder.
///
/// Properties (a violation is a crash, i.e. a finding):
/// - feeding the input in pieces (split at up to three offsets taken from the input) gives the
///   same events, and the same success or size-limit error, as feeding it whole;
/// - every parsed event, encoded with `SSEEncoder.encode`, parses back to itself;
/// - `SSEEncoder.message(bytes)` parses back to one `message` event whose data is the bytes with
///   CR and LF both read as line ends (when the bytes are UTF-8).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    // A small limit so the size check is reached with libFuzzer's input sizes too.
    let limit = 512

    let whole: Result<[SSEEvent], SSEParser.TooLarge> = feed([input[...]], limit: limit)

    // Split points derived from the input: the first bytes pick them, so the fuzzer explores
    // them (including a split between the CR and LF of a CRLF pair).
    var cuts: [Int] = []
    if size > 0 {
        for k in 0..<min(3, size) { cuts.append((Int(input[k]) &* 31 &+ k &* 7) % (size + 1)) }
        cuts.append(size / 2)
    }
    cuts.sort()
    var pieces: [Slice<UnsafeBufferPointer<UInt8>>] = []
    var start = 0
    for cut in cuts where cut >= start {
        pieces.append(input[start..<cut])
        start = cut
    }
    pieces.append(input[start..<size])
    let split = feed(pieces, limit: limit)
    // Byte by byte, for short inputs.
    let bytewise = size <= 256 ? feed((0..<size).map { input[$0..<($0 + 1)] }, limit: limit) : split

    switch (whole, split, bytewise) {
    case (.success(let a), .success(let b), .success(let c)):
        precondition(a == b, "SSE events differ when the input is split at \(cuts): \(a) vs \(b)")
        precondition(a == c, "SSE events differ when the input is fed byte by byte: \(a) vs \(c)")
        for event in a { checkEncodeRoundTrip(event) }
    case (.failure, .failure, .failure):
        break
    default:
        fatalError("SSE size-limit outcome depends on how the input is split (cuts \(cuts)): whole \(whole), split \(split), bytewise \(bytewise)")
    }

    checkMessageFraming(input)
    return 0
}

/// Feeds the pieces in order; the events before an error are dropped, like a reader that
/// closes the stream on the error.
func feed(_ pieces: [Slice<UnsafeBufferPointer<UInt8>>], limit: Int) -> Result<[SSEEvent], SSEParser.TooLarge> {
    var parser = SSEParser(maxEventBytes: limit)
    var events: [SSEEvent] = []
    for piece in pieces {
        do {
            // Alternate between the two feed entry points.
            if piece.count % 2 == 0 {
                events += try parser.feed(buffer: UnsafeBufferPointer(rebasing: piece))
            } else {
                events += try parser.feed(Array(piece))
            }
        } catch let error as SSEParser.TooLarge {
            return .failure(error)
        } catch {
            fatalError("SSEParser.feed threw an unexpected error: \(error)")
        }
    }
    return .success(events)
}

func checkEncodeRoundTrip(_ event: SSEEvent) {
    let encoded = SSEEncoder.encode(event)
    var parser = SSEParser()
    do {
        let back = try parser.feed(encoded)
        precondition(back == [event], "SSEEncoder.encode does not round-trip \(event): \(String(decoding: encoded, as: UTF8.self).debugDescription) parses to \(back)")
    } catch {
        fatalError("SSEEncoder.encode output is rejected: \(error)")
    }
}

func checkMessageFraming(_ input: UnsafeBufferPointer<UInt8>) {
    let framed = SSEEncoder.message(Array(input), id: "fuzz-1")
    var parser = SSEParser()
    let events: [SSEEvent]
    do {
        events = try parser.feed(framed)
    } catch {
        fatalError("SSEEncoder.message output is rejected: \(error)")
    }
    precondition(events.count == 1, "SSEEncoder.message framed \(input.count) bytes as \(events.count) events: \(events)")
    let event = events[0]
    precondition(event.event == "message" && event.id == "fuzz-1", "SSEEncoder.message event/id lost: \(event)")
    let expected = String(decoding: input.map { $0 == 0x0D ? 0x0A : $0 }, as: UTF8.self)
    precondition(event.data == expected, "SSEEncoder.message data changed: \(expected.debugDescription) came back as \(event.data.debugDescription)")
}
