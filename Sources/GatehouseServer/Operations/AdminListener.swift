import Foundation
import GatehouseConfig
import GatehouseUpstream
import HTTPTypes
import Hummingbird
import Logging
import MCPWire
import NIOCore
import ServiceLifecycle

/// The admin listener (`spec.admin.listen`, 127.0.0.1:9091 by default when enabled): separate
/// from the MCP listener so metrics and controls are never exposed where clients connect.
/// With `spec.admin.token`, every route but `/healthz` and `/readyz` needs it as a bearer token.
///
///   GET  /healthz /readyz     liveness and readiness (no token)
///   GET  /metrics             Prometheus text format
///   GET  /status              gateway name, config and policy version, upstream readiness
///   GET  /config              the effective config as JSON, every secret redacted
///   GET  /config/version      {"version", "generation", "loadedAt"}
///   POST /reload              reload the config file (422 with the problems when refused)
///   POST /policy/reload       recompile the Rego policy only (409 when it does not compile)
///   GET  /upstreams           readiness, breaker, in-flight and endpoint health per server
///   GET  /sessions            open sessions per endpoint
///   GET  /tools               pinned tools of every server with spec.toolPinning, with status
///   GET  /tools/<server>/<tool>/diff      approved and current definition, and their diff
///   POST /tools/<server>/<tool>/approve   {"digest": "sha256:…", "by": "name"}; 409 when stale
///   POST /tools/<server>/<tool>/reject    the same, rejecting
enum AdminListener {
    static func application(admin: GatewayConfig.Admin, state: GatewayState, metrics: Metrics, reloader: ConfigReloader, pins: ToolPins?,
                            logger: Logger) -> some Service
    {
        let router = Router()
        router.add(middleware: AdminGuardMiddleware(admin: admin, security: state.snapshot.config.security))
        router.add(middleware: AdminTokenMiddleware(token: admin.token?.value))
        router.get("/healthz") { _, _ in json(["status": "ok"]) }
        router.get("/readyz") { _, _ in Gateway.readiness(state.snapshot) }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
        router.get("/status") { _, _ in
            let snapshot = state.snapshot
            let servers = JSONObject(snapshot.upstreams.map { (key: $0.config.name, value: JSONValue.string($0.isReady ? "ready" : "connecting")) })
            var status: JSONObject = ["gateway": .string(snapshot.config.name), "servers": .object(servers),
                                      "configVersion": .string(snapshot.version), "generation": .int(snapshot.generation)]
            if let version = snapshot.policy?.engine?.version { status["policyVersion"] = .string(version) }
            return json(.object(status))
        }
        router.get("/config") { _, _ in json(ConfigDump.json(state.snapshot.config)) }
        router.get("/config/version") { _, _ in json(versionObject(state.snapshot)) }
        router.post("/reload") { _, _ in
            switch await reloader.reload(trigger: "admin API") {
            case .reloaded(let version, let generation):
                return json(["version": .string(version), "generation": .int(generation), "changed": true])
            case .unchanged(let version, let generation):
                return json(["version": .string(version), "generation": .int(generation), "changed": false])
            case .refused(let problem):
                return json(["error": .string(problem), "version": .string(state.snapshot.version)], status: .unprocessableContent)
            }
        }
        router.post("/policy/reload") { _, _ in
            let policy = state.snapshot.policy
            guard let engine = policy?.engine else {
                return json(["error": "no Rego policy is configured", "policyVersion": .null], status: .conflict)
            }
            switch engine.reload() {
            case .success(let version):
                metrics.increment("gatehouse_policy_reloads_total", ["success"])
                return json(["policyVersion": .string(version)])
            case .failure(let error):
                metrics.increment("gatehouse_policy_reloads_total", ["refused"])
                return json(["error": .string("\(error)"), "policyVersion": .string(engine.version)], status: .conflict)
            }
        }
        router.get("/upstreams") { _, _ in
            var servers = JSONObject()
            for upstream in state.snapshot.upstreams {
                var entry: JSONObject = [
                    "ready": .bool(upstream.isReady),
                    "breaker": .string(upstream.breaker?.isOpen == true ? "open" : "closed"),
                    "inFlight": .int(upstream.slotsInUse),
                ]
                if let members = upstream.members {
                    entry["endpoints"] = .array(members.status().map { member in
                        .object(["url": .string(DisplayURL.redacted(member.url)), "healthy": .bool(member.healthy), "ejected": .bool(member.ejected),
                                 "inFlight": .int(member.inFlight), "requests": .int(Int(member.requests))])
                    })
                }
                servers[upstream.config.name] = .object(entry)
            }
            return json(["servers": .object(servers)])
        }
        router.get("/sessions") { _, _ in
            let endpoints = JSONObject(state.snapshot.endpoints.map { endpoint in
                (key: endpoint.endpoint.path, value: JSONValue.object(["sessions": .int(endpoint.sessions.count), "streams": .int(endpoint.openStreams)]))
            })
            return json(["endpoints": .object(endpoints)])
        }
        addToolRoutes(to: router, state: state, pins: pins)
        let listen = admin.listen
        if admin.token == nil {
            logger.warning("the admin listener has no token; anyone who can reach \(listen.bind):\(listen.port) can use it (set spec.admin.token)")
        }
        return Application(router: router, configuration: .init(address: .hostname(listen.bind, port: listen.port), serverName: "gatehouse-admin"),
                           onServerRunning: { channel in
                               logger.info("admin listening", metadata: ["url": "http://\(listen.bind):\(channel.localAddress?.port ?? listen.port)"])
                           }, logger: logger)
    }

    static func versionObject(_ snapshot: GatewaySnapshot) -> JSONValue {
        ["version": .string(snapshot.version), "generation": .int(snapshot.generation), "loadedAt": .string(Timestamp.rfc3339(snapshot.loadedAt))]
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: JSONWriter.bytes(value))))
    }
}

/// The MCP listener's Host and Origin guards, for the admin listener: without them a DNS
/// rebinding page could read `/config` and `/metrics` of a loopback admin listener without a
/// token and `POST /reload`. A request with an `Origin` is a browser's: refused unless that
/// origin is in `spec.admin.allowedOrigins`.
struct AdminGuardMiddleware<Context: RequestContext>: RouterMiddleware {
    let hosts: Set<String>
    let origins: Set<String>

    init(admin: GatewayConfig.Admin, security: GatewayConfig.Security) {
        var hosts = admin.allowedHosts.map { $0.lowercased() }
        if hosts.isEmpty {
            let bind = admin.listen.bind.lowercased()
            if ["0.0.0.0", "::", "[::]", "*"].contains(bind) {
                hosts = ["*"]
            } else {
                hosts = security.effectiveAllowedHosts.map { $0.lowercased() } + [bind.contains(":") && !bind.hasPrefix("[") ? "[\(bind)]" : bind]
            }
        }
        self.hosts = Set(hosts)
        self.origins = Set(admin.allowedOrigins.map(RequestGuards.normalizeOrigin))
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let host = request.head.authority
        if !hosts.contains("*"), !hosts.contains(RequestGuards.hostName(host ?? "")) {
            return Self.refuse("Host '\(host ?? "")' is not served by the admin listener; add it to spec.admin.allowedHosts if it is yours")
        }
        if let origin = request.headers[.origin], !origins.contains("*"), !origins.contains(RequestGuards.normalizeOrigin(origin)) {
            return Self.refuse("Origin '\(origin)' may not call the admin API; add it to spec.admin.allowedOrigins to let that page use it")
        }
        return try await next(request, context)
    }

    static func refuse(_ message: String) -> Response {
        Response(status: .forbidden, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(bytes: JSONWriter.bytes(["error": .string(message)]))))
    }
}

/// The admin token check: constant-time comparison; health and readiness stay open for probes.
struct AdminTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token, request.uri.path != "/healthz", request.uri.path != "/readyz" else { return try await next(request, context) }
        let presented = request.headers[.authorization].flatMap { value -> String? in
            value.lowercased().hasPrefix("bearer ") ? String(value.dropFirst(7)) : nil
        }
        guard let presented, Self.equal(Array(presented.utf8), Array(token.utf8)) else {
            var headers: HTTPFields = [.contentType: "application/json"]
            headers[.wwwAuthenticate] = #"Bearer realm="gatehouse-admin""#
            let message = presented == nil ? "the admin API needs `Authorization: Bearer <spec.admin.token>`" : "the admin token is not valid"
            return Response(status: .unauthorized, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: JSONWriter.bytes(["error": .string(message)]))))
        }
        return try await next(request, context)
    }

    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}

/// The effective config as JSON for `GET /config`, by reflection so that a new setting shows up
/// without code here; every `Secret` becomes "<redacted>", and URLs lose userinfo and query values.
enum ConfigDump {
    static func json(_ value: Any) -> JSONValue {
        if value is Secret { return "<redacted>" }
        switch value {
        case let v as String: return .string(DisplayURL.redacted(v))  // credentials in URLs stay hidden
        case let v as Bool: return .bool(v)
        case let v as Int: return .int(v)
        case let v as Double: return .number(v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v))
        default: break
        }
        let mirror = Mirror(reflecting: value)
        switch mirror.displayStyle {
        case .optional:
            return mirror.children.first.map { json($0.value) } ?? .null
        case .collection, .set:
            return .array(mirror.children.map { json($0.value) })
        case .dictionary:
            var object = JSONObject()
            for child in mirror.children {
                let pair = Array(Mirror(reflecting: child.value).children)
                if pair.count == 2 { object["\(pair[0].value)"] = json(pair[1].value) }
            }
            return .object(object)
        case .enum:
            guard let payload = mirror.children.first else {
                if let raw = value as? any RawRepresentable { return json(raw.rawValue) }
                return .string("\(value)")
            }
            return .object([payload.label ?? "\(value)": json(payload.value)])
        case .struct, .class, .tuple:
            var object = JSONObject()
            for (index, child) in mirror.children.enumerated() { object[child.label.map { $0.hasPrefix(".") ? String($0.dropFirst()) : $0 } ?? "\(index)"] = json(child.value) }
            return .object(object)
        default:
            return .string("\(value)")
        }
    }
}
