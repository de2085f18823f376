import Testing
@testable import GatehouseConfig

@Suite("Config loading and diagnostics")
struct ConfigLoaderTests {
    let loader = ConfigLoader(
        environment: { ["UPSTREAM_TOKEN": "s3cret"][$0] },
        readFile: { ["/secrets/key": "from-file\n"][$0] })

    let validYAML = """
        apiVersion: gatehouse.dev/v1alpha1
        kind: Gateway
        metadata:
          name: local
        spec:
          listen: {bind: 0.0.0.0, port: 9090}
          upstream: demo
          security:
            allowedOrigins: ["http://localhost:3000"]
          limits: {maxBodyBytes: 1024, maxJSONDepth: 10}
        ---
        apiVersion: gatehouse.dev/v1alpha1
        kind: MCPServer
        metadata:
          name: demo
        spec:
          http:
            url: http://127.0.0.1:9000/mcp
            headers:
              Authorization: {valueFrom: {env: UPSTREAM_TOKEN}}
              X-Key: {valueFrom: {file: /secrets/key}}
          timeouts: {requestSeconds: 5}
        """

    @Test("a valid file becomes a snapshot with defaults filled in")
    func validFile() throws {
        let config = try loader.load(yaml: validYAML, file: "g.yaml")
        #expect(config.name == "local")
        #expect(config.listen.bind == "0.0.0.0")
        #expect(config.listen.port == 9090)
        #expect(config.endpoints == [GatewayConfig.Endpoint(path: "/mcp", servers: ["demo"])])
        #expect(config.endpoints[0].prefix == .never)
        #expect(config.limits.maxBodyBytes == 1024)
        #expect(config.sessions.idleTimeoutSeconds == 1800)
        #expect(config.security.allowedOrigins == ["http://localhost:3000"])
        #expect(config.servers.first?.timeouts.requestSeconds == 5)
        guard case .http(let http)? = config.servers.first?.transport else {
            Issue.record("expected an http upstream")
            return
        }
        #expect(http.headers.map(\.name) == ["Authorization", "X-Key"])
        #expect(http.headers.map(\.value.value) == ["s3cret", "from-file"])
    }

    @Test("secrets never print their value")
    func secretRedaction() {
        #expect("\(Secret("s3cret"))" == "<redacted>")
    }

    @Test("every problem is reported at once with its position and a hint")
    func manyProblems() {
        let yaml = """
            apiVersion: gatehouse.dev/v1alpha1
            kind: Gateway
            metadata: {name: local}
            spec:
              listen: {port: 99999}
              upstraem: demo
              limits: {maxBodyBytes: "big"}
            ---
            apiVersion: gatehouse.dev/v1alpha1
            kind: MCPServer
            metadata: {name: demo}
            spec:
              stdio: {command: demo, env: {TOKEN: {valueFrom: {env: MISSING_VAR}}}}
            """
        do {
            _ = try loader.load(yaml: yaml, file: "bad.yaml")
            Issue.record("expected errors")
        } catch {
            let text = error.description
            #expect(text.contains("bad.yaml:5:"))
            #expect(text.contains("port must be between 0 and 65535"))
            #expect(text.contains("bad.yaml:6:3: error: unknown key 'upstraem' in spec"))
            #expect(text.contains("did you mean 'upstream'?"))
            #expect(text.contains("missing required key 'upstream' in spec"))
            #expect(text.contains("maxBodyBytes must be an integer"))
            #expect(text.contains("environment variable 'MISSING_VAR' is not set"))
            #expect(error.diagnostics.count >= 5)
        }
    }

    @Test("references to undefined servers name the ones that exist")
    func badReference() {
        let yaml = validYAML.replacingOccurrences(of: "upstream: demo", with: "upstream: nope")
        #expect(throws: ConfigError.self) { try loader.load(yaml: yaml, file: "g.yaml") }
        do { _ = try loader.load(yaml: yaml, file: "g.yaml") } catch {
            #expect(error.description.contains("MCPServer 'nope' is not defined"))
            #expect(error.description.contains("defined MCPServers: demo"))
        }
    }

    @Test("broken YAML, unknown kinds, wrong apiVersion and both transports are errors", arguments: [
        ("key: [unclosed", "invalid YAML"),
        ("apiVersion: gatehouse.dev/v1alpha1\nkind: Route\nmetadata: {name: a}\nspec: {}", "unknown kind 'Route'"),
        ("apiVersion: v9\nkind: Gateway\nmetadata: {name: a}\nspec: {upstream: x}", "unsupported apiVersion 'v9'"),
        ("apiVersion: gatehouse.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: a}\nspec: {http: {url: 'http://x/mcp'}, stdio: {command: y}}", "either `http` or `stdio`"),
        ("apiVersion: gatehouse.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: A_B}\nspec: {stdio: {command: y}}", "invalid name 'A_B'"),
        ("apiVersion: gatehouse.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: a}\nspec: {http: {url: 'ftp://x'}}", "invalid upstream url"),
    ])
    func errors(_ yaml: String, _ expected: String) {
        do {
            _ = try loader.load(yaml: yaml, file: "x.yaml")
            Issue.record("expected an error containing \(expected)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }
}

@Suite("Federated endpoints in config")
struct FederationConfigTests {
    let loader = ConfigLoader(environment: { ["KEY": String(repeating: "k", count: 40)][$0] }, readFile: { _ in nil })

    func servers(_ names: [String]) -> String {
        names.map { "---\napiVersion: gatehouse.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: \($0)}\nspec: {stdio: {command: demo}}\n" }.joined()
    }

    @Test("endpoints expose all servers by default, or the listed ones, with naming")
    func endpoints() throws {
        let yaml = """
            apiVersion: gatehouse.dev/v1alpha1
            kind: Gateway
            metadata: {name: f}
            spec:
              endpoints:
                - path: /mcp
                - path: /mcp/dev
                  servers: [b]
                  naming: {separator: "-", prefix: on-collision}
                  listTimeoutSeconds: 2
              sessions: {key: {valueFrom: {env: KEY}}}

            """ + servers(["a", "b", "c"])
        let config = try loader.load(yaml: yaml, file: "f.yaml")
        #expect(config.endpoints.map(\.path) == ["/mcp", "/mcp/dev"])
        #expect(config.endpoints[0].servers == ["a", "b", "c"])
        #expect(config.endpoints[0].prefix == .always)
        #expect(config.endpoints[1].servers == ["b"])
        #expect(config.endpoints[1].prefix == .onCollision)
        #expect(config.endpoints[1].naming.separator == "-")
        #expect(config.endpoints[1].listTimeoutSeconds == 2)
        #expect(config.servers.map(\.name) == ["a", "b", "c"])
        #expect(config.sessions.key?.value.count == 40)
    }

    @Test("endpoint mistakes are reported", arguments: [
        ("endpoints: [{path: /mcp, servers: [zz]}]", "MCPServer 'zz' is not defined"),
        ("endpoints: [{path: /mcp}, {path: /mcp}]", "two endpoints use the path '/mcp'"),
        ("endpoints: [{path: /healthz}]", "is reserved"),
        ("endpoints: [{path: /mcp, naming: {prefix: sometimes}}]", "unknown prefix mode 'sometimes'"),
        ("endpoints: [{path: /mcp, naming: {separator: '  '}}]", "invalid separator"),
        ("{upstream: a, endpoints: [{path: /x}]}", "cannot both be set"),
        ("{upstream: a, sessions: {key: short}}", "at least 32 bytes"),
    ])
    func mistakes(_ spec: String, _ expected: String) {
        let yaml = "apiVersion: gatehouse.dev/v1alpha1\nkind: Gateway\nmetadata: {name: f}\nspec:\n  " + spec.replacingOccurrences(of: "\n", with: "\n  ") + "\n" + servers(["a"])
        let fixed = spec.hasPrefix("{") ? "apiVersion: gatehouse.dev/v1alpha1\nkind: Gateway\nmetadata: {name: f}\nspec: \(spec)\n" + servers(["a"]) : yaml
        do {
            _ = try loader.load(yaml: fixed, file: "f.yaml")
            Issue.record("expected: \(expected)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }
}
