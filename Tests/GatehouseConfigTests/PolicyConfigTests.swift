import Foundation
import Testing
@testable import GatehouseConfig

@Suite("spec.policy")
struct PolicyConfigTests {
    func load(_ policy: String) throws(ConfigError) -> GatewayConfig {
        let dir = FileManager.default.temporaryDirectory.path
        let text = """
            apiVersion: gatehouse.dev/v1alpha1
            kind: Gateway
            metadata: {name: g}
            spec:
              upstream: demo
              policy:
            \(policy)
            ---
            apiVersion: gatehouse.dev/v1alpha1
            kind: MCPServer
            metadata: {name: demo, labels: {team: data}, annotations: {owner: ann}}
            spec: {http: {url: "http://127.0.0.1:9001/mcp"}}
            """
        return try ConfigLoader().load(yaml: text, file: dir + "/gatehouse.yaml")
    }

    @Test("paths resolve against the config file; the pipeline parses; labels reach the server")
    func valid() throws {
        let config = try load("""
                rego: {paths: ["."], query: data.gatehouse.allow}
                deniedTools: error
                audit: {sink: file, path: audit.log, maskArguments: [secret]}
                pipeline:
                  trustedProxies: [127.0.0.1]
                  matchers:
                    - {name: office, clientIP: [10.0.0.0/8]}
                    - {name: ops, claim: {name: groups, values: [ops]}}
                    - {name: cli, userAgent: [curl]}
                    - {name: partner, header: {name: X-Partner, values: [acme]}}
                  expression: (office || ops) && !cli || partner
            """)
        let policy = try #require(config.policy)
        #expect(policy.regoPaths == [FileManager.default.temporaryDirectory.standardized.path])
        #expect(policy.query == "data.gatehouse.allow" && policy.deniedTools == .error)
        #expect(policy.audit.sink == .file(FileManager.default.temporaryDirectory.appendingPathComponent("audit.log").standardized.path))
        #expect(policy.pipeline?.matchers.map(\.name) == ["office", "ops", "cli", "partner"])
        #expect(policy.pipeline?.expression.evaluate(["office": true, "ops": false, "cli": false, "partner": false]) == true)
        #expect(config.servers[0].labels == ["team": "data"] && config.servers[0].annotations == ["owner": "ann"])
    }

    @Test("unknown matcher names, bad CIDRs and bad expressions are refused at startup")
    func invalid() {
        do {
            _ = try load("""
                    rego: {paths: [does-not-exist]}
                    pipeline:
                      matchers:
                        - {name: office, clientIP: [10.0.0.0/99]}
                        - {name: both, clientIP: [10.0.0.0/8], userAgent: [x]}
                      expression: office && partner
                """)
            Issue.record("expected errors")
        } catch {
            let text = error.description
            #expect(text.contains("policy path 'does-not-exist' does not exist"))
            #expect(text.contains("invalid CIDR '10.0.0.0/99'"))
            #expect(text.contains("has more than one of clientIP"))
            #expect(text.contains("names 'partner', which is not a matcher"))
        }
        do {
            _ = try load("""
                    pipeline:
                      matchers: [{name: a, clientIP: [10.0.0.0/8]}]
                      expression: a &&
                """)
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("invalid pipeline expression"))
        }
    }
}
