import Foundation
import Synchronization
import Testing

@testable import GatehouseServer

private let traceHex = "4bf92f3577b34da6a3ce929d0e0e4736"
private let spanHex = "00f067aa0ba902b7"
private let validHeader = "00-\(traceHex)-\(spanHex)-01"
private let traceBytes: [UInt8] = [0x4B, 0xF9, 0x2F, 0x35, 0x77, 0xB3, 0x4D, 0xA6, 0xA3, 0xCE, 0x92, 0x9D, 0x0E, 0x0E, 0x47, 0x36]
private let spanBytes: [UInt8] = [0x00, 0xF0, 0x67, 0xAA, 0x0B, 0xA9, 0x02, 0xB7]

@Suite("W3C traceparent / tracestate")
struct TraceContextTests {
    @Test func parsesAValidHeader() throws {
        let context = try #require(TraceContext.parse(traceparent: validHeader, tracestate: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"))
        #expect(context.traceID == traceBytes)
        #expect(context.spanID == spanBytes)
        #expect(context.sampled)
        #expect(context.traceState == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
    }

    @Test func sampledFlag() throws {
        #expect(try #require(TraceContext.parse(traceparent: "00-\(traceHex)-\(spanHex)-00", tracestate: nil)).sampled == false)
        // Only bit 0 means "sampled"; other flag bits are ignored.
        #expect(try #require(TraceContext.parse(traceparent: "00-\(traceHex)-\(spanHex)-03", tracestate: nil)).sampled == true)
        #expect(try #require(TraceContext.parse(traceparent: "00-\(traceHex)-\(spanHex)-02", tracestate: nil)).sampled == false)
    }

    @Test(arguments: [
        "00-\(traceHex.uppercased())-\(spanHex)-01",  // uppercase trace id
        "00-\(traceHex)-\(spanHex.uppercased())-01",  // uppercase span id
        "00-\(traceHex)-\(spanHex)-0A",  // uppercase flags
        "0A-\(traceHex)-\(spanHex)-01",  // uppercase version
    ])
    func uppercaseHexIsRefused(header: String) {
        #expect(TraceContext.parse(traceparent: header, tracestate: nil) == nil)
    }

    @Test func allZeroIDsAreRefused() {
        let zeroTrace = String(repeating: "0", count: 32)
        let zeroSpan = String(repeating: "0", count: 16)
        #expect(TraceContext.parse(traceparent: "00-\(zeroTrace)-\(spanHex)-01", tracestate: nil) == nil)
        #expect(TraceContext.parse(traceparent: "00-\(traceHex)-\(zeroSpan)-01", tracestate: nil) == nil)
        // One non-zero digit anywhere makes an id valid.
        #expect(TraceContext.parse(traceparent: "00-\(String(repeating: "0", count: 31))1-\(spanHex)-01", tracestate: nil) != nil)
    }

    @Test func versionFFIsRefused() {
        #expect(TraceContext.parse(traceparent: "ff-\(traceHex)-\(spanHex)-01", tracestate: nil) == nil)
        #expect(TraceContext.parse(traceparent: "ff-\(traceHex)-\(spanHex)-01-extra", tracestate: nil) == nil)
    }

    @Test func aFutureVersionMayCarryMoreFields() throws {
        let extended = try #require(TraceContext.parse(traceparent: "cc-\(traceHex)-\(spanHex)-01-what-the-future-holds", tracestate: nil))
        #expect(extended.traceID == traceBytes)
        #expect(extended.spanID == spanBytes)
        #expect(extended.sampled)
        // Exactly four fields is fine at a higher version too.
        #expect(TraceContext.parse(traceparent: "01-\(traceHex)-\(spanHex)-00", tracestate: nil)?.sampled == false)
        // More characters must start a new field.
        #expect(TraceContext.parse(traceparent: "01-\(traceHex)-\(spanHex)-01x", tracestate: nil) == nil)
        // Version 00 has exactly four fields.
        #expect(TraceContext.parse(traceparent: "00-\(traceHex)-\(spanHex)-01-extra", tracestate: nil) == nil)
        #expect(TraceContext.parse(traceparent: "\(validHeader)-", tracestate: nil) == nil)
    }

    @Test(arguments: [
        "",
        "00",
        "00-\(traceHex)-\(spanHex)",  // no flags
        "00-\(traceHex)-\(spanHex)-1",  // 1-digit flags
        "00-\(traceHex)-\(spanHex)-011",  // 3-digit flags
        "00-\(traceHex.dropLast())-\(spanHex)-01",  // 31-digit trace id
        "00-\(traceHex)0-\(spanHex)-01",  // 33-digit trace id
        "00-\(traceHex)-\(spanHex.dropLast())-01",  // 15-digit span id
        "00-\(traceHex)-\(spanHex)0-01",  // 17-digit span id
        "0-\(traceHex)-\(spanHex)-01",  // 1-digit version
        "000-\(traceHex)-\(spanHex)-01",  // 3-digit version
        "00_\(traceHex)_\(spanHex)_01",  // wrong separators
        "00-\(traceHex.dropLast())g-\(spanHex)-01",  // not hex
        "00-\(traceHex)-\(spanHex.dropLast())z-01",  // not hex
    ])
    func wrongShapesAreRefused(header: String) {
        #expect(TraceContext.parse(traceparent: header, tracestate: nil) == nil)
    }

    @Test func tracestateIsKeptUpTo512Characters() {
        let long = String(repeating: "a", count: 508) + "=b,c"  // 512
        #expect(long.count == 512)
        #expect(TraceContext.parse(traceparent: validHeader, tracestate: long)?.traceState == long)
        let tooLong = long + "d"
        let dropped = TraceContext.parse(traceparent: validHeader, tracestate: tooLong)
        #expect(dropped != nil, "a too-long tracestate is dropped, the traceparent still counts")
        #expect(dropped?.traceState == nil)
        #expect(TraceContext.parse(traceparent: validHeader, tracestate: nil)?.traceState == nil)
    }

    @Test func rendersAndRoundTrips() throws {
        #expect(try #require(TraceContext.parse(traceparent: validHeader, tracestate: nil)).traceparent == validHeader)
        let unsampled = "00-\(traceHex)-\(spanHex)-00"
        #expect(try #require(TraceContext.parse(traceparent: unsampled, tracestate: nil)).traceparent == unsampled)
        // A future version is rendered as version 00 with the four known fields.
        #expect(try #require(TraceContext.parse(traceparent: "cc-\(traceHex)-\(spanHex)-01-more", tracestate: nil)).traceparent == validHeader)
        let made = TraceContext(traceID: traceBytes, spanID: spanBytes, sampled: true, traceState: nil)
        #expect(made.traceparent == validHeader)
        #expect(TraceContext.parse(traceparent: made.traceparent, tracestate: nil) == made)
    }

    @Test func hex() {
        #expect(TraceContext.hex(traceBytes) == traceHex)
        #expect(TraceContext.hex(spanBytes) == spanHex)
        #expect(TraceContext.hex([]) == "")
        #expect(TraceContext.hex([0x00, 0x0F, 0xF0, 0xFF]) == "000ff0ff")
    }
}

@Suite("Tracer and spans")
struct TracerTests {
    let sampledParent = TraceContext(traceID: traceBytes, spanID: spanBytes, sampled: true, traceState: "rojo=1")

    @Test func anUnsampledParentIsNotTraced() {
        let tracer = Tracer(serviceName: "t", sampleRatio: 1)
        let parent = TraceContext(traceID: traceBytes, spanID: spanBytes, sampled: false, traceState: nil)
        #expect(tracer.startSpan("tools/call echo", kind: .server, parent: parent) == nil)
    }

    @Test func ratioZeroTracesNothingWithoutAParent() {
        let tracer = Tracer(serviceName: "t", sampleRatio: 0)
        for _ in 0..<200 { #expect(tracer.startSpan("tools/list", kind: .server, parent: nil) == nil) }
        // A sampled parent decides, whatever the ratio.
        #expect(tracer.startSpan("tools/list", kind: .server, parent: sampledParent) != nil)
    }

    @Test func ratioOneTracesEverythingInANewTrace() throws {
        let tracer = Tracer(serviceName: "t", sampleRatio: 1)
        let a = try #require(tracer.startSpan("tools/list", kind: .server, parent: nil))
        let b = try #require(tracer.startSpan("tools/list", kind: .server, parent: nil))
        #expect(a.context.traceID.count == 16 && a.context.spanID.count == 8)
        #expect(a.context.traceID.contains { $0 != 0 } && a.context.spanID.contains { $0 != 0 })
        #expect(a.context.sampled)
        #expect(a.context.traceState == nil)
        #expect(a.parentSpanID == nil)
        #expect(a.context.traceID != b.context.traceID, "each root span starts its own trace")
    }

    @Test func aSpanJoinsItsParentsTrace() throws {
        let tracer = Tracer(serviceName: "t", sampleRatio: 0)
        let span = try #require(tracer.startSpan("tools/call echo", kind: .server, parent: sampledParent))
        #expect(span.context.traceID == traceBytes)
        #expect(span.context.spanID != spanBytes && span.context.spanID.count == 8)
        #expect(span.parentSpanID == spanBytes)
        #expect(span.context.sampled)
        #expect(span.context.traceState == "rojo=1", "the caller's tracestate is carried over")
        span.end()
        let record = try #require(tracer.drain(max: 10).first)
        #expect(record.traceID == traceBytes)
        #expect(record.parentSpanID == spanBytes)
        #expect(record.spanID == span.context.spanID)
        #expect(record.kind == .server)
        #expect(record.name == "tools/call echo")
    }

    @Test func childrenShareTheTraceAndPointAtTheirParent() throws {
        let tracer = Tracer(serviceName: "t", sampleRatio: 1)
        let server = try #require(tracer.startSpan("tools/call echo", kind: .server, parent: sampledParent))
        let auth = server.child("gatehouse.authenticate", kind: .internal)
        let client = server.child("tools/call echo", kind: .client)
        #expect(auth.context.traceID == server.context.traceID && client.context.traceID == server.context.traceID)
        #expect(auth.parentSpanID == server.context.spanID && client.parentSpanID == server.context.spanID)
        #expect(auth.context.spanID != client.context.spanID && client.context.spanID != server.context.spanID)
        #expect(client.context.traceState == "rojo=1")
        // The CLIENT span is the parent to propagate upstream.
        #expect(client.context.traceparent == "00-\(traceHex)-\(TraceContext.hex(client.context.spanID))-01")
        auth.end()
        client.end()
        server.end()
        let records = tracer.drain(max: 10)
        #expect(records.map(\.name) == ["gatehouse.authenticate", "tools/call echo", "tools/call echo"])
        #expect(records.map(\.kind) == [.internal, .client, .server])
        #expect(records.map(\.parentSpanID) == [server.context.spanID, server.context.spanID, spanBytes])
        #expect(Set(records.map(\.traceID)) == [traceBytes])
    }

    @Test func endRecordsOnce() throws {
        let tracer = Tracer(serviceName: "t", sampleRatio: 1)
        let span = try #require(tracer.startSpan("ping", kind: .server, parent: nil))
        span.setAttribute("mcp.method.name", .string("ping"))
        span.end()
        span.setAttribute("late", .bool(true))  // after end: ignored
        span.setError("late_error")  // after end: ignored
        span.end()
        span.end()
        let records = tracer.drain(max: 10)
        #expect(records.count == 1)
        #expect(records.first?.attributes.map(\.0) == ["mcp.method.name"])
        #expect(records.first?.error == nil)
        #expect(tracer.drain(max: 10).isEmpty)
    }

    @Test func attributesAndErrors() throws {
        let tracer = Tracer(serviceName: "t", sampleRatio: 1)
        let span = try #require(tracer.startSpan("tools/call fail", kind: .server, parent: nil))
        span.setAttribute("mcp.method.name", .string("tools/call"))
        span.setAttribute("jsonrpc.request.id", .int(1))
        span.setAttribute("jsonrpc.request.id", .int(2))  // replaces, keeps its place
        span.setAttribute("ratio", .double(0.25))
        span.setError("tool_error")
        span.end()
        let record = try #require(tracer.drain(max: 1).first)
        #expect(record.attributes.map(\.0) == ["mcp.method.name", "jsonrpc.request.id", "ratio", "error.type"])
        #expect(record.attribute("jsonrpc.request.id") == .int(2))
        #expect(record.attribute("ratio") == .double(0.25))
        #expect(record.attribute("error.type") == .string("tool_error"))
        #expect(record.error == "tool_error")
    }

    @Test func timestampsAreWallClockNanoseconds() throws {
        let before = UInt64(Date().timeIntervalSince1970 * 1e9)
        let tracer = Tracer(serviceName: "t", sampleRatio: 1)
        let span = try #require(tracer.startSpan("ping", kind: .server, parent: nil))
        span.end()
        let after = UInt64(Date().timeIntervalSince1970 * 1e9)
        let record = try #require(tracer.drain(max: 1).first)
        let slack: UInt64 = 1_000_000_000  // Date and CLOCK_REALTIME may round differently
        #expect(record.startUnixNanos + slack >= before && record.startUnixNanos <= after + slack)
        #expect(record.endUnixNanos >= record.startUnixNanos)
    }

    @Test func aFullQueueDropsAndCounts() throws {
        let tracer = Tracer(serviceName: "t", sampleRatio: 1, maxQueue: 3, batchSize: 2)
        for i in 0..<5 {
            let span = try #require(tracer.startSpan("s\(i)", kind: .server, parent: nil))
            span.end()
        }
        #expect(tracer.droppedCount == 2)
        // Oldest first, at most `max` at a time.
        #expect(tracer.drain(max: 2).map(\.name) == ["s0", "s1"])
        #expect(tracer.drain(max: 2).map(\.name) == ["s2"])
        #expect(tracer.drain(max: 2).isEmpty)
        // Room again.
        try #require(tracer.startSpan("s5", kind: .server, parent: nil)).end()
        #expect(tracer.drain(max: 5).map(\.name) == ["s5"])
        #expect(tracer.droppedCount == 2)
    }

    @Test func randomIDs() {
        let a = Tracer.randomID(16)
        let b = Tracer.randomID(16)
        #expect(a.count == 16 && Tracer.randomID(8).count == 8)
        #expect(a != b)
        #expect(a.contains { $0 != 0 })
    }
}

@Suite("OTLP/HTTP JSON")
struct OTLPJSONTests {
    let traceID: [UInt8] = Array(1...16)
    let serverID: [UInt8] = [0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8]
    let clientID: [UInt8] = [0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8]
    let callerID: [UInt8] = [0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8]

    func records() -> [SpanRecord] {
        [
            SpanRecord(name: "tools/call echo", kind: .server, traceID: traceID, spanID: serverID, parentSpanID: callerID,
                       startUnixNanos: 1_700_000_000_123_456_789, endUnixNanos: 1_700_000_000_987_654_321,
                       attributes: [("mcp.method.name", .string("tools/call")), ("jsonrpc.request.id", .int(7)),
                                    ("sample.ratio", .double(0.5)), ("cached", .bool(true)), ("error.type", .string("tool_error"))],
                       error: "tool_error"),
            SpanRecord(name: "tools/call echo", kind: .client, traceID: traceID, spanID: clientID, parentSpanID: nil,
                       startUnixNanos: 18_446_744_073_709_551_615, endUnixNanos: 18_446_744_073_709_551_615,
                       attributes: [], error: nil),
        ]
    }

    func decode(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test func documentedShape() throws {
        let root = try decode(Tracer.otlpJSON(records(), serviceName: "gatehouse-test", scopeVersion: "0.1.0"))
        #expect(Set(root.keys) == ["resourceSpans"])
        let resourceSpans = try #require(root["resourceSpans"] as? [[String: Any]])
        #expect(resourceSpans.count == 1)
        let resource = try #require(resourceSpans[0]["resource"] as? [String: Any])
        let resourceAttributes = try #require(resource["attributes"] as? [[String: Any]])
        #expect(resourceAttributes.count == 1)
        #expect(resourceAttributes[0]["key"] as? String == "service.name")
        #expect((resourceAttributes[0]["value"] as? [String: Any])?["stringValue"] as? String == "gatehouse-test")

        let scopeSpans = try #require(resourceSpans[0]["scopeSpans"] as? [[String: Any]])
        #expect(scopeSpans.count == 1)
        let scope = try #require(scopeSpans[0]["scope"] as? [String: Any])
        #expect(scope["name"] as? String == "gatehouse")
        #expect(scope["version"] as? String == "0.1.0")
        let spans = try #require(scopeSpans[0]["spans"] as? [[String: Any]])
        #expect(spans.count == 2)

        let server = spans[0]
        #expect(server["traceId"] as? String == "0102030405060708090a0b0c0d0e0f10")
        #expect(server["spanId"] as? String == "a1a2a3a4a5a6a7a8")
        #expect(server["parentSpanId"] as? String == "c1c2c3c4c5c6c7c8")
        #expect(server["name"] as? String == "tools/call echo")
        #expect(server["kind"] as? Int == 2)
        #expect(server["startTimeUnixNano"] as? String == "1700000000123456789")
        #expect(server["endTimeUnixNano"] as? String == "1700000000987654321")
        let attributes = try #require(server["attributes"] as? [[String: Any]])
        var values: [String: [String: Any]] = [:]
        for attribute in attributes {
            let key = try #require(attribute["key"] as? String)
            values[key] = try #require(attribute["value"] as? [String: Any])
        }
        #expect(attributes.map { $0["key"] as? String } == ["mcp.method.name", "jsonrpc.request.id", "sample.ratio", "cached", "error.type"])
        #expect(values["mcp.method.name"]?["stringValue"] as? String == "tools/call")
        #expect(values["jsonrpc.request.id"]?["intValue"] as? String == "7", "64-bit integers are decimal strings in OTLP JSON")
        #expect(values["sample.ratio"]?["doubleValue"] as? Double == 0.5)
        #expect(values["cached"]?["boolValue"] as? Bool == true)
        #expect(values["error.type"]?["stringValue"] as? String == "tool_error")
        let status = try #require(server["status"] as? [String: Any])
        #expect(status["code"] as? Int == 2)
        #expect(status["message"] as? String == "tool_error")

        let client = spans[1]
        #expect(client["spanId"] as? String == "b1b2b3b4b5b6b7b8")
        #expect(client["parentSpanId"] == nil, "no parent: the key is omitted")
        #expect(client["kind"] as? Int == 3)
        #expect(client["startTimeUnixNano"] as? String == "18446744073709551615")
        #expect((client["attributes"] as? [Any])?.isEmpty == true)
        if let ok = client["status"] as? [String: Any] {
            #expect(ok["code"] as? Int == 0, "a span without an error is not an error")
        }
    }

    @Test func stringsAreEscapedAndNoBatchIsEmpty() throws {
        let odd = SpanRecord(name: "tools/call \"quoted\"\n\\", kind: .internal, traceID: traceID, spanID: serverID, parentSpanID: nil,
                             startUnixNanos: 1, endUnixNanos: 2, attributes: [("k", .string("é ✓ \u{01}"))], error: nil)
        let root = try decode(Tracer.otlpJSON([odd], serviceName: "s\"vc"))
        let resourceSpans = try #require(root["resourceSpans"] as? [[String: Any]])
        let scopeSpans = try #require(resourceSpans.first?["scopeSpans"] as? [[String: Any]])
        let span = try #require((scopeSpans.first?["spans"] as? [[String: Any]])?.first)
        #expect(span["name"] as? String == "tools/call \"quoted\"\n\\")
        #expect(span["kind"] as? Int == 1)
        let attribute = try #require((span["attributes"] as? [[String: Any]])?.first)
        #expect((attribute["value"] as? [String: Any])?["stringValue"] as? String == "é ✓ \u{01}")
        // No spans still makes a valid request.
        let empty = try decode(Tracer.otlpJSON([], serviceName: "s"))
        #expect(empty["resourceSpans"] != nil)
    }
}

/// What a `run(send:)` test's send closure received.
private final class Collector: Sendable {
    let bodies = Mutex<[[UInt8]]>([])
    let failing: Bool

    init(failing: Bool = false) { self.failing = failing }

    struct Refused: Error {}

    func send(_ body: [UInt8]) throws {
        bodies.withLock { $0.append(body) }
        if failing { throw Refused() }
    }

    /// Span names per export, in order.
    var batches: [[String]] {
        bodies.withLock { $0 }.map { body in
            guard let root = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
                  let resourceSpans = root["resourceSpans"] as? [[String: Any]],
                  let scopeSpans = resourceSpans.first?["scopeSpans"] as? [[String: Any]],
                  let spans = scopeSpans.first?["spans"] as? [[String: Any]]
            else { return ["<not OTLP JSON>"] }
            return spans.map { $0["name"] as? String ?? "<no name>" }
        }
    }

    /// Waits (up to `seconds`) until `condition` holds for the batches sent so far.
    func wait(seconds: Double = 5, until condition: ([[String]]) -> Bool) async throws -> [[String]] {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            let seen = batches
            if condition(seen) { return seen }
            try await Task.sleep(for: .milliseconds(20))
        }
        return batches
    }
}

@Suite("Export loop")
struct TracerRunTests {
    func record(_ tracer: Tracer, _ names: [String]) throws {
        for name in names { try #require(tracer.startSpan(name, kind: .server, parent: nil)).end() }
    }

    @Test func sendsFullBatchesWithoutWaitingForTheInterval() async throws {
        // The interval is an hour: whatever arrives within the test's wait went because the
        // batch was full, not because the interval passed (no wall-clock bound to flake on).
        let tracer = Tracer(serviceName: "t", sampleRatio: 1, batchSize: 2, exportInterval: .seconds(3600))
        let collector = Collector()
        let runner = Task { await tracer.run(send: { try collector.send($0) }) }
        defer { runner.cancel() }
        try record(tracer, ["a", "b", "c", "d", "e"])
        let batches = try await collector.wait { $0.flatMap { $0 }.count >= 4 }
        #expect(batches == [["a", "b"], ["c", "d"]])
        #expect(tracer.queuedCount == 1, "the partial batch waits for the interval")
    }

    @Test func sendsAPartialBatchAfterTheInterval() async throws {
        let tracer = Tracer(serviceName: "t", sampleRatio: 1, batchSize: 512)
        let collector = Collector()
        let runner = Task { await tracer.run(send: { try collector.send($0) }) }
        defer { runner.cancel() }
        try record(tracer, ["lonely"])
        let batches = try await collector.wait(seconds: 5) { !$0.isEmpty }
        #expect(batches == [["lonely"]])
    }

    @Test func flushesWhatIsQueuedOnCancellation() async throws {
        let tracer = Tracer(serviceName: "t", sampleRatio: 1, batchSize: 512)
        let collector = Collector()
        let runner = Task { await tracer.run(send: { try collector.send($0) }) }
        try record(tracer, ["x", "y", "z"])
        runner.cancel()
        await runner.value  // returns once the flush is done
        #expect(collector.batches.flatMap { $0 } == ["x", "y", "z"], "every queued span is sent exactly once")
        #expect(tracer.queuedCount == 0)
        #expect(tracer.exportFailures == 0)
    }

    @Test func returnsOnCancellationWithNothingQueued() async {
        let tracer = Tracer(serviceName: "t", sampleRatio: 1)
        let collector = Collector()
        let runner = Task { await tracer.run(send: { try collector.send($0) }) }
        runner.cancel()
        await runner.value
        #expect(collector.batches.isEmpty, "no empty export")
    }

    @Test func sendErrorsAreCountedAndSwallowed() async throws {
        let tracer = Tracer(serviceName: "t", sampleRatio: 1, batchSize: 1)
        let collector = Collector(failing: true)
        let runner = Task { await tracer.run(send: { try collector.send($0) }) }
        try record(tracer, ["a", "b"])
        _ = try await collector.wait { $0.count >= 2 }
        // The loop is still running: a later span is exported too.
        try record(tracer, ["c"])
        let batches = try await collector.wait { $0.count >= 3 }
        runner.cancel()
        await runner.value
        #expect(batches == [["a"], ["b"], ["c"]], "failed batches are not retried")
        #expect(tracer.exportFailures == 3)
        #expect(tracer.queuedCount == 0)
    }
}
