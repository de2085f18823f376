import Foundation
import GatehouseConfig
import GatehousePolicy
import Logging
import MCPWire
import Testing

@testable import GatehouseServer

@Suite struct RedactorTests {
    let all = Redactor(detectors: Set(Redactor.Detector.allCases), fields: ["ssn", "password"])

    @Test func emailsAndLuhnValidCardsAreRedacted() {
        let (text, count) = all.redact("mail bob.smith+x@example.co.uk, card 4111-1111-1111-1111 and 5500 0000 0000 0004")
        #expect(text == "mail [REDACTED:email], card [REDACTED:card] and [REDACTED:card]")
        #expect(count == 3)
    }

    @Test func numbersThatAreNotCardsPhonesOrIDsStay() {
        let text = "order 4111 1111 1111 1112 on 2026-11-22 at 1795323793, version 1.2.3, 42 items"
        #expect(all.redact(text).0 == text)
    }

    @Test func phonesAndNationalIDsAreRedacted() {
        #expect(all.redact("call +44 20 7946 0958 now").0 == "call [REDACTED:phone] now")
        #expect(all.redact("call (415) 555-2671").0 == "call [REDACTED:phone]")
        #expect(all.redact("SSN 078-05-1120").0 == "SSN [REDACTED:national_id]")
        #expect(all.redact("NINO AB123456C").0 == "NINO [REDACTED:national_id]")
    }

    @Test func namedFieldsAtAnyDepthAndStructuredContent() {
        let result: JSONValue = [
            "content": [["type": "text", "text": "reach me at a@b.io"]],
            "structuredContent": ["user": ["SSN": "078-05-1120", "name": "Ann", "cards": ["4111111111111111"]]],
            "_meta": ["note": "x@y.io stays: metadata is not content"],
        ]
        var count = 0
        let redacted = all.redactResult(result, count: &count)
        #expect(redacted["content"]?.arrayValue?.first?["text"] == "reach me at [REDACTED:email]")
        #expect(redacted["structuredContent"]?["user"]?["SSN"] == "[REDACTED]")
        #expect(redacted["structuredContent"]?["user"]?["name"] == "Ann")
        #expect(redacted["structuredContent"]?["user"]?["cards"]?.arrayValue?.first == "[REDACTED:card]")
        #expect(redacted["_meta"]?["note"] == "x@y.io stays: metadata is not content")
        #expect(count == 3)
    }

    @Test func onlyRequestedDetectorsRun() {
        let emailOnly = Redactor(detectors: [.email], fields: [])
        #expect(emailOnly.redact("a@b.io 4111 1111 1111 1111").0 == "[REDACTED:email] 4111 1111 1111 1111")
    }
}

@Suite struct PipelineTests {
    @Test func expressionsParseAndEvaluate() throws {
        let e = try PipelineExpression.parse("(ip-allowlist || partner_ips) && !blocked")
        #expect(Set(e.names) == ["ip-allowlist", "partner_ips", "blocked"])
        #expect(e.evaluate(["ip-allowlist": true, "partner_ips": false, "blocked": false]) == true)
        #expect(e.evaluate(["ip-allowlist": false, "partner_ips": true, "blocked": true]) == false)
        #expect(e.evaluate(["ip-allowlist": false, "partner_ips": false, "blocked": false]) == false)
        // A verdict that could not be computed cannot allow.
        #expect(e.evaluate(["partner_ips": false, "blocked": false]) == nil)
    }

    @Test(arguments: ["", "a &&", "(a || b", "a b", "a & b", "!", "a || || b"])
    func badExpressionsAreRefused(_ text: String) {
        #expect(throws: PipelineExpression.ParseError.self) { try PipelineExpression.parse(text) }
    }

    @Test func cidrs() throws {
        let v4 = try #require(CIDR("10.0.0.0/8"))
        #expect(v4.contains(CIDR.parseAddress("10.200.3.4")!))
        #expect(!v4.contains(CIDR.parseAddress("11.0.0.1")!))
        #expect(v4.contains(CIDR.parseAddress("::ffff:10.1.1.1")!), "IPv4-mapped addresses compare as IPv4")
        let v6 = try #require(CIDR("2001:db8::/32"))
        #expect(v6.contains(CIDR.parseAddress("2001:db8:1::5")!) && !v6.contains(CIDR.parseAddress("2001:db9::1")!))
        #expect(CIDR("192.0.2.7")?.prefix == 32)
        #expect(CIDR("10.0.0.0/33") == nil && CIDR("nope") == nil)
    }

    @Test func forwardedForIsBelievedOnlyFromTrustedProxies() {
        let trusted = [CIDR("127.0.0.1")!, CIDR("10.0.0.0/8")!]
        #expect(MatchPipeline.clientIP(peer: "127.0.0.1", forwardedFor: "203.0.113.9", trusted: trusted) == "203.0.113.9")
        // The client may prepend anything; the last untrusted hop counts.
        #expect(MatchPipeline.clientIP(peer: "127.0.0.1", forwardedFor: "1.2.3.4, 198.51.100.7, 10.1.1.1", trusted: trusted) == "198.51.100.7")
        #expect(MatchPipeline.clientIP(peer: "192.0.2.1", forwardedFor: "203.0.113.9", trusted: trusted) == "192.0.2.1")
        #expect(MatchPipeline.clientIP(peer: "127.0.0.1", forwardedFor: "203.0.113.9", trusted: []) == "127.0.0.1")
        #expect(MatchPipeline.clientIP(peer: "127.0.0.1", forwardedFor: "garbage", trusted: trusted) == "127.0.0.1")
    }
}

@Suite struct PolicyDecisionTests {
    @Test func decisionsAreInterpretedStrictly() {
        #expect(PolicyEngine.interpret(nil).allow == false, "undefined denies")
        #expect(PolicyEngine.interpret(.bool(true)).allow)
        #expect(PolicyEngine.interpret(.string("yes")).allow == false)
        #expect(PolicyEngine.interpret(Value.record([("allow", .string("true"))])).failed, "a non-boolean allow is a policy error")
        let rich = PolicyEngine.interpret(Value.record([
            ("allow", .bool(true)), ("reasons", .array([.string("ok")])),
            ("redact", Value.record([("detectors", .array([.string("email"), .string("unknown")])), ("fields", .array([.string("SSN")]))])),
            ("headers", Value.record([("response", Value.record([("X-Policy", .string("a")), ("Set-Cookie", .string("evil"))]))])),
        ]))
        #expect(rich.allow && rich.reasons == ["ok"])
        #expect(rich.redact.detectors == [.email] && rich.redact.fields == ["ssn"])
        #expect(rich.responseHeaders.map(\.0) == ["X-Policy"], "policies may only add X- headers")
    }

    @Test func compileErrorsAreReportedAndReloadKeepsTheOldPolicy() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-policy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("p.rego")
        try "package gatehouse\nimport rego.v1\ndecision := true".write(to: file, atomically: true, encoding: .utf8)
        var config = PolicyConfig()
        config.regoPaths = [dir.path]
        let engine = try PolicyEngine(config: config, logger: Logger(label: "test"))
        let first = engine.version
        #expect(engine.decide(.object([:])).0.allow)
        try "package gatehouse\ndecision := {{{".write(to: file, atomically: true, encoding: .utf8)
        if case .success = engine.reload() { Issue.record("a broken policy must be refused") }
        #expect(engine.version == first && engine.decide(.object([:])).0.allow, "the old policy keeps deciding")
        try "package gatehouse\nimport rego.v1\ndecision := x if { x := 1 / input.n; false }\ndecision := false if input.n != 0".write(to: file, atomically: true, encoding: .utf8)
        if case .failure(let error) = engine.reload() { Issue.record("a good policy must load: \(error)") }
        #expect(engine.version != first)
        let failing = engine.decide(Value.record([("n", .int(0))])).0
        #expect(!failing.allow)
    }
}
