import Foundation
import GatehouseConfig
import MCPWire
import Testing

@testable import GatehouseServer
@testable import GatehouseUpstream

@Suite struct UpstreamMembersTests {
    let urls = ["http://a/mcp", "http://b/mcp", "http://c/mcp"]

    @Test func roundRobinVisitsEveryMember() {
        let members = UpstreamMembers(urls: urls)
        var first: [Int] = []
        for _ in 0..<6 { first.append(members.candidates()[0]) }
        #expect(first == [0, 1, 2, 0, 1, 2])
        #expect(Set(members.candidates()) == [0, 1, 2], "the others follow as fail-over candidates")
    }

    @Test func leastRequestsPrefersTheIdleMember() {
        let members = UpstreamMembers(urls: urls, balance: .leastRequests)
        members.begin(0)
        members.begin(0)
        members.begin(1)
        #expect(members.candidates()[0] == 2)
        members.end(0, .success)
        members.end(0, .success)
        members.begin(2)
        members.begin(2)
        #expect(members.candidates()[0] == 0)
    }

    @Test func consecutiveFailuresEjectForAWhile() {
        var outlier = ServerConfig.OutlierDetection()
        outlier.consecutiveFailures = 2
        outlier.ejectionSeconds = 10
        let members = UpstreamMembers(urls: urls, outlier: outlier)
        let t0 = ContinuousClock.now
        members.begin(1)
        members.end(1, .failure, now: t0)
        members.begin(1)
        members.end(1, .success, now: t0)  // a success resets the run
        members.begin(1)
        members.end(1, .failure, now: t0)
        #expect(!members.status(now: t0)[1].ejected)
        members.begin(1)
        members.end(1, .failure, now: t0)
        #expect(members.status(now: t0)[1].ejected)
        for _ in 0..<6 { #expect(members.candidates(now: t0)[0] != 1) }
        #expect(members.candidates(now: t0).last == 1, "still a last resort")
        #expect(!members.status(now: t0 + .seconds(11))[1].ejected, "back after ejectionSeconds")
    }

    @Test func activeChecksUseThresholds() {
        var check = ServerConfig.HealthCheck()
        check.unhealthyThreshold = 2
        check.healthyThreshold = 2
        let members = UpstreamMembers(urls: urls, check: check)
        #expect(members.recordCheck(0, passed: false) == nil)
        #expect(members.recordCheck(0, passed: false) == false, "unhealthy after two failures")
        for _ in 0..<4 { #expect(members.candidates()[0] != 0) }
        #expect(members.recordCheck(0, passed: true) == nil)
        #expect(members.recordCheck(0, passed: true) == true, "healthy after two passes")
    }

    @Test func everyMemberDownMeansEveryMemberIsACandidate() {
        let members = UpstreamMembers(urls: urls)
        for i in 0..<3 { members.recordCheck(i, passed: false) }
        #expect(Set(members.candidates()) == [0, 1, 2])
    }
}

@Suite struct ConfigDumpTests {
    @Test func secretsAreRedactedAndSettingsShown() throws {
        var http = ServerConfig.HTTP(url: "http://127.0.0.1:9001/mcp", headers: [("Authorization", Secret("Bearer very-secret-value"))])
        http.balance = .leastRequests
        var config = GatewayConfig(name: "g", servers: [ServerConfig(name: "demo", transport: .http(http))],
                                   endpoints: [.init(path: "/mcp", servers: ["demo"])])
        config.admin = GatewayConfig.Admin(listen: .init(), token: Secret("admin-token-0123456789"))
        config.storage = .postgres(url: Secret("postgres://u:password@db/gh"))
        let text = JSONWriter.string(ConfigDump.json(config))
        #expect(!text.contains("very-secret-value"))
        #expect(!text.contains("admin-token"))
        #expect(!text.contains("password"))
        #expect(text.contains("<redacted>"))
        #expect(text.contains("\"least-requests\""))
        #expect(text.contains("\"demo\""))
        #expect(text.contains("\"urls\":[\"http://127.0.0.1:9001/mcp\"]"))
    }
}

@Suite struct RequestIDTests {
    @Test func plainIDsAreKeptOthersReplaced() {
        #expect(RequestID.accept("abc-123_x.y") == "abc-123_x.y")
        for hostile in ["a\nb", "quote\"", String(repeating: "a", count: 65), "", "spa ce"] {
            let id = RequestID.accept(hostile)
            #expect(id != hostile)
            #expect(id.count == 16 && id.allSatisfy(\.isHexDigit))
        }
        #expect(RequestID.accept(nil).count == 16)
    }

    @Test func generatedIDsAreDistinctLowercaseHex() {
        let ids = (0..<10_000).map { _ in RequestID.accept(nil) }
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) } })
    }
}

@Suite struct RateLimitOverrideTests {
    @Test func aDecisionChangesTheNumbersOfANamedLimit() throws {
        let decision = PolicyEngine.interpret(.object([
            .string("allow"): .bool(true),
            .string("rateLimits"): .object([
                .string("calls"): .object([.string("requestsPerSecond"): .number(.int(100)), .string("burst"): .number(.int(5))]),
                .string("broken"): .object([.string("requestsPerSecond"): .string("fast")]),
            ]),
        ]))
        #expect(decision.rateLimits["calls"] == RateLimiter.Override(requestsPerSecond: 100, burst: 5))
        #expect(decision.rateLimits["broken"] == nil, "a malformed override is ignored; the configured numbers apply")

        let limiter = RateLimiter(limits: [GatewayConfig.RateLimit(name: "calls", requestsPerSecond: 0.001, burst: 1)])
        let t0 = ContinuousClock.now
        func take(_ overrides: [String: RateLimiter.Override]) -> RateLimiter.Refusal? {
            let subject = RateLimiter.Subject(identity: "a", client: nil, server: nil, tool: "echo", method: "tools/call", overrides: overrides)
            return limiter.takeLocally(limiter.applicable(to: subject), sharedKeys: [], now: t0)
        }
        #expect(take([:]) == nil)
        #expect(take([:]) != nil, "the configured burst of 1 is spent")
        for _ in 0..<5 { #expect(take(decision.rateLimits) == nil, "the gold tier has its own bucket of 5") }
        #expect(take(decision.rateLimits)?.limit == "calls")
    }
}
