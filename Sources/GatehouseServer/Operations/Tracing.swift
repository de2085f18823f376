import Foundation
import MCPWire
import Synchronization

/// A W3C Trace Context (https://www.w3.org/TR/trace-context/): the caller's trace id and span id,
/// its sampled flag and its opaque `tracestate`. Read from the HTTP headers `traceparent` /
/// `tracestate` or from `params._meta.traceparent` / `tracestate` (2026-07-28), and written on
/// upstream requests with the gateway's CLIENT span as the parent.
struct TraceContext: Sendable, Equatable {
    /// 16 bytes, never all zero.
    var traceID: [UInt8]
    /// 8 bytes, never all zero.
    var spanID: [UInt8]
    var sampled: Bool
    /// Passed along untouched (at most 512 characters; a longer one is dropped).
    var traceState: String?

    static let maxTraceStateLength = 512

    /// Parses `traceparent` as `VV-<32 hex>-<16 hex>-<2 hex>`, lowercase hex only. Version `ff`,
    /// an all-zero trace id or span id, and a version `00` header of any length but 55 are
    /// invalid (nil). A higher version may carry more fields after a `-`: the first four are read.
    /// Optional whitespace around the header value is ignored.
    static func parse(traceparent: String, tracestate: String?) -> TraceContext? {
        var b = Array(traceparent.utf8)
        while let last = b.last, last == 0x20 || last == 0x09 { b.removeLast() }
        if let start = b.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }), start > 0 { b.removeFirst(start) }
        guard b.count >= 55, b[2] == dash, b[35] == dash, b[52] == dash,
              let version = hexByte(b[0], b[1]), version != 0xFF,
              let flags = hexByte(b[53], b[54])
        else { return nil }
        if version == 0 {
            guard b.count == 55 else { return nil }
        } else if b.count > 55, b[55] != dash {
            return nil
        }
        guard let traceID = hexBytes(b[3..<35]), traceID.contains(where: { $0 != 0 }),
              let spanID = hexBytes(b[36..<52]), spanID.contains(where: { $0 != 0 })
        else { return nil }
        var state: String? = nil
        if let tracestate, !tracestate.isEmpty, tracestate.utf8.count <= maxTraceStateLength { state = tracestate }
        return TraceContext(traceID: traceID, spanID: spanID, sampled: flags & 1 == 1, traceState: state)
    }

    /// `00-<trace id>-<span id>-01` (or `-00` when not sampled).
    var traceparent: String {
        var out: [UInt8] = []
        out.reserveCapacity(55)
        out.append(contentsOf: [0x30, 0x30, Self.dash])
        Self.appendHex(traceID, to: &out)
        out.append(Self.dash)
        Self.appendHex(spanID, to: &out)
        out.append(contentsOf: [Self.dash, 0x30, sampled ? 0x31 : 0x30])
        return String(decoding: out, as: UTF8.self)
    }

    /// Lowercase hex, two digits a byte.
    static func hex(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        appendHex(bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static let dash = UInt8(ascii: "-")
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    private static func appendHex(_ bytes: [UInt8], to out: inout [UInt8]) {
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
    }

    /// A lowercase hex digit's value; uppercase and anything else are refused.
    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    private static func hexByte(_ high: UInt8, _ low: UInt8) -> UInt8? {
        guard let h = nibble(high), let l = nibble(low) else { return nil }
        return h << 4 | l
    }

    private static func hexBytes(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 2)
        var i = text.startIndex
        while i + 1 < text.endIndex {
            guard let byte = hexByte(text[i], text[i + 1]) else { return nil }
            out.append(byte)
            i += 2
        }
        return out
    }
}

/// OTLP `Span.SpanKind` values.
enum SpanKind: Int, Sendable {
    case `internal` = 1
    case server = 2
    case client = 3
}

enum AttributeValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
}

/// A finished span, as queued for export.
struct SpanRecord: Sendable, Equatable {
    var name: String
    var kind: SpanKind
    var traceID: [UInt8]
    var spanID: [UInt8]
    var parentSpanID: [UInt8]?
    var startUnixNanos: UInt64
    var endUnixNanos: UInt64
    var attributes: [(String, AttributeValue)]
    /// The `error.type` of a failed operation (status ERROR); nil when it succeeded.
    var error: String?

    static func == (lhs: SpanRecord, rhs: SpanRecord) -> Bool {
        lhs.name == rhs.name && lhs.kind == rhs.kind && lhs.traceID == rhs.traceID && lhs.spanID == rhs.spanID
            && lhs.parentSpanID == rhs.parentSpanID && lhs.startUnixNanos == rhs.startUnixNanos
            && lhs.endUnixNanos == rhs.endUnixNanos && lhs.error == rhs.error
            && lhs.attributes.count == rhs.attributes.count
            && zip(lhs.attributes, rhs.attributes).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    /// The value of attribute `key`, if set.
    func attribute(_ key: String) -> AttributeValue? {
        attributes.first(where: { $0.0 == key })?.1
    }
}

/// Spans of MCP requests, exported as OTLP/HTTP JSON (`spec.tracing`). Finished spans go to a
/// bounded queue (a full queue drops the span and counts it); `run(send:)` exports them in
/// batches off the request path, and a failed export is counted, never surfaced to a request.
final class Tracer: Sendable {
    let serviceName: String
    let sampleRatio: Double
    let maxQueue: Int
    let batchSize: Int
    /// `scope.version` in the export (the gateway's version); omitted when empty.
    let scopeVersion: String

    private struct State {
        var queue: [SpanRecord] = []
        var dropped = 0
        var exportFailures = 0
    }

    private let state = Mutex(State())

    /// How often `run` looks at the queue, and the longest a span waits before export.
    static let pollInterval: Duration = .milliseconds(100)
    let exportInterval: Duration

    init(
        serviceName: String, sampleRatio: Double, maxQueue: Int = 2048, batchSize: Int = 512,
        exportInterval: Duration = .seconds(1), scopeVersion: String = ""
    ) {
        self.serviceName = serviceName
        self.exportInterval = exportInterval
        self.sampleRatio = sampleRatio.isNaN ? 0 : min(max(sampleRatio, 0), 1)
        self.maxQueue = max(maxQueue, 0)
        self.batchSize = max(batchSize, 1)
        self.scopeVersion = scopeVersion
    }

    /// A span of a new operation, or nil when it is not sampled: with a parent, the parent's
    /// sampled flag decides (and the span joins its trace); without one, `sampleRatio` does and
    /// the span starts a new trace.
    func startSpan(_ name: String, kind: SpanKind, parent: TraceContext?) -> Span? {
        let context: TraceContext
        if let parent {
            guard parent.sampled else { return nil }
            context = TraceContext(traceID: parent.traceID, spanID: Self.randomID(8), sampled: true, traceState: parent.traceState)
        } else {
            guard sample() else { return nil }
            context = TraceContext(traceID: Self.randomID(16), spanID: Self.randomID(8), sampled: true, traceState: nil)
        }
        return Span(tracer: self, name: name, kind: kind, context: context, parentSpanID: parent?.spanID)
    }

    private func sample() -> Bool {
        if sampleRatio >= 1 { return true }
        if sampleRatio <= 0 { return false }
        var rng = SystemRandomNumberGenerator()
        return Double.random(in: 0..<1, using: &rng) < sampleRatio
    }

    /// Spans dropped because the queue was full.
    var droppedCount: Int { state.withLock { $0.dropped } }

    /// Exports that failed (the collector down, refusing, or slow to answer).
    var exportFailures: Int { state.withLock { $0.exportFailures } }

    var queuedCount: Int { state.withLock { $0.queue.count } }

    func record(_ span: SpanRecord) {
        state.withLock { state in
            if state.queue.count >= maxQueue {
                state.dropped += 1
            } else {
                state.queue.append(span)
            }
        }
    }

    /// Takes up to `max` of the oldest queued spans off the queue.
    func drain(max: Int) -> [SpanRecord] {
        guard max > 0 else { return [] }
        return state.withLock { state in
            if state.queue.count <= max {
                defer { state.queue.removeAll(keepingCapacity: true) }
                return state.queue
            }
            let batch = Array(state.queue.prefix(max))
            state.queue.removeFirst(max)
            return batch
        }
    }

    /// Exports until the task is cancelled: a batch whenever `batchSize` spans are queued, and
    /// whatever is queued once `exportInterval` has passed since the last export. `send` gets
    /// one OTLP/HTTP JSON request body per batch; its errors are counted in `exportFailures`.
    /// On cancellation everything still queued is sent once, outside the cancelled task (so an
    /// HTTP client that honours cancellation still sends it); `send` must bound its own time.
    func run(send: @escaping @Sendable ([UInt8]) async throws -> Void) async {
        var lastExport = ContinuousClock.now
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: Self.pollInterval)
            } catch {
                break
            }
            var queued = queuedCount
            guard queued >= batchSize || (queued > 0 && ContinuousClock.now - lastExport >= exportInterval) else { continue }
            repeat {
                await export(drain(max: batchSize), send)
                queued = queuedCount
            } while queued >= batchSize && !Task.isCancelled
            lastExport = .now
        }
        await Task {
            while true {
                let batch = self.drain(max: self.batchSize)
                if batch.isEmpty { break }
                await self.export(batch, send)
            }
        }.value
    }

    private func export(_ batch: [SpanRecord], _ send: @Sendable ([UInt8]) async throws -> Void) async {
        guard !batch.isEmpty else { return }
        do {
            try await send(Self.otlpJSON(batch, serviceName: serviceName, scopeVersion: scopeVersion))
        } catch {
            state.withLock { $0.exportFailures += 1 }
        }
    }

    /// An OTLP/HTTP JSON `ExportTraceServiceRequest` (ids in lowercase hex, 64-bit integers as
    /// decimal strings, as the OTLP JSON encoding requires).
    static func otlpJSON(_ spans: [SpanRecord], serviceName: String, scopeVersion: String = "") -> [UInt8] {
        var scope: JSONObject = ["name": "gatehouse"]
        if !scopeVersion.isEmpty { scope["version"] = .string(scopeVersion) }
        let body: JSONValue = [
            "resourceSpans": [[
                "resource": ["attributes": [attribute("service.name", .string(serviceName))]],
                "scopeSpans": [[
                    "scope": .object(scope),
                    "spans": .array(spans.map(spanJSON)),
                ]],
            ]],
        ]
        return JSONWriter.bytes(body)
    }

    private static func spanJSON(_ span: SpanRecord) -> JSONValue {
        var object = JSONObject()
        object.reserveCapacity(10)
        object.append("traceId", .string(TraceContext.hex(span.traceID)))
        object.append("spanId", .string(TraceContext.hex(span.spanID)))
        if let parent = span.parentSpanID { object.append("parentSpanId", .string(TraceContext.hex(parent))) }
        object.append("name", .string(span.name))
        object.append("kind", .int(span.kind.rawValue))
        object.append("startTimeUnixNano", .string(String(span.startUnixNanos)))
        object.append("endTimeUnixNano", .string(String(span.endUnixNanos)))
        object.append("attributes", .array(span.attributes.map { attribute($0.0, $0.1) }))
        if let error = span.error {
            object.append("status", ["code": 2, "message": .string(error)])
        }
        return .object(object)
    }

    private static func attribute(_ key: String, _ value: AttributeValue) -> JSONValue {
        let typed: JSONValue = switch value {
        case .string(let s): ["stringValue": .string(s)]
        case .int(let i): ["intValue": .string(String(i))]
        case .bool(let b): ["boolValue": .bool(b)]
        case .double(let d):
            // JSON has no NaN or infinities; the protobuf JSON mapping spells them as strings.
            if d.isNaN {
                ["doubleValue": "NaN"]
            } else if d.isInfinite {
                ["doubleValue": .string(d < 0 ? "-Infinity" : "Infinity")]
            } else {
                ["doubleValue": .number(String(d))]
            }
        }
        return ["key": .string(key), "value": typed]
    }

    /// `count` random bytes from the system CSPRNG, never all zero.
    static func randomID(_ count: Int) -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        var out: [UInt8] = []
        out.reserveCapacity(count)
        repeat {
            out.removeAll(keepingCapacity: true)
            while out.count < count {
                var word: UInt64 = rng.next()
                for _ in 0..<Swift.min(8, count - out.count) {
                    out.append(UInt8(truncatingIfNeeded: word))
                    word >>= 8
                }
            }
        } while !out.contains(where: { $0 != 0 })
        return out
    }

    /// Wall-clock time in nanoseconds since the Unix epoch (OTLP timestamps).
    static func nowUnixNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

/// One operation in a trace. Attributes and status may be set from any task until `end()`,
/// which queues the span once; later calls to `end()` and setters are no-ops.
final class Span: Sendable {
    /// This span's own ids (sampled) and the trace's `tracestate`: the parent to propagate.
    let context: TraceContext
    let name: String
    let kind: SpanKind
    let parentSpanID: [UInt8]?
    let startUnixNanos: UInt64
    private let tracer: Tracer

    private struct State {
        var attributes: [(String, AttributeValue)] = []
        var error: String?
        var ended = false
    }

    private let state = Mutex(State())

    init(tracer: Tracer, name: String, kind: SpanKind, context: TraceContext, parentSpanID: [UInt8]?) {
        self.tracer = tracer
        self.name = name
        self.kind = kind
        self.context = context
        self.parentSpanID = parentSpanID
        self.startUnixNanos = Tracer.nowUnixNanos()
    }

    /// Sets (or replaces) attribute `key`.
    func setAttribute(_ key: String, _ value: AttributeValue) {
        state.withLock { state in
            guard !state.ended else { return }
            Self.set(key, value, in: &state.attributes)
        }
    }

    /// Marks the span failed: status ERROR with `type` as its message, and attribute `error.type`.
    func setError(_ type: String) {
        state.withLock { state in
            guard !state.ended else { return }
            state.error = type
            Self.set("error.type", .string(type), in: &state.attributes)
        }
    }

    /// Marks the span failed unless an error is already recorded (the first, most specific
    /// reason wins over a later HTTP status).
    func setErrorIfUnset(_ type: String) {
        state.withLock { state in
            guard !state.ended, state.error == nil else { return }
            state.error = type
            Self.set("error.type", .string(type), in: &state.attributes)
        }
    }

    /// Ends the span and queues it for export (once).
    func end() {
        let end = Tracer.nowUnixNanos()
        let finished: SpanRecord? = state.withLock { state in
            guard !state.ended else { return nil }
            state.ended = true
            return SpanRecord(name: name, kind: kind, traceID: context.traceID, spanID: context.spanID, parentSpanID: parentSpanID,
                              startUnixNanos: startUnixNanos, endUnixNanos: Swift.max(end, startUnixNanos),
                              attributes: state.attributes, error: state.error)
        }
        if let finished { tracer.record(finished) }
    }

    /// A span in the same trace with this span as its parent.
    func child(_ name: String, kind: SpanKind) -> Span {
        let context = TraceContext(traceID: context.traceID, spanID: Tracer.randomID(8), sampled: true, traceState: context.traceState)
        return Span(tracer: tracer, name: name, kind: kind, context: context, parentSpanID: self.context.spanID)
    }

    private static func set(_ key: String, _ value: AttributeValue, in attributes: inout [(String, AttributeValue)]) {
        if let index = attributes.firstIndex(where: { $0.0 == key }) {
            attributes[index].1 = value
        } else {
            attributes.append((key, value))
        }
    }
}
