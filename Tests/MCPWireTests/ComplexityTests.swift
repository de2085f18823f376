import Testing
@testable import MCPWire

#if canImport(Glibc)
import Glibc
#endif

/// CPU time of the calling thread: other processes and threads taking the CPU do not count, so
/// a busy machine does not distort the ratios below.
func threadCPUSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

/// The cost of `work(input(n))` grows about linearly: returns time(4n) / time(n) — linear work
/// gives ~4, quadratic ~16; tests accept up to 8 (about 2.8× per doubling). Runs of both sizes alternate and the best of each is compared, so load from
/// other tests running at the same time cancels out. A shape check, not a speed target.
func linearRatio<Input>(_ n: Int, input: (Int) -> Input, _ work: (Input) throws -> Void) async rethrows -> Double {
    let small = input(n), large = input(4 * n)
    func time(_ value: Input) throws -> Double {
        let start = threadCPUSeconds()
        try work(value)
        return threadCPUSeconds() - start
    }
    _ = try time(small)
    var bestSmall = Double.infinity, bestLarge = Double.infinity
    for _ in 0..<7 {
        bestSmall = min(bestSmall, try time(small))
        await Task.yield()  // never hold a thread of the shared pool for long: other tests' timers run on it
        bestLarge = min(bestLarge, try time(large))
        await Task.yield()
    }
    return bestLarge / max(bestSmall, 1e-9)
}

@Suite("Parsers and rewriters cost time linear in their input")
struct ComplexityTests {
    static func object(_ keys: Int) -> [UInt8] {
        var text = "{"
        for i in 0..<keys { text += (i == 0 ? "" : ",") + "\"k\(i)\":\(i)" }
        return Array((text + "}").utf8)
    }

    @Test("an object of 4n keys parses in about four times the time of n (it was quadratic)")
    func objectKeys() async throws {
        let ratio = try await linearRatio(5_000, input: Self.object) { bytes in _ = try JSONParser.parse(bytes) }
        #expect(ratio < 8, "4n keys cost \(ratio)× n keys")
    }

    @Test("repeated keys in a large object: the last value wins, the first position stays, lookups hash")
    func repeatedKeysInLargeObjects() throws {
        var text = "{"
        for i in 0..<100 { text += "\"k\(i)\":\(i)," }
        text += "\"k5\":\"again\"}"
        let document = try JSONParser.parseDocument(Array(text.utf8))
        let object = try #require(document.value.objectValue)
        #expect(object.count == 100)
        #expect(object["k5"] == "again")
        #expect(object.entries[5].key == "k5")
        #expect(!document.verbatim)
    }

    @Test("building a large object key by key is linear; removing keeps lookups right")
    func buildAndRemove() async {
        let ratio = await linearRatio(5_000, input: { $0 }) { n in
            var object = JSONObject()
            for i in 0..<n { object["k\(i)"] = .int(i) }
            _ = object["k\(n / 2)"]
        }
        #expect(ratio < 8, "\(ratio)")
        var object = JSONObject()
        for i in 0..<40 { object["k\(i)"] = .int(i) }
        object["k3"] = nil
        #expect(object["k3"] == nil && object["k4"] == .int(4) && object["k39"] == .int(39) && object.count == 39)
        object["k3"] = "back"
        #expect(object.entries.last?.key == "k3" && object["k3"] == "back")
        let literal: JSONObject = ["a": 1, "a": 2]  // a literal with a repeated key reads the first, like a scan
        #expect(literal["a"] == 1)
    }

    @Test("writing is linear in the value's size")
    func writer() async {
        let ratio = await linearRatio(5_000, input: { try! JSONParser.parse(Self.object($0)) }) { value in _ = JSONWriter.bytes(value) }
        #expect(ratio < 8, "\(ratio)")
    }

    @Test("SSE parsing is linear in the stream's size, whole or in small parts")
    func sse() async throws {
        func stream(_ events: Int) -> [UInt8] {
            Array(String(repeating: "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n", count: events).utf8)
        }
        let whole = try await linearRatio(1_500, input: stream) { bytes in
            var parser = SSEParser()
            _ = try parser.feed(bytes)
        }
        #expect(whole < 8, "\(whole)")
        func feed(_ bytes: [UInt8], inPartsOf size: Int) throws {
            var parser = SSEParser()
            var index = 0
            while index < bytes.count {
                _ = try parser.feed(bytes[index..<min(index + size, bytes.count)])
                index += size
            }
        }
        let parts = try await linearRatio(1_500, input: stream) { try feed($0, inPartsOf: 7) }
        #expect(parts < 8, "\(parts)")
        // One long data line arriving in small parts (a line buffer that rescans would be quadratic).
        let line = try await linearRatio(20_000, input: { Array(("data: " + String(repeating: "a", count: $0) + "\n\n").utf8) }) { try feed($0, inPartsOf: 64) }
        #expect(line < 8, "\(line)")
    }
}
