import GatehouseConfig
import Testing
@testable import GatehouseServer

@Suite("Host and Origin guards (DNS rebinding)")
struct RequestGuardsTests {
    @Test("by default only loopback hosts pass, any port")
    func defaultHosts() {
        let guards = RequestGuards(security: .init())
        #expect(guards.check(host: "127.0.0.1:8080", origin: nil) == nil)
        #expect(guards.check(host: "localhost", origin: nil) == nil)
        #expect(guards.check(host: "[::1]:8080", origin: nil) == nil)
        #expect(guards.check(host: "evil.example", origin: nil) == .host("evil.example"))
        #expect(guards.check(host: "evil.example:8080", origin: nil) == .host("evil.example:8080"))
        #expect(guards.check(host: nil, origin: nil) == .host(""))
    }

    @Test("an Origin must be listed, or be the gateway's own origin")
    func origins() {
        var security = GatewayConfig.Security()
        security.allowedOrigins = ["http://localhost:3000/"]
        let guards = RequestGuards(security: security)
        #expect(guards.check(host: "localhost:8080", origin: "http://localhost:3000") == nil)
        #expect(guards.check(host: "localhost:8080", origin: "http://LOCALHOST:3000") == nil)
        #expect(guards.check(host: "localhost:8080", origin: "http://localhost:8080") == nil)
        #expect(guards.check(host: "localhost:8080", origin: "https://evil.example") == .origin("https://evil.example"))
        #expect(guards.check(host: "localhost:8080", origin: "null") == .origin("null"))
    }

    @Test("configured hosts replace the loopback default")
    func configuredHosts() {
        var security = GatewayConfig.Security()
        security.allowedHosts = ["mcp.example.com"]
        let guards = RequestGuards(security: security)
        #expect(guards.check(host: "mcp.example.com:443", origin: nil) == nil)
        #expect(guards.check(host: "127.0.0.1", origin: nil) != nil)
    }
}

@Suite("Accept and Content-Type matching")
struct AcceptsTests {
    @Test("media types match case-insensitively, anywhere in the list")
    func accepts() {
        let both = Accepts("Application/JSON, TEXT/Event-Stream")
        #expect(both.json && both.sse)
        let json = Accepts("application/json;q=0.9")
        #expect(json.json && !json.sse)
        let wildcard = Accepts("*/*")
        #expect(wildcard.json && wildcard.sse)
        let textAny = Accepts("text/*")
        #expect(!textAny.json && textAny.sse)
        let none = Accepts("image/png")
        #expect(!none.json && !none.sse)
        let missing = Accepts(nil)
        #expect(missing.json && missing.sse)
        #expect(!Accepts("application/jso").json)  // shorter than the pattern
    }

    @Test("prefix matching is case-insensitive and anchored")
    func prefix() {
        #expect(ASCII.hasPrefix("Application/Json; charset=utf-8", "application/json"))
        #expect(!ASCII.hasPrefix("text/plain; application/json", "application/json"))
        #expect(!ASCII.hasPrefix("", "application/json"))
        #expect(ASCII.contains("x-é-TEXT/EVENT-STREAM", "text/event-stream"))
    }
}
