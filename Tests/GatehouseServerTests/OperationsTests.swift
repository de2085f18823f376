import Foundation
import GatehouseConfig
import Testing

@testable import GatehouseServer
import GatehouseUpstream

@Suite struct RateLimiterTests {
    func limiter(_ limits: [GatewayConfig.RateLimit]) -> RateLimiter { RateLimiter(limits: limits) }

    @Test func burstThenRefill() {
        var limit = GatewayConfig.RateLimit(name: "calls", requestsPerSecond: 2, burst: 3)
        limit.key = [.identity, .tool]
        let limiter = limiter([limit])
        let t0 = ContinuousClock.now
        for _ in 0..<3 { #expect(limiter.take(identity: "a", client: nil, server: "s", tool: "echo", method: "tools/call", now: t0) == nil) }
        let refused = limiter.take(identity: "a", client: nil, server: "s", tool: "echo", method: "tools/call", now: t0)
        #expect(refused?.limit == "calls")
        #expect(abs((refused?.retryAfter ?? 0) - 0.5) < 0.01, "one token every 0.5 s")
        // Other keys have their own buckets.
        #expect(limiter.take(identity: "b", client: nil, server: "s", tool: "echo", method: "tools/call", now: t0) == nil)
        #expect(limiter.take(identity: "a", client: nil, server: "s", tool: "add", method: "tools/call", now: t0) == nil)
        // Methods not named by the limit are not limited.
        #expect(limiter.take(identity: "a", client: nil, server: "s", tool: nil, method: "tools/list", now: t0) == nil)
        // Refill.
        #expect(limiter.take(identity: "a", client: nil, server: "s", tool: "echo", method: "tools/call", now: t0 + .milliseconds(600)) == nil)
        #expect(limiter.take(identity: "a", client: nil, server: "s", tool: "echo", method: "tools/call", now: t0 + .milliseconds(700)) != nil)
    }

    @Test func aRefusalTakesNoTokenFromOtherLimits() {
        let wide = GatewayConfig.RateLimit(name: "wide", requestsPerSecond: 0.001, burst: 10)
        var narrow = GatewayConfig.RateLimit(name: "narrow", requestsPerSecond: 0.001, burst: 1)
        narrow.tools = ["delete_item"]
        let limiter = limiter([wide, narrow])
        let t0 = ContinuousClock.now
        #expect(limiter.take(identity: "a", client: nil, server: nil, tool: "delete_item", method: "tools/call", now: t0) == nil)
        #expect(limiter.take(identity: "a", client: nil, server: nil, tool: "delete_item", method: "tools/call", now: t0)?.limit == "narrow")
        // wide had 10; one was taken by the allowed call, none by the refused one.
        for _ in 0..<9 { #expect(limiter.take(identity: "a", client: nil, server: nil, tool: "echo", method: "tools/call", now: t0) == nil) }
        #expect(limiter.take(identity: "a", client: nil, server: nil, tool: "echo", method: "tools/call", now: t0)?.limit == "wide")
    }

    @Test func exactUnderConcurrency() async {
        let limiter = limiter([GatewayConfig.RateLimit(name: "l", requestsPerSecond: 0.0001, burst: 50)])
        let allowed = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<400 { group.addTask { limiter.take(identity: "a", client: nil, server: nil, tool: "x", method: "tools/call") == nil } }
            var n = 0
            for await ok in group where ok { n += 1 }
            return n
        }
        #expect(allowed == 50)
    }
}

@Suite struct MetricsTests {
    @Test func rendersCountersAndHistogramsInTheTextFormat() {
        let metrics = Metrics()
        metrics.increment("gatehouse_requests_total", ["/mcp", "tools/call", "demo", "echo", "ok"])
        metrics.increment("gatehouse_requests_total", ["/mcp", "tools/call", "demo", "echo", "ok"])
        metrics.observe("mcp_server_operation_duration_seconds", ["/mcp", "tools/call", "echo", ""], 0.003)
        metrics.increment("gatehouse_auth_failures_total", ["/mcp", "bad \"quote\""])
        metrics.addCollector { [(name: "gatehouse_upstream_ready", labels: ["demo"], value: 1)] }
        let text = metrics.render()
        #expect(text.contains("# TYPE gatehouse_requests_total counter"))
        #expect(text.contains(#"gatehouse_requests_total{endpoint="/mcp",mcp_method_name="tools/call",server="demo",gen_ai_tool_name="echo",outcome="ok"} 2"#))
        #expect(text.contains(#"mcp_server_operation_duration_seconds_bucket{endpoint="/mcp",mcp_method_name="tools/call",gen_ai_tool_name="echo",error_type="",le="0.0025"} 0"#))
        #expect(text.contains(#"mcp_server_operation_duration_seconds_bucket{endpoint="/mcp",mcp_method_name="tools/call",gen_ai_tool_name="echo",error_type="",le="0.005"} 1"#))
        #expect(text.contains(#"le="+Inf"} 1"#))
        #expect(text.contains(#"reason="bad \"quote\""} 1"#), "label values are escaped")
        #expect(text.contains(#"gatehouse_upstream_ready{server="demo"} 1"#))
    }
}

@Suite struct TimestampTests {
    @Test func rfc3339WithMilliseconds() {
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 1_795_323_793.303)) == "2026-11-22T05:03:13.303Z")
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
    }
}

@Suite struct CircuitBreakerTests {
    @Test func opensAfterConsecutiveFailuresThenProbes() {
        var breaker = CircuitBreakerState(failureThreshold: 3, openDuration: .seconds(10))
        let t0 = ContinuousClock.now
        breaker.record(success: false, now: t0)
        breaker.record(success: true, now: t0)  // a success resets the count
        for _ in 0..<2 { breaker.record(success: false, now: t0) }
        var allowed = breaker.allow(now: t0)
        #expect(allowed && !breaker.isOpen)
        breaker.record(success: false, now: t0)
        allowed = breaker.allow(now: t0 + .seconds(9))
        #expect(breaker.isOpen && !allowed, "open: fail fast")
        allowed = breaker.allow(now: t0 + .seconds(10))
        #expect(allowed, "after the open time one probe goes through")
        allowed = breaker.allow(now: t0 + .seconds(10))
        #expect(!allowed, "only one probe at a time")
        breaker.record(success: false, now: t0 + .seconds(11))
        allowed = breaker.allow(now: t0 + .seconds(12))
        #expect(breaker.isOpen && !allowed, "a failed probe opens it again")
        allowed = breaker.allow(now: t0 + .seconds(21))
        #expect(allowed)
        breaker.record(success: true, now: t0 + .seconds(21))
        allowed = breaker.allow(now: t0 + .seconds(21))
        #expect(breaker.phase == .closed(failures: 0) && allowed)
    }
}
