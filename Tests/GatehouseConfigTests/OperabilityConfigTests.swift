import Testing
@testable import GatehouseConfig

@Suite("issue 7 settings: endpoints of a server, health, admin token, shared limits, tracing, TLS")
struct OperabilityConfigTests {
    let loader = ConfigLoader(environment: ["PG": "postgres://u:p@127.0.0.1:5432/gh", "ADMIN": "0123456789abcdef0123"].get, readFile: { _ in nil })

    func yaml(gateway: String = "", server: String = "  http: {url: \"http://127.0.0.1:9001/mcp\"}") -> String {
        """
        apiVersion: gatehouse.dev/v1alpha1
        kind: Gateway
        metadata: {name: g}
        spec:
          upstream: demo
        \(gateway)
        ---
        apiVersion: gatehouse.dev/v1alpha1
        kind: MCPServer
        metadata: {name: demo}
        spec:
        \(server)
        """
    }

    func problems(_ text: String) -> String {
        do {
            _ = try loader.load(yaml: text, file: "g.yaml")
            return ""
        } catch {
            return error.description
        }
    }

    @Test func severalEndpointsWithBalancingAndHealth() throws {
        let config = try loader.load(yaml: yaml(server: """
              http:
                urls: ["http://127.0.0.1:9001/mcp", "http://127.0.0.1:9002/mcp"]
                balance: least-requests
              healthCheck: {intervalSeconds: 2, path: /healthz, unhealthyThreshold: 3}
              outlierDetection: {consecutiveFailures: 4, ejectionSeconds: 15}
            """), file: "g.yaml")
        guard case .http(let http) = config.servers[0].transport else {
            Issue.record("not http")
            return
        }
        #expect(http.urls == ["http://127.0.0.1:9001/mcp", "http://127.0.0.1:9002/mcp"])
        #expect(http.balance == .leastRequests)
        #expect(config.servers[0].healthCheck?.path == "/healthz")
        #expect(config.servers[0].healthCheck?.unhealthyThreshold == 3)
        #expect(config.servers[0].outlierDetection?.consecutiveFailures == 4)
    }

    @Test func endpointMistakesAreNamed() {
        #expect(problems(yaml(server: "  http: {url: \"http://a/mcp\", urls: [\"http://b/mcp\"]}")).contains("both `url` and `urls`"))
        #expect(problems(yaml(server: "  http: {urls: []}")).contains("spec.http.urls is empty"))
        #expect(problems(yaml(server: "  http: {urls: [\"http://a/mcp\", \"http://a/mcp\"]}")).contains("same URL twice"))
        #expect(problems(yaml(server: "  http: {urls: [\"http://a/mcp\"], balance: random}")).contains("unknown balance mode 'random'"))
        #expect(problems(yaml(server: "  http: {urls: [\"ftp://a/mcp\"]}")).contains("invalid upstream url"))
        #expect(problems(yaml(server: "  http: {url: \"http://a/mcp\"}\n  healthCheck: {path: healthz}")).contains("must start with /"))
    }

    @Test func adminTokenRules() throws {
        let config = try loader.load(yaml: yaml(gateway: "  admin: {listen: {bind: 0.0.0.0}, token: {valueFrom: {env: ADMIN}}}"), file: "g.yaml")
        #expect(config.admin?.token?.value == "0123456789abcdef0123")
        #expect(config.admin?.listen.port == 9091)
        #expect(problems(yaml(gateway: "  admin: {listen: {bind: 0.0.0.0}}")).contains("without spec.admin.token"))
        #expect(problems(yaml(gateway: "  admin: {token: short}")).contains("too short"))
        #expect(problems(yaml(gateway: "  admin: {}")).isEmpty, "loopback without a token is allowed")
    }

    @Test func sharedLimitsNeedPostgres() throws {
        let limit = "  rateLimits: [{name: shared-calls, requestsPerSecond: 1, burst: 10, shared: true, leaseTokens: 2}]"
        #expect(problems(yaml(gateway: limit)).contains("needs spec.storage.postgres"))
        let config = try loader.load(yaml: yaml(gateway: limit + "\n  storage: {postgres: {url: {valueFrom: {env: PG}}}}"), file: "g.yaml")
        #expect(config.rateLimits[0].shared && config.rateLimits[0].leaseTokens == 2)
        #expect(config.needsStore)
        #expect(problems(yaml(gateway: "  rateLimits: [{name: l, requestsPerSecond: 1, burst: 2, leaseTokens: 5}]")).contains("larger than burst"))
    }

    @Test func tracing() throws {
        let config = try loader.load(yaml: yaml(gateway: "  tracing: {otlp: {endpoint: \"http://127.0.0.1:4318/\"}, sampleRatio: 0.25}"), file: "g.yaml")
        #expect(config.tracing?.otlpEndpoint == "http://127.0.0.1:4318")
        #expect(config.tracing?.sampleRatio == 0.25)
        #expect(problems(yaml(gateway: "  tracing: {sampleRatio: 1}")).contains("needs `otlp"))
        #expect(problems(yaml(gateway: "  tracing: {otlp: {endpoint: nope}}")).contains("invalid OTLP endpoint"))
    }

    @Test func tlsFilesMustBeReadable() {
        let text = yaml(gateway: "  listen: {tls: {certificateFile: /nonexistent/c.pem, keyFile: /nonexistent/k.pem, clientCertificates: required}}")
        let report = problems(text)
        #expect(report.contains("cannot read '/nonexistent/c.pem'"))
        #expect(report.contains("needs clientCAFile"))
    }
}
