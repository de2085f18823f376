import Foundation
import Yams

/// Reads a YAML file of Kubernetes-style documents into a `GatewayConfig`, collecting every
/// problem (with file:line:column and a hint) instead of stopping at the first.
///
/// Stages: YAML text → documents (Yams nodes with positions) → typed specs → cross-document
/// checks (references) → `GatewayConfig`. Each stage is a pure function of its input plus the
/// environment lookups for secrets.
public struct ConfigLoader: Sendable {
    public static let apiVersion = "gatehouse.dev/v1alpha1"
    public static let kinds = ["Gateway", "MCPServer"]

    /// Looks up environment variables (injectable for tests).
    public var environment: @Sendable (String) -> String?
    /// Reads secret files (injectable for tests).
    public var readFile: @Sendable (String) -> String?

    public init(
        environment: @escaping @Sendable (String) -> String? = { ProcessInfo.processInfo.environment[$0] },
        readFile: @escaping @Sendable (String) -> String? = { try? String(contentsOfFile: $0, encoding: .utf8) }
    ) {
        self.environment = environment
        self.readFile = readFile
    }

    public func load(path: String) throws(ConfigError) -> GatewayConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError([Diagnostic(file: path, line: 1, column: 1, message: "cannot read the config file",
                                          hint: "check that the path exists and is readable")])
        }
        return try load(yaml: text, file: path)
    }

    public func load(yaml text: String, file: String) throws(ConfigError) -> GatewayConfig {
        var reader = DocumentReader(file: file, loader: self)
        var nodes: [Node] = []
        do {
            let parser = try Parser(yaml: text)
            while let node = try parser.nextRoot() { nodes.append(node) }
        } catch let error as YamlError {
            throw ConfigError([reader.yamlDiagnostic(error)])
        } catch {
            throw ConfigError([Diagnostic(file: file, line: 1, column: 1, message: "invalid YAML: \(error)")])
        }
        return try reader.read(documents: nodes)
    }
}

/// Walks Yams nodes. Every mapping read through `Fields` reports keys it did not consume as
/// unknown, so typos are errors, not silently ignored settings.
struct DocumentReader {
    let file: String
    let loader: ConfigLoader
    var diagnostics: [Diagnostic] = []

    init(file: String, loader: ConfigLoader) {
        self.file = file
        self.loader = loader
    }

    mutating func report(_ node: Node?, _ message: String, hint: String? = nil) {
        let mark = node?.mark
        diagnostics.append(Diagnostic(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, message: message, hint: hint))
    }

    func yamlDiagnostic(_ error: YamlError) -> Diagnostic {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return Diagnostic(file: file, line: mark.line, column: mark.column, message: "invalid YAML: \(problem)",
                              hint: "check indentation and quoting near this position")
        default:
            return Diagnostic(file: file, line: 1, column: 1, message: "invalid YAML: \(error)")
        }
    }

    mutating func read(documents: [Node]) throws(ConfigError) -> GatewayConfig {
        var gateways: [(Node, GatewaySpec)] = []
        var servers: [String: (Node, ServerConfig)] = [:]
        var serverOrder: [String] = []
        if documents.isEmpty {
            diagnostics.append(Diagnostic(file: file, line: 1, column: 1, message: "the config file has no documents",
                                          hint: "add a `kind: Gateway` document and a `kind: MCPServer` document"))
        }
        for document in documents {
            guard var fields = Fields(document, path: "document", reader: &self) else { continue }
            let apiVersion = fields.string("apiVersion", required: true, reader: &self)
            if let apiVersion, apiVersion.value != ConfigLoader.apiVersion {
                report(apiVersion.node, "unsupported apiVersion '\(apiVersion.value)'", hint: "use apiVersion: \(ConfigLoader.apiVersion)")
            }
            let kind = fields.string("kind", required: true, reader: &self)
            var name: String?
            var labels: [String: String] = [:]
            var annotations: [String: String] = [:]
            if let metadataNode = fields.take("metadata") {
                if var metadata = Fields(metadataNode, path: "metadata", reader: &self) {
                    if let n = metadata.string("name", required: true, reader: &self) {
                        if Self.isValidName(n.value) {
                            name = n.value
                        } else {
                            report(n.node, "invalid name '\(n.value)'", hint: "use lowercase letters, digits and '-' (max 63 characters), starting with a letter")
                        }
                    }
                    if let node = metadata.take("labels") { labels = readStringMap(node, path: "metadata.labels") }
                    if let node = metadata.take("annotations") { annotations = readStringMap(node, path: "metadata.annotations") }
                    metadata.finish(reader: &self)
                }
            } else {
                report(document, "missing required key 'metadata'", hint: "add metadata: {name: ...}")
            }
            let specNode = fields.take("spec")
            if specNode == nil { report(document, "missing required key 'spec'") }
            fields.finish(reader: &self)
            guard let kind, let specNode else { continue }
            switch kind.value {
            case "Gateway":
                if let spec = readGateway(specNode) { gateways.append((document, spec.with(name: name ?? "gateway"))) }
            case "MCPServer":
                if var server = readServer(specNode, name: name ?? "server"), let name {
                    server.labels = labels
                    server.annotations = annotations
                    if servers[name] != nil {
                        report(document, "duplicate MCPServer '\(name)'", hint: "each MCPServer needs a unique metadata.name")
                    } else {
                        servers[name] = (document, server)
                        serverOrder.append(name)
                    }
                }
            default:
                report(kind.node, "unknown kind '\(kind.value)'", hint: "known kinds: \(ConfigLoader.kinds.joined(separator: ", "))")
            }
        }
        var result: GatewayConfig?
        if gateways.isEmpty, !documents.isEmpty {
            report(documents.first, "no `kind: Gateway` document", hint: "add one Gateway document naming its upstream")
        } else if gateways.count > 1 {
            report(gateways[1].0, "more than one `kind: Gateway` document", hint: "one config file describes one gateway")
        }
        if let (_, spec) = gateways.first {
            var used: [ServerConfig] = []
            var seenPaths: Set<String> = []
            for endpoint in spec.endpoints {
                if !seenPaths.insert(endpoint.path.value).inserted {
                    report(endpoint.path.node, "two endpoints use the path '\(endpoint.path.value)'", hint: "give each endpoint its own path")
                }
                for name in endpoint.servers {
                    guard let (_, server) = servers[name.value] else {
                        let known = servers.keys.sorted()
                        report(name.node, "MCPServer '\(name.value)' is not defined",
                               hint: known.isEmpty ? "add a `kind: MCPServer` document with metadata.name: \(name.value)"
                                    : "defined MCPServers: \(known.joined(separator: ", "))")
                        continue
                    }
                    if !used.contains(where: { $0.name == server.name }) { used.append(server) }
                }
            }
            // An endpoint without a server list exposes every server, in document order.
            let allNames = serverOrder.filter { servers[$0] != nil }
            var endpoints: [GatewayConfig.Endpoint] = []
            for endpoint in spec.endpoints {
                var built = GatewayConfig.Endpoint(path: endpoint.path.value, servers: endpoint.listed ? endpoint.servers.map(\.value) : allNames)
                built.naming = endpoint.naming
                built.listTimeoutSeconds = endpoint.listTimeoutSeconds
                built.auth = endpoint.auth ?? GatewayConfig.EndpointAuth(mode: spec.auth == nil ? .off : .required)
                for (override, node) in endpoint.tools where !built.servers.contains(override.server) {
                    report(node, "tool override for server '\(override.server)', which endpoint '\(endpoint.path.value)' does not expose",
                           hint: "servers here: \(built.servers.joined(separator: ", "))")
                }
                built.toolOverrides = endpoint.tools.map(\.value)
                built.onlyListedTools = endpoint.onlyListedTools
                if built.auth.mode == .required, spec.auth == nil {
                    report(endpoint.path.node, "the endpoint '\(endpoint.path.value)' requires auth but spec.auth is not set",
                           hint: "add spec.auth with issuers, or an authorizationServer, or apiKeys: true")
                }
                endpoints.append(built)
            }
            if spec.endpoints.contains(where: { !$0.listed }) {
                for name in allNames where !used.contains(where: { $0.name == name }) { used.append(servers[name]!.1) }
            }
            if spec.endpoints.isEmpty {
                report(gateways.first?.0, "the Gateway exposes no servers", hint: "set spec.upstream: NAME, or spec.endpoints: [{path: /mcp, servers: [...]}]")
            } else if endpoints.contains(where: { $0.servers.isEmpty }) {
                report(gateways.first?.0, "an endpoint has no servers", hint: "define at least one `kind: MCPServer` document")
            }
            // Document order, whatever order endpoints mention them in.
            let ordered = serverOrder.compactMap { name in used.first { $0.name == name } }
            result = spec.build(servers: ordered, endpoints: endpoints)
        }
        if !diagnostics.isEmpty || result == nil {
            if diagnostics.isEmpty {
                diagnostics.append(Diagnostic(file: file, line: 1, column: 1, message: "the config is incomplete"))
            }
            throw ConfigError(diagnostics.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
        }
        return result!
    }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("a"..."z").contains(first), name.count <= 63 else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }

    // MARK: Gateway

    struct EndpointSpec {
        var path: (value: String, node: Node)
        var servers: [(value: String, node: Node)] = []
        /// False when the endpoint did not list servers (it then exposes all of them).
        var listed = true
        var naming = GatewayConfig.Naming()
        var listTimeoutSeconds: Double = 5
        /// Nil: the default (required when spec.auth is set, else off).
        var auth: GatewayConfig.EndpointAuth?
        var tools: [(value: GatewayConfig.ToolOverride, node: Node)] = []
        var onlyListedTools = false
    }

    struct GatewaySpec {
        var name = "gateway"
        var listen = GatewayConfig.Listen()
        var security = GatewayConfig.Security()
        var limits = GatewayConfig.Limits()
        var sessions = GatewayConfig.Sessions()
        var shutdown = GatewayConfig.Shutdown()
        var endpoints: [EndpointSpec] = []
        var auth: Auth?
        var storage: Storage?
        var policy: PolicyConfig?
        var rateLimits: [GatewayConfig.RateLimit] = []
        var admin: GatewayConfig.Admin?
        var tracing: GatewayConfig.Tracing?

        func with(name: String) -> GatewaySpec {
            var copy = self
            copy.name = name
            return copy
        }

        func build(servers: [ServerConfig], endpoints: [GatewayConfig.Endpoint]) -> GatewayConfig {
            var config = GatewayConfig(name: name, servers: servers, endpoints: endpoints)
            config.listen = listen
            config.security = security
            config.limits = limits
            config.sessions = sessions
            config.shutdown = shutdown
            config.auth = auth
            config.policy = policy
            config.rateLimits = rateLimits
            config.admin = admin
            config.tracing = tracing
            if let storage { config.storage = storage }
            return config
        }
    }

    mutating func readGateway(_ node: Node) -> GatewaySpec? {
        guard var fields = Fields(node, path: "spec", reader: &self) else { return nil }
        var spec = GatewaySpec()
        if let listenNode = fields.take("listen"), var listen = Fields(listenNode, path: "spec.listen", reader: &self) {
            if let bind = listen.string("bind", reader: &self) { spec.listen.bind = bind.value }
            if let port = listen.int("port", range: 0...65535, reader: &self) { spec.listen.port = port }
            if let node = listen.take("tls"), var tls = Fields(node, path: "spec.listen.tls", reader: &self) {
                let certificate = tls.string("certificateFile", required: true, reader: &self)
                let key = tls.string("keyFile", required: true, reader: &self)
                let clientCA = tls.string("clientCAFile", reader: &self)
                for file in [certificate, key, clientCA].compactMap({ $0 }) where !FileManager.default.isReadableFile(atPath: file.value) {
                    report(file.node, "cannot read '\(file.value)'", hint: "give the path of a PEM file gatehouse can read")
                }
                if let certificate, let key {
                    var config = GatewayConfig.TLS(certificateFile: certificate.value, keyFile: key.value)
                    config.clientCAFile = clientCA?.value
                    if let mode = tls.string("clientCertificates", reader: &self) {
                        if let value = GatewayConfig.TLS.ClientCertificates(rawValue: mode.value) { config.clientCertificates = value } else {
                            report(mode.node, "unknown clientCertificates mode '\(mode.value)'", hint: "use optional or required (with clientCAFile)")
                        }
                        if clientCA == nil { report(mode.node, "spec.listen.tls.clientCertificates needs clientCAFile", hint: "the CA bundle that signs client certificates") }
                    }
                    if let http2 = tls.bool("http2", reader: &self) { config.http2 = http2 }
                    spec.listen.tls = config
                }
                tls.finish(reader: &self)
            }
            listen.finish(reader: &self)
        }
        let path = fields.string("path", reader: &self)
        if let path, !path.value.hasPrefix("/") { report(path.node, "spec.path must start with '/'") }
        let upstream = fields.string("upstream", reader: &self)
        let endpointsNode = fields.take("endpoints")
        if let upstream {
            if let endpointsNode {
                report(endpointsNode, "spec.upstream and spec.endpoints cannot both be set", hint: "use spec.upstream for one server, spec.endpoints for several")
            }
            spec.endpoints = [EndpointSpec(path: (path?.value ?? "/mcp", path?.node ?? upstream.node), servers: [(upstream.value, upstream.node)])]
        } else if let endpointsNode {
            if let path { report(path.node, "spec.path is for spec.upstream; with spec.endpoints give each endpoint its path") }
            spec.endpoints = readEndpoints(endpointsNode)
        } else {
            report(node, "missing required key 'upstream' in spec", hint: "name the MCPServer to front with spec.upstream, or list spec.endpoints")
        }
        if let securityNode = fields.take("security"), var security = Fields(securityNode, path: "spec.security", reader: &self) {
            if let origins = security.stringList("allowedOrigins", reader: &self) { spec.security.allowedOrigins = origins }
            if let hosts = security.stringList("allowedHosts", reader: &self) { spec.security.allowedHosts = hosts }
            security.finish(reader: &self)
        }
        if let limitsNode = fields.take("limits"), var limits = Fields(limitsNode, path: "spec.limits", reader: &self) {
            if let v = limits.int("maxBodyBytes", range: 1...(1 << 30), reader: &self) { spec.limits.maxBodyBytes = v }
            if let v = limits.int("maxJSONDepth", range: 2...1000, reader: &self) { spec.limits.maxJSONDepth = v }
            if let v = limits.int("maxConnections", range: 1...1_000_000, reader: &self) { spec.limits.maxConnections = v }
            if let v = limits.double("idleTimeoutSeconds", range: 0.1...86400, reader: &self) { spec.limits.idleTimeoutSeconds = v }
            if let v = limits.double("headerTimeoutSeconds", range: 0.1...3600, reader: &self) { spec.limits.headerTimeoutSeconds = v }
            if let v = limits.double("bodyTimeoutSeconds", range: 0.1...3600, reader: &self) { spec.limits.bodyTimeoutSeconds = v }
            limits.finish(reader: &self)
        }
        if let node = fields.take("sessions"), var sessions = Fields(node, path: "spec.sessions", reader: &self) {
            if let v = sessions.int("idleTimeoutSeconds", range: 1...(7 * 86400), reader: &self) { spec.sessions.idleTimeoutSeconds = v }
            if let v = sessions.int("maxSessions", range: 1...10_000_000, reader: &self) { spec.sessions.maxSessions = v }
            if let v = sessions.int("maxPerCaller", range: 1...10_000_000, reader: &self) { spec.sessions.maxPerCaller = v }
            if let keyNode = sessions.take("key") {
                if let secret = readSecret(keyNode, path: "spec.sessions.key") {
                    if secret.value.utf8.count < 32 {
                        report(keyNode, "spec.sessions.key must be at least 32 bytes", hint: "generate one with: openssl rand -base64 48")
                    } else {
                        spec.sessions.key = secret
                    }
                }
            }
            sessions.finish(reader: &self)
        }
        if let node = fields.take("auth") { spec.auth = readAuth(node) }
        if let node = fields.take("storage") { spec.storage = readStorage(node) }
        if let node = fields.take("policy") { spec.policy = readPolicy(node) }
        let rateLimitsNode = fields.take("rateLimits")
        if let node = rateLimitsNode { spec.rateLimits = readRateLimits(node) }
        if let node = fields.take("admin"), var admin = Fields(node, path: "spec.admin", reader: &self) {
            var listen = GatewayConfig.Listen()
            listen.port = 9091
            if let listenNode = admin.take("listen"), var fields = Fields(listenNode, path: "spec.admin.listen", reader: &self) {
                if let bind = fields.string("bind", reader: &self) { listen.bind = bind.value }
                if let port = fields.int("port", range: 0...65535, reader: &self) { listen.port = port }
                fields.finish(reader: &self)
            }
            let token = admin.take("token").flatMap { readSecret($0, path: "spec.admin.token") }
            if let token, token.value.utf8.count < 16 {
                report(node, "spec.admin.token is too short", hint: "use at least 16 random characters, e.g. from `openssl rand -hex 24`")
            }
            if token == nil, !GatewayConfig.Security.loopbackHosts.contains(listen.bind) {
                report(node, "spec.admin listens on \(listen.bind) without spec.admin.token",
                       hint: "set spec.admin.token (a bearer token for the admin API) or bind the admin listener to 127.0.0.1")
            }
            let allowedHosts = admin.stringList("allowedHosts", reader: &self)
            let allowedOrigins = admin.stringList("allowedOrigins", reader: &self)
            admin.finish(reader: &self)
            spec.admin = GatewayConfig.Admin(listen: listen, token: token)
            spec.admin?.allowedHosts = allowedHosts ?? []
            spec.admin?.allowedOrigins = allowedOrigins ?? []
        }
        if let node = fields.take("tracing"), var tracing = Fields(node, path: "spec.tracing", reader: &self) {
            if let otlpNode = tracing.take("otlp"), var otlp = Fields(otlpNode, path: "spec.tracing.otlp", reader: &self) {
                if let endpoint = otlp.string("endpoint", required: true, reader: &self) {
                    if let url = URL(string: endpoint.value), ["http", "https"].contains(url.scheme ?? ""), url.host != nil {
                        var config = GatewayConfig.Tracing(otlpEndpoint: endpoint.value.hasSuffix("/") ? String(endpoint.value.dropLast()) : endpoint.value)
                        if let headers = otlp.take("headers") { config.headers = readSecretMap(headers, path: "spec.tracing.otlp.headers") }
                        spec.tracing = config
                    } else {
                        report(endpoint.node, "invalid OTLP endpoint '\(endpoint.value)'", hint: "use the collector's OTLP/HTTP base URL, e.g. http://127.0.0.1:4318")
                    }
                }
                otlp.finish(reader: &self)
            } else {
                report(node, "spec.tracing needs `otlp: {endpoint: ...}`", hint: "e.g. otlp: {endpoint: http://127.0.0.1:4318}")
            }
            let serviceName = tracing.string("serviceName", reader: &self)?.value
            let ratio = tracing.double("sampleRatio", range: 0...1, reader: &self)
            spec.tracing?.serviceName = serviceName
            if let ratio { spec.tracing?.sampleRatio = ratio }
            tracing.finish(reader: &self)
        }
        if let node = fields.take("shutdown"), var shutdown = Fields(node, path: "spec.shutdown", reader: &self) {
            if let v = shutdown.int("gracePeriodSeconds", range: 0...3600, reader: &self) { spec.shutdown.gracePeriodSeconds = v }
            shutdown.finish(reader: &self)
        }
        fields.finish(reader: &self)
        if let node = rateLimitsNode, spec.rateLimits.contains(where: \.shared) {
            if case .postgres? = spec.storage {} else {
                report(node, "a rate limit with `shared: true` needs spec.storage.postgres", hint: "shared buckets live in PostgreSQL; set spec.storage.postgres.url or drop `shared`")
            }
        }
        return spec
    }

    mutating func readEndpoints(_ node: Node) -> [EndpointSpec] {
        guard case .sequence(let items) = node else {
            report(node, "spec.endpoints must be a list of {path, servers, naming}")
            return []
        }
        var result: [EndpointSpec] = []
        for item in items {
            guard var fields = Fields(item, path: "spec.endpoints[]", reader: &self) else { continue }
            guard let path = fields.string("path", required: true, reader: &self) else {
                fields.finish(reader: &self)
                continue
            }
            if !path.value.hasPrefix("/") { report(path.node, "an endpoint path must start with '/'") }
            if ["/healthz", "/readyz"].contains(path.value) || path.value.hasPrefix("/.well-known") {
                report(path.node, "the endpoint path '\(path.value)' is reserved")
            }
            var endpoint = EndpointSpec(path: (path.value, path.node))
            if let serversNode = fields.take("servers") {
                if case .sequence(let names) = serversNode {
                    for nameNode in names {
                        guard case .scalar(let scalar) = nameNode else {
                            report(nameNode, "spec.endpoints[].servers must list server names")
                            continue
                        }
                        if endpoint.servers.contains(where: { $0.value == scalar.string }) {
                            report(nameNode, "server '\(scalar.string)' is listed twice")
                        } else {
                            endpoint.servers.append((scalar.string, nameNode))
                        }
                    }
                } else {
                    report(serversNode, "spec.endpoints[].servers must be a list of MCPServer names")
                }
            } else {
                endpoint.listed = false
            }
            if let namingNode = fields.take("naming"), var naming = Fields(namingNode, path: "spec.endpoints[].naming", reader: &self) {
                if let separator = naming.string("separator", reader: &self) {
                    if separator.value.isEmpty || separator.value.count > 8
                        || !separator.value.unicodeScalars.allSatisfy({ "_-./:".unicodeScalars.contains($0) || CharacterSet.alphanumerics.contains($0) })
                    {
                        report(separator.node, "invalid separator '\(separator.value)'", hint: "use 1 to 8 of: letters, digits, _ - . / :")
                    } else {
                        endpoint.naming.separator = separator.value
                    }
                }
                if let prefix = naming.string("prefix", reader: &self) {
                    if let mode = GatewayConfig.Naming.Prefix(rawValue: prefix.value) {
                        endpoint.naming.prefix = mode
                    } else {
                        report(prefix.node, "unknown prefix mode '\(prefix.value)'",
                               hint: "use one of: \(GatewayConfig.Naming.Prefix.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                }
                naming.finish(reader: &self)
            }
            if let v = fields.double("listTimeoutSeconds", range: 0.01...600, reader: &self) { endpoint.listTimeoutSeconds = v }
            readToolView(&fields, into: &endpoint)
            if let authNode = fields.take("auth"), var auth = Fields(authNode, path: "spec.endpoints[].auth", reader: &self) {
                var built = GatewayConfig.EndpointAuth(mode: .required)
                if let mode = auth.string("mode", reader: &self) {
                    if let parsed = GatewayConfig.EndpointAuth.Mode(rawValue: mode.value) {
                        built.mode = parsed
                    } else {
                        report(mode.node, "unknown auth mode '\(mode.value)'", hint: "use required or off")
                    }
                }
                if let scopes = auth.stringList("scopes", reader: &self) { built.scopes = scopes }
                auth.finish(reader: &self)
                endpoint.auth = built
            }
            fields.finish(reader: &self)
            result.append(endpoint)
        }
        if result.isEmpty { report(node, "spec.endpoints is empty") }
        return result
    }

    /// `spec.endpoints[].tools` and `toolSelection`.
    mutating func readToolView(_ fields: inout Fields, into endpoint: inout EndpointSpec) {
        if let node = fields.take("tools") { endpoint.tools = readToolOverrides(node) }
        guard let selection = fields.string("toolSelection", reader: &self) else { return }
        switch selection.value {
        case "all": endpoint.onlyListedTools = false
        case "listed": endpoint.onlyListedTools = true
        default: report(selection.node, "unknown toolSelection '\(selection.value)'", hint: "use all (every tool, with the overrides in `tools`) or listed (only the tools in `tools`)")
        }
        if endpoint.onlyListedTools, endpoint.tools.filter({ !$0.value.hide }).isEmpty {
            report(selection.node, "toolSelection: listed exposes only the tools in `tools`, and none is listed", hint: "add {server, tool} entries to the endpoint's `tools`")
        }
    }

    /// `spec.endpoints[].tools`: renamed, re-described and hidden tools.
    mutating func readToolOverrides(_ node: Node) -> [(value: GatewayConfig.ToolOverride, node: Node)] {
        guard case .sequence(let items) = node else {
            report(node, "spec.endpoints[].tools must be a list of {server, tool, name, title, description, annotations, hide}")
            return []
        }
        var result: [(value: GatewayConfig.ToolOverride, node: Node)] = []
        var exposed: Set<String> = []
        for item in items {
            guard var fields = Fields(item, path: "spec.endpoints[].tools[]", reader: &self) else { continue }
            let server = fields.string("server", required: true, reader: &self)
            let tool = fields.string("tool", required: true, reader: &self)
            let name = fields.string("name", reader: &self)
            let title = fields.string("title", reader: &self)
            let description = fields.string("description", reader: &self)
            let hide = fields.bool("hide", reader: &self) ?? false
            var annotations: [(key: String, value: GatewayConfig.ToolOverride.AnnotationValue)] = []
            if let annotationsNode = fields.take("annotations") {
                if case .mapping(let mapping) = annotationsNode {
                    for (keyNode, valueNode) in mapping {
                        guard let key = keyNode.string else { continue }
                        if valueNode.null != nil {
                            annotations.append((key, .null))
                        } else if let bool = valueNode.bool {
                            annotations.append((key, .bool(bool)))
                        } else if case .scalar(let scalar) = valueNode {
                            annotations.append((key, .string(scalar.string)))
                        } else {
                            report(valueNode, "tool annotation '\(key)' must be true, false, a string or null")
                        }
                    }
                } else {
                    report(annotationsNode, "spec.endpoints[].tools[].annotations must be a mapping, e.g. {readOnlyHint: true}")
                }
            }
            fields.finish(reader: &self)
            guard let server, let tool else { continue }
            var override = GatewayConfig.ToolOverride(server: server.value, tool: tool.value)
            if let name {
                if !Self.isToolName(name.value) {
                    report(name.node, "invalid tool name '\(name.value)'", hint: "use 1 to 64 of: letters, digits, _ - .")
                } else if !exposed.insert(name.value).inserted {
                    report(name.node, "two tools of this endpoint are named '\(name.value)'")
                }
                if hide { report(name.node, "a hidden tool has no name to expose", hint: "drop `name` or `hide`") }
                override.name = name.value
            }
            if result.contains(where: { $0.value.server == server.value && $0.value.tool == tool.value }) {
                report(tool.node, "tool '\(tool.value)' of server '\(server.value)' has two entries", hint: "merge them into one")
            }
            override.title = title?.value
            override.description = description?.value
            override.annotations = annotations
            override.hide = hide
            result.append((override, item))
        }
        return result
    }

    /// Tool names clients accept everywhere (the 2025-11-25 rules, capped at 64 like aliases).
    static func isToolName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_-.".unicodeScalars.contains($0)) }
    }

    /// One secret value: a string or {valueFrom: {env|file}}.
    mutating func readSecret(_ node: Node, path: String) -> Secret? {
        let key = "value"
        let wrapper = Node.mapping(Node.Mapping([(Node(key), node)]))
        return readSecretMap(wrapper, path: path.replacingOccurrences(of: ".\(key)", with: "")).first?.value
    }

    // MARK: MCPServer

    mutating func readServer(_ node: Node, name: String) -> ServerConfig? {
        guard var fields = Fields(node, path: "spec", reader: &self) else { return nil }
        var transport: ServerConfig.Transport?
        let httpNode = fields.take("http")
        let stdioNode = fields.take("stdio")
        if httpNode != nil, stdioNode != nil {
            report(stdioNode, "an MCPServer has either `http` or `stdio`, not both")
        } else if httpNode == nil, stdioNode == nil {
            report(node, "an MCPServer needs `http: {url: ...}` or `stdio: {command: ...}`")
        }
        if let httpNode, var http = Fields(httpNode, path: "spec.http", reader: &self) {
            let single = http.string("url", reader: &self)
            let urlsNode = http.take("urls")
            var urls: [(value: String, node: Node)] = []
            if let single { urls.append(single) }
            if let urlsNode {
                if single != nil {
                    report(urlsNode, "spec.http has both `url` and `urls`", hint: "use `url` for one endpoint or `urls` for several, not both")
                    urls = []
                } else if case .sequence(let items) = urlsNode {
                    for item in items {
                        if case .scalar(let scalar) = item { urls.append((scalar.string, item)) } else { report(item, "spec.http.urls must contain only strings") }
                    }
                    if items.isEmpty { report(urlsNode, "spec.http.urls is empty", hint: "list at least one endpoint URL") }
                } else {
                    report(urlsNode, "spec.http.urls must be a list of URLs")
                }
            } else if single == nil {
                report(httpNode, "spec.http needs `url` (or `urls` for several endpoints)", hint: "e.g. url: http://127.0.0.1:9000/mcp")
            }
            var valid = true
            for url in urls {
                guard let parsed = URL(string: url.value), let scheme = parsed.scheme, ["http", "https"].contains(scheme), parsed.host != nil else {
                    report(url.node, "invalid upstream url '\(url.value)'", hint: "use an absolute http:// or https:// URL, e.g. http://127.0.0.1:9000/mcp")
                    valid = false
                    continue
                }
            }
            if Set(urls.map(\.value)).count != urls.count, let node = urlsNode {
                report(node, "spec.http.urls lists the same URL twice")
                valid = false
            }
            var config = ServerConfig.HTTP(url: urls.first?.value ?? "")
            config.urls = urls.map(\.value)
            if let balance = http.string("balance", reader: &self) {
                if let mode = ServerConfig.HTTP.Balance(rawValue: balance.value) {
                    config.balance = mode
                } else {
                    report(balance.node, "unknown balance mode '\(balance.value)'",
                           hint: "use one of: \(ServerConfig.HTTP.Balance.allCases.map(\.rawValue).joined(separator: ", "))")
                }
            }
            if let headersNode = http.take("headers") { config.headers = readSecretMap(headersNode, path: "spec.http.headers") }
            if let node = http.take("clientCredentials") { config.clientCredentials = readClientCredentials(node) }
            if let node = http.take("tls"), var tls = Fields(node, path: "spec.http.tls", reader: &self) {
                var upstreamTLS = ServerConfig.HTTP.UpstreamTLS()
                for key in ["caFile", "certificateFile", "keyFile"] {
                    guard let file = tls.string(key, reader: &self) else { continue }
                    if !FileManager.default.isReadableFile(atPath: file.value) {
                        report(file.node, "cannot read spec.http.tls.\(key) '\(file.value)'", hint: "give the path of a PEM file gatehouse can read")
                    }
                    switch key {
                    case "caFile": upstreamTLS.caFile = file.value
                    case "certificateFile": upstreamTLS.certificateFile = file.value
                    default: upstreamTLS.keyFile = file.value
                    }
                }
                if (upstreamTLS.certificateFile == nil) != (upstreamTLS.keyFile == nil) {
                    report(node, "spec.http.tls needs both certificateFile and keyFile for a client certificate")
                }
                tls.finish(reader: &self)
                config.tls = upstreamTLS
            }
            if valid, !urls.isEmpty { transport = .http(config) }
            http.finish(reader: &self)
        }
        if let stdioNode, var stdio = Fields(stdioNode, path: "spec.stdio", reader: &self) {
            if let command = stdio.string("command", required: true, reader: &self) {
                var config = ServerConfig.Stdio(command: command.value)
                if let args = stdio.stringList("args", reader: &self) { config.args = args }
                if let envNode = stdio.take("env") { config.env = readSecretMap(envNode, path: "spec.stdio.env") }
                if let dir = stdio.string("workingDirectory", reader: &self) { config.workingDirectory = dir.value }
                if let v = stdio.double("restartDelaySeconds", range: 0.01...3600, reader: &self) { config.restartDelaySeconds = v }
                if let v = stdio.double("maxRestartDelaySeconds", range: 0.01...86400, reader: &self) { config.maxRestartDelaySeconds = v }
                transport = .stdio(config)
            }
            stdio.finish(reader: &self)
        }
        var timeouts = ServerConfig.Timeouts()
        if let node = fields.take("timeouts"), var t = Fields(node, path: "spec.timeouts", reader: &self) {
            if let v = t.double("connectSeconds", range: 0.01...3600, reader: &self) { timeouts.connectSeconds = v }
            if let v = t.double("requestSeconds", range: 0.01...86400, reader: &self) { timeouts.requestSeconds = v }
            t.finish(reader: &self)
        }
        var resilience = ServerConfig.Resilience()
        if let node = fields.take("resilience"), var r = Fields(node, path: "spec.resilience", reader: &self) {
            if let v = r.int("retries", range: 0...10, reader: &self) { resilience.retries = v }
            if let v = r.double("retryBackoffSeconds", range: 0...60, reader: &self) { resilience.retryBackoffSeconds = v }
            if let v = r.bool("retryIdempotentTools", reader: &self) { resilience.retryIdempotentTools = v }
            if let breakerNode = r.take("circuitBreaker"), var b = Fields(breakerNode, path: "spec.resilience.circuitBreaker", reader: &self) {
                resilience.breakerFailures = b.int("failures", range: 1...1000, reader: &self) ?? 5
                if let v = b.double("openSeconds", range: 0.1...3600, reader: &self) { resilience.breakerOpenSeconds = v }
                b.finish(reader: &self)
            }
            r.finish(reader: &self)
        }
        let maxConcurrent = fields.int("maxConcurrentRequests", range: 1...100_000, reader: &self)
        var healthCheck: ServerConfig.HealthCheck?
        if let node = fields.take("healthCheck"), var h = Fields(node, path: "spec.healthCheck", reader: &self) {
            var check = ServerConfig.HealthCheck()
            if let v = h.double("intervalSeconds", range: 0.1...3600, reader: &self) { check.intervalSeconds = v }
            if let v = h.double("timeoutSeconds", range: 0.05...600, reader: &self) { check.timeoutSeconds = v }
            if let path = h.string("path", reader: &self) {
                if path.value.hasPrefix("/") { check.path = path.value } else { report(path.node, "spec.healthCheck.path must start with /", hint: "e.g. /healthz") }
            }
            if let v = h.int("unhealthyThreshold", range: 1...100, reader: &self) { check.unhealthyThreshold = v }
            if let v = h.int("healthyThreshold", range: 1...100, reader: &self) { check.healthyThreshold = v }
            h.finish(reader: &self)
            if stdioNode != nil { report(node, "spec.healthCheck applies to HTTP servers", hint: "a stdio server is restarted when its process exits") }
            healthCheck = check
        }
        var outlier: ServerConfig.OutlierDetection?
        if let node = fields.take("outlierDetection"), var o = Fields(node, path: "spec.outlierDetection", reader: &self) {
            var detection = ServerConfig.OutlierDetection()
            if let v = o.int("consecutiveFailures", range: 1...1000, reader: &self) { detection.consecutiveFailures = v }
            if let v = o.double("ejectionSeconds", range: 0.1...3600, reader: &self) { detection.ejectionSeconds = v }
            o.finish(reader: &self)
            outlier = detection
        }
        var pinning = ServerConfig.ToolPinning()
        if let node = fields.take("toolPinning") { pinning = readToolPinning(node) }
        fields.finish(reader: &self)
        guard let transport else { return nil }
        var server = ServerConfig(name: name, transport: transport)
        server.toolPinning = pinning
        server.timeouts = timeouts
        server.resilience = resilience
        server.maxConcurrentRequests = maxConcurrent
        server.healthCheck = healthCheck
        server.outlierDetection = outlier
        return server
    }

    /// `spec.toolPinning` of an MCPServer.
    mutating func readToolPinning(_ node: Node) -> ServerConfig.ToolPinning {
        var pinning = ServerConfig.ToolPinning()
        guard var fields = Fields(node, path: "spec.toolPinning", reader: &self) else { return pinning }
        func choice<T: RawRepresentable & CaseIterable>(_ key: String, in fields: inout Fields, reader: inout DocumentReader) -> T? where T.RawValue == String {
            guard let text = fields.string(key, reader: &reader) else { return nil }
            guard let value = T(rawValue: text.value) else {
                reader.report(text.node, "unknown spec.toolPinning.\(key) '\(text.value)'", hint: "use one of: \(T.allCases.map(\.rawValue).joined(separator: ", "))")
                return nil
            }
            return value
        }
        if let mode: ServerConfig.ToolPinning.Mode = choice("mode", in: &fields, reader: &self) { pinning.mode = mode }
        if let onNew: ServerConfig.ToolPinning.OnNewTool = choice("onNewTool", in: &fields, reader: &self) { pinning.onNewTool = onNew }
        if let onChange: ServerConfig.ToolPinning.OnChange = choice("onChange", in: &fields, reader: &self) { pinning.onChange = onChange }
        if let scanNode = fields.take("scan"), var scan = Fields(scanNode, path: "spec.toolPinning.scan", reader: &self) {
            if let block = scan.string("block", reader: &self) {
                if block.value == "none" {
                    pinning.blockSeverity = nil
                } else if let severity = ServerConfig.ToolPinning.Severity(rawValue: block.value) {
                    pinning.blockSeverity = severity
                } else {
                    report(block.node, "unknown spec.toolPinning.scan.block '\(block.value)'", hint: "use one of: low, medium, high, none")
                }
            }
            scan.finish(reader: &self)
        }
        fields.finish(reader: &self)
        return pinning
    }

    /// A map of names to plain strings (labels, annotations).
    mutating func readStringMap(_ node: Node, path: String) -> [String: String] {
        guard case .mapping(let mapping) = node else {
            report(node, "\(path) must be a mapping of names to strings")
            return [:]
        }
        var result: [String: String] = [:]
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string, case .scalar(let scalar) = valueNode else {
                report(valueNode, "\(path) values must be strings")
                continue
            }
            result[key] = scalar.string
        }
        return result
    }

    /// A map of names to values, where each value is a string or
    /// `{valueFrom: {env: NAME}}` / `{valueFrom: {file: PATH}}` for secrets.
    mutating func readSecretMap(_ node: Node, path: String) -> [(name: String, value: Secret)] {
        guard case .mapping(let mapping) = node else {
            report(node, "\(path) must be a mapping of names to values")
            return []
        }
        var result: [(name: String, value: Secret)] = []
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string else { continue }
            switch valueNode {
            case .scalar(let scalar):
                result.append((key, Secret(scalar.string)))
            case .mapping:
                guard var fields = Fields(valueNode, path: "\(path).\(key)", reader: &self) else { continue }
                guard let fromNode = fields.take("valueFrom") else {
                    report(valueNode, "\(path).\(key) must be a string or {valueFrom: {env: NAME}} / {valueFrom: {file: PATH}}")
                    fields.finish(reader: &self)
                    continue
                }
                fields.finish(reader: &self)
                guard var from = Fields(fromNode, path: "\(path).\(key).valueFrom", reader: &self) else { continue }
                let env = from.string("env", reader: &self)
                let file = from.string("file", reader: &self)
                from.finish(reader: &self)
                if let env {
                    if let value = loader.environment(env.value) {
                        result.append((key, Secret(value)))
                    } else {
                        report(env.node, "environment variable '\(env.value)' is not set", hint: "export \(env.value) before starting gatehouse")
                    }
                } else if let file {
                    if let value = loader.readFile(file.value) {
                        result.append((key, Secret(value.trimmingCharacters(in: .whitespacesAndNewlines))))
                    } else {
                        report(file.node, "cannot read secret file '\(file.value)'", hint: "check that the file exists and is readable by gatehouse")
                    }
                } else {
                    report(fromNode, "valueFrom needs `env` or `file`")
                }
            default:
                report(valueNode, "\(path).\(key) must be a string")
            }
        }
        return result
    }
}

/// The keys of one YAML mapping, consumed one by one; `finish` reports the rest as unknown.
struct Fields {
    let node: Node
    let path: String
    var remaining: [(key: String, keyNode: Node, value: Node)]
    var known: [String] = []

    init?(_ node: Node, path: String, reader: inout DocumentReader) {
        guard case .mapping(let mapping) = node else {
            reader.report(node, "\(path) must be a mapping (key: value pairs)")
            return nil
        }
        self.node = node
        self.path = path
        self.remaining = mapping.compactMap { pair in pair.key.string.map { (key: $0, keyNode: pair.key, value: pair.value) } }
    }

    mutating func take(_ key: String) -> Node? {
        known.append(key)
        guard let index = remaining.firstIndex(where: { $0.key == key }) else { return nil }
        return remaining.remove(at: index).value
    }

    mutating func finish(reader: inout DocumentReader) {
        for entry in remaining {
            let suggestion = known.first { $0.lowercased().hasPrefix(entry.key.lowercased()) && entry.key.count >= 3 }
                ?? known.min { editDistance($0, entry.key) < editDistance($1, entry.key) }
            let hint: String
            if let suggestion, editDistance(suggestion, entry.key) <= 3 || suggestion.lowercased().hasPrefix(entry.key.lowercased()) {
                hint = "did you mean '\(suggestion)'?"
            } else {
                hint = "known keys here: \(known.joined(separator: ", "))"
            }
            reader.report(entry.keyNode, "unknown key '\(entry.key)' in \(path)", hint: hint)
        }
        remaining = []
    }

    mutating func string(_ key: String, required: Bool = false, reader: inout DocumentReader) -> (value: String, node: Node)? {
        guard let value = take(key) else {
            if required { reader.report(node, "missing required key '\(key)' in \(path)") }
            return nil
        }
        guard case .scalar(let scalar) = value, value.null == nil else {
            reader.report(value, "\(path).\(key) must be a string")
            return nil
        }
        return (scalar.string, value)
    }

    mutating func int(_ key: String, range: ClosedRange<Int>, reader: inout DocumentReader) -> Int? {
        guard let value = take(key) else { return nil }
        guard let int = value.int else {
            reader.report(value, "\(path).\(key) must be an integer")
            return nil
        }
        guard range.contains(int) else {
            reader.report(value, "\(path).\(key) must be between \(range.lowerBound) and \(range.upperBound), got \(int)")
            return nil
        }
        return int
    }

    mutating func double(_ key: String, range: ClosedRange<Double>, reader: inout DocumentReader) -> Double? {
        guard let value = take(key) else { return nil }
        guard let number = value.float ?? value.int.map(Double.init) else {
            reader.report(value, "\(path).\(key) must be a number")
            return nil
        }
        guard range.contains(number) else {
            reader.report(value, "\(path).\(key) must be between \(range.lowerBound) and \(range.upperBound), got \(number)")
            return nil
        }
        return number
    }

    mutating func stringList(_ key: String, reader: inout DocumentReader) -> [String]? {
        guard let value = take(key) else { return nil }
        guard case .sequence(let sequence) = value else {
            reader.report(value, "\(path).\(key) must be a list of strings")
            return nil
        }
        var result: [String] = []
        for item in sequence {
            guard case .scalar(let scalar) = item else {
                reader.report(item, "\(path).\(key) must contain only strings")
                continue
            }
            result.append(scalar.string)
        }
        return result
    }
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.lowercased()), b = Array(b.lowercased())
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
