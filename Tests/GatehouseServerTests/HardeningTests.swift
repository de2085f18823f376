import Foundation
import GatehouseConfig
import MCPWire
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Synchronization
import Testing

@testable import GatehouseServer

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

/// The cost of `work(input(n))` grows about linearly: at size 4n it takes at most `factor` times
/// what it takes at size n (linear work takes 4×, quadratic 16×; 8× is about 2.8× per doubling). Runs of both sizes alternate and the
/// best of each is compared, so load from other tests running at the same time cancels out. A
/// shape check with a wide margin, not a speed target.
func growsLinearly<Input>(_ n: Int, factor: Double = 8, input: (Int) -> Input, _ work: (Input) -> Void) async -> (Bool, Double) {
    let small = input(n), large = input(4 * n)
    func time(_ value: Input) -> Double {
        let start = threadCPUSeconds()
        work(value)
        return threadCPUSeconds() - start
    }
    _ = time(small)
    var bestSmall = Double.infinity, bestLarge = Double.infinity
    for _ in 0..<7 {
        bestSmall = min(bestSmall, time(small))
        await Task.yield()  // never hold a thread of the shared pool for long: other tests' timers run on it
        bestLarge = min(bestLarge, time(large))
        await Task.yield()
    }
    let ratio = bestLarge / max(bestSmall, 1e-9)
    return (ratio <= factor, ratio)
}

@Suite("Redaction in linear time, and everywhere an answer can carry data")
struct RedactionHardeningTests {
    let all = Redactor(detectors: Set(Redactor.Detector.allCases), fields: ["ssn"])

    @Test("inputs that made the regular expressions backtrack cost linear time", arguments: [
        "a", "a@", "a.", "1", "1 ", "+1", "(1", "AB12", "a@b.", "1-",
    ])
    func adversarialShapes(_ unit: String) async {
        let (linear, ratio) = await growsLinearly(20_000, input: { String(repeating: unit, count: $0) }) { text in _ = all.redact(text) }
        #expect(linear, "redacting \(unit.debugDescription) × 4n cost \(ratio)× n")
    }

    @Test("40,000 letters without an @ are left alone at once (12.7 s before)")
    func longWordWithoutAt() {
        let text = String(repeating: "a", count: 40_000)
        let start = ContinuousClock.now
        let (out, count) = Redactor(detectors: [.email], fields: []).redact(text)
        #expect(out == text && count == 0)
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    @Test("many matches in one text are replaced in one pass")
    func manyMatches() async {
        let text = String(repeating: "x@example.com 078-05-1120 ", count: 5_000)
        let (out, count) = all.redact(text)
        #expect(count == 10_000)
        #expect(!out.contains("@example.com") && !out.contains("078-05"))
        let (linear, ratio) = await growsLinearly(1_000, input: { String(repeating: "x@example.com 078-05-1120 ", count: $0) }) { text in _ = all.redact(text) }
        #expect(linear, "\(ratio)")
    }

    @Test("email edges: subdomains, no TLD, dots, adjacent addresses, non-ASCII around")
    func emailEdges() {
        let email = Redactor(detectors: [.email], fields: [])
        #expect(email.redact("a@b.c").0 == "a@b.c")
        #expect(email.redact("a@b.com.x1").0 == "[REDACTED:email].x1")
        #expect(email.redact("é a.b@c.io é").0 == "é [REDACTED:email] é")
        #expect(email.redact("a@b.io,c@d.io").0 == "[REDACTED:email],[REDACTED:email]")
        #expect(email.redact("@b.io").0 == "@b.io")
        #expect(email.redact("x@@b.io").0 == "x@@b.io")
    }

    @Test("a card number written as a JSON number is redacted like the same digits in text")
    func cardAsNumber() throws {
        var count = 0
        let value = try JSONParser.parse(#"{"card":4111111111111111,"qty":12,"big":12345678901234567}"#)
        let out = all.redact(value, count: &count)
        #expect(out["card"] == "[REDACTED:card]")
        #expect(out["qty"] == .number("12") && out["big"] == .number("12345678901234567"))
        #expect(count == 1)
    }

    @Test("an email used as an object key is redacted; two such keys stay two entries")
    func emailKeys() throws {
        var count = 0
        let value = try JSONParser.parse(#"{"ann@example.com":1,"bob@example.com":2,"plain":3}"#)
        let out = all.redact(value, count: &count)
        let keys = out.objectValue?.keys ?? []
        #expect(keys.count == 3)
        #expect(!keys.contains { $0.contains("@example.com") })
        #expect(keys.filter { $0.hasPrefix("[REDACTED:email]") }.count == 2)
        #expect(count == 2)
    }

    @Test("JSON-RPC errors: message and data are redacted, the code stays")
    func errors() {
        var count = 0
        let error: JSONObject = ["code": -32000, "message": "no user ann@example.com", "data": ["ssn": "078-05-1120", "detail": "call +44 20 7946 0958"]]
        let out = all.redactError(error, count: &count)
        #expect(out["code"] == -32000)
        #expect(out["message"] == "no user [REDACTED:email]")
        #expect(out["data"]?["ssn"] == "[REDACTED]")
        #expect(out["data"]?["detail"] == "call [REDACTED:phone]")
        #expect(count == 3)
    }

    @Test("log and progress notifications are redacted, their tokens and _meta are not")
    func notifications() {
        var count = 0
        let log = JSONRPCMessage.notification(method: "notifications/message", params: ["level": "info", "data": ["user": "ann@example.com"]])
        #expect(all.redactMessage(log, count: &count).params?["data"]?["user"] == "[REDACTED:email]")
        let progress = JSONRPCMessage.notification(method: "notifications/progress",
                                                   params: ["progressToken": "a@b.io", "progress": 1, "message": "mailing ann@example.com", "_meta": ["x": "c@d.io"]])
        let out = all.redactMessage(progress, count: &count)
        #expect(out.params?["message"] == "mailing [REDACTED:email]")
        #expect(out.params?["progressToken"] == "a@b.io" && out.params?["_meta"]?["x"] == "c@d.io")
        let elicit = JSONRPCMessage.request(id: 1, method: "elicitation/create",
                                            params: ["message": "confirm ann@example.com", "requestedSchema": ["type": "object", "properties": ["ssn": ["type": "string"]]]])
        let asked = all.redactMessage(elicit, count: &count)
        #expect(asked.params?["message"] == "confirm [REDACTED:email]")
        #expect(asked.params?["requestedSchema"]?["properties"]?["ssn"]?["type"] == "string", "a schema is not data")
        #expect(count == 3)
    }
}

@Suite("Bounded metric labels, displayed URLs, media types, absolute-form targets")
struct BoundedInputTests {
    @Test("only MCP methods and listed tools become label values")
    func labels() {
        #expect(MetricLabels.method(MCPMethod("tools/call")) == "tools/call")
        #expect(MetricLabels.method(MCPMethod(String(repeating: "x", count: 4096))) == "other")
        #expect(MetricLabels.errorCode(-32601) == "-32601" && MetricLabels.errorCode(12345) == "other")
        #expect(MetricLabels.httpMethod("POST") == "POST" && MetricLabels.httpMethod("BREW") == "other")
        let known = KnownToolNames()
        #expect(known.label("add") == "other")
        known.learn([["name": "add"], ["name": "echo"]])
        #expect(known.label("add") == "add" && known.label("nope") == "other")
        known.learn((0..<(KnownToolNames.limit + 50)).map { ["name": .string("t\($0)")] })
        #expect(known.label("t\(KnownToolNames.limit + 10)") == "other", "the set is bounded")
    }

    @Test("metrics stay bounded when clients send thousands of distinct names")
    func metricsBounded() {
        let metrics = Metrics()
        for i in 0..<3_000 {
            metrics.increment("gatehouse_requests_total", ["/mcp", MetricLabels.method(MCPMethod("m\(i)-" + String(repeating: "x", count: 100))), "s", "", "error"])
        }
        let text = metrics.render()
        #expect(text.utf8.count < 20_000, "rendered \(text.utf8.count) bytes")
        #expect(text.contains("mcp_method_name=\"other\""))
    }

    @Test("URLs lose userinfo and query values wherever they are shown", arguments: [
        ("http://user:PW@host:8080/mcp?api_key=SECRET&x=1#f", "http://***@host:8080/mcp?api_key=<redacted>&x=<redacted>#f"),
        ("https://host/mcp", "https://host/mcp"),
        ("http://host?token=abc", "http://host?token=<redacted>"),
        ("http://a@b@host/p", "http://***@host/p"),
        ("not a url", "not a url"),
    ])
    func displayURL(_ input: String, _ expected: String) {
        #expect(DisplayURL.redacted(input) == expected)
    }

    @Test("the config dump shows no URL credentials")
    func configDump() {
        let dumped = JSONWriter.string(ConfigDump.json(["url": "http://u:PW@h/mcp?api_key=K"]))
        #expect(!dumped.contains("PW") && !dumped.contains("=K"), "\(dumped)")
    }

    @Test("Content-Type must be application/json, with or without parameters", arguments: [
        ("application/json", true), ("application/json; charset=utf-8", true), ("Application/JSON", true),
        ("application/json;charset=utf-8", true), ("application/jsonx", false), ("application/json-patch+json", false),
        ("text/plain", false), ("", false),
    ])
    func mediaType(_ value: String, _ accepted: Bool) {
        #expect(ASCII.isMediaType(value, "application/json") == accepted)
    }

    @Test("an absolute-form target names the authority the Host guard checks")
    func absoluteForm() {
        #expect(ConnectionDeadlineHandler.absoluteFormAuthority("http://evil.example/mcp") == "evil.example")
        #expect(ConnectionDeadlineHandler.absoluteFormAuthority("http://u:p@evil.example:81/mcp?x") == "evil.example:81")
        #expect(ConnectionDeadlineHandler.absoluteFormAuthority("/mcp") == nil)
        #expect(ConnectionDeadlineHandler.absoluteFormAuthority("*") == nil)
    }
}

@Suite("Connection deadlines on the plaintext front")
struct ConnectionDeadlineTests {
    let limits = ConnectionLimits(idleTimeout: .seconds(4), headerTimeout: .seconds(1), bodyTimeout: .seconds(2), maxConnections: 10)

    func channel() throws -> (EmbeddedChannel, EmbeddedEventLoop) {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let deadlines = ConnectionDeadlines(limits: limits)
        try channel.pipeline.syncOperations.addHandler(ConnectionReadActivity(deadlines))
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
        try channel.pipeline.syncOperations.addHandler(HTTPResponseEncoder())
        try channel.pipeline.syncOperations.addHandler(ConnectionDeadlineHandler(deadlines))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, loop)
    }

    @Test("a connection that sends nothing closes after the idle timeout")
    func idle() throws {
        let (channel, loop) = try channel()
        loop.advanceTime(by: .seconds(3))
        #expect(channel.isActive)
        loop.advanceTime(by: .seconds(3))
        #expect(!channel.isActive)
    }

    @Test("a head that trickles closes after the header timeout, long before the idle timeout")
    func slowHead() throws {
        let (channel, loop) = try channel()
        try channel.writeInbound(ByteBuffer(string: "POST /mcp HTTP/1.1\r\nHost: x\r\n"))
        loop.advanceTime(by: .milliseconds(1600))
        #expect(!channel.isActive)
    }

    @Test("a body that trickles closes after the body timeout")
    func slowBody() throws {
        let (channel, loop) = try channel()
        try channel.writeInbound(ByteBuffer(string: "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"))
        for _ in 0..<4 {
            try channel.writeInbound(ByteBuffer(string: "\"a"))
            loop.advanceTime(by: .milliseconds(500))
        }
        loop.advanceTime(by: .milliseconds(600))
        #expect(!channel.isActive)
    }

    @Test("a request being answered (an SSE stream) is never cut by these deadlines")
    func answering() throws {
        let (channel, loop) = try channel()
        try channel.writeInbound(ByteBuffer(string: "GET /mcp HTTP/1.1\r\nHost: x\r\n\r\n"))
        loop.advanceTime(by: .seconds(30))
        #expect(channel.isActive)
        try channel.writeOutbound(HTTPServerResponsePart.head(.init(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        loop.advanceTime(by: .seconds(5))
        #expect(!channel.isActive, "idle again after the answer")
    }

    @Test("the counter refuses connections over the limit and counts closes")
    func counter() {
        let counter = ConnectionCounter()
        #expect(counter.acquire(limit: 2) && counter.acquire(limit: 2))
        #expect(!counter.acquire(limit: 2))
        counter.release()
        #expect(counter.acquire(limit: 2))
        #expect(counter.open == 2)
    }
}

@Suite("Reloads run one at a time")
struct ReloadGateTests {
    @Test("callers wait in line without polling; never two inside at once")
    func oneAtATime() async {
        final class Inside: Sendable {
            let counts = Mutex((now: 0, most: 0, done: 0))
        }
        let gate = ReloadGate()
        let box = Inside()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    await gate.enter()
                    box.counts.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
                    try? await Task.sleep(for: .milliseconds(2))
                    box.counts.withLock { $0.now -= 1; $0.done += 1 }
                    gate.leave()
                }
            }
        }
        let result = box.counts.withLock { $0 }
        #expect(result.most == 1 && result.done == 20)
    }
}

@Suite("Findings of the second review")
struct SecondReviewTests {
    let all = Redactor(detectors: Set(Redactor.Detector.allCases), fields: [])

    @Test("many keys that redact to the same text are renamed in linear time")
    func sameRedactedKeys() async {
        func object(_ n: Int) -> JSONValue {
            .object(JSONObject((0..<n).map { (key: "u\($0)@x.io", value: JSONValue.int($0)) }))
        }
        let (linear, ratio) = await growsLinearly(1_000, input: object) { value in
            var count = 0
            _ = all.redact(value, count: &count)
        }
        #expect(linear, "4n keys cost \(ratio)× n")
        var count = 0
        let out = all.redact(object(5), count: &count)
        #expect(Set(out.objectValue?.keys ?? []).count == 5 && count == 5)
    }

    @Test("card numbers as signed, fractional or exponent numbers are redacted", arguments: [
        "-4111111111111111", "4111111111111111.0", "4.111111111111111e15", "4111111111111111",
    ])
    func cardNumberForms(_ text: String) {
        var count = 0
        #expect(all.redact(.number(text), count: &count) == "[REDACTED:card]")
    }

    @Test("numbers that are not cards stay", arguments: ["4111111111111112", "1.5", "-3", "1e300", "12345678901234.5"])
    func notCards(_ text: String) {
        var count = 0
        #expect(all.redact(.number(text), count: &count) == .number(text))
    }

    @Test("long or failed tool names never become labels")
    func toolNames() {
        let known = KnownToolNames()
        known.learn(String(repeating: "t", count: 4096))
        #expect(known.label(String(repeating: "t", count: 4096)) == "other")
    }

    @Test("hosts with userinfo, whitespace or lists match no allowed name", arguments: [
        "127.0.0.1:1@evil.example", "127.0.0.1\t", "127.0.0.1, evil.example", "localhost evil",
    ])
    func strictHosts(_ host: String) {
        let guards = RequestGuards(security: .init())
        #expect(guards.check(host: host, origin: nil) != nil)
    }

    @Test("a connection whose client stops reading the answer closes after the idle timeout")
    func unreadAnswer() throws {
        let deadlines = ConnectionDeadlines(limits: ConnectionLimits(idleTimeout: .seconds(2), headerTimeout: .seconds(1), bodyTimeout: .seconds(1), maxConnections: 1))
        deadlines.inFlight = 1
        deadlines.unwritableSince = .uptimeNanoseconds(1_000_000_000)
        #expect(!deadlines.expired(now: .uptimeNanoseconds(2_500_000_000)))
        #expect(deadlines.expired(now: .uptimeNanoseconds(3_500_000_000)))
        deadlines.unwritableSince = nil
        #expect(!deadlines.expired(now: .uptimeNanoseconds(9_000_000_000)), "an answer in progress that the client reads has no deadline")
    }
}
