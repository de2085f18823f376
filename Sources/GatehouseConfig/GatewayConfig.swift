/// The runtime snapshot of a validated config: plain immutable values, no YAML left.
/// Every later source of configuration (admin API, xDS) must translate into this same type.
public struct GatewayConfig: Sendable, Equatable {
    public var name: String
    public var listen: Listen
    public var security: Security
    public var limits: Limits
    public var sessions: Sessions
    public var shutdown: Shutdown
    /// Every upstream server an endpoint uses, in document order.
    public var servers: [ServerConfig]
    /// The MCP endpoints (virtual servers), each exposing a set of upstream servers.
    public var endpoints: [Endpoint]

    public func server(named name: String) -> ServerConfig? { servers.first { $0.name == name } }

    /// One MCP endpoint: a path and the upstream servers it federates.
    public struct Endpoint: Sendable, Equatable {
        public var path: String
        /// Server names, in the order lists are merged.
        public var servers: [String]
        public var naming: Naming
        /// How long a list fan-out waits for each server before leaving it out.
        public var listTimeoutSeconds: Double = 5

        public init(path: String, servers: [String], naming: Naming = Naming()) {
            self.path = path
            self.servers = servers
            self.naming = naming
        }

        /// The effective prefix mode: explicit, or `always` with several servers and `never`
        /// with one (a single server's names pass through unchanged).
        public var prefix: Naming.Prefix { naming.prefix ?? (servers.count > 1 ? .always : .never) }
    }

    public struct Naming: Sendable, Equatable {
        public enum Prefix: String, Sendable, Equatable, CaseIterable {
            case always
            case never
            case onCollision = "on-collision"
        }

        public var separator: String = "__"
        public var prefix: Prefix?
        public init() {}
    }

    public struct Listen: Sendable, Equatable {
        public var bind: String = "127.0.0.1"
        public var port: Int = 8080
        public init() {}
    }

    public struct Security: Sendable, Equatable {
        /// Origins allowed to call the gateway. A request with an `Origin` header not listed is
        /// refused with 403 (DNS rebinding defence); requests without `Origin` pass.
        public var allowedOrigins: [String] = []
        /// Host names (without port) allowed in the `Host` header. Empty means the loopback
        /// names `localhost`, `127.0.0.1` and `[::1]`, the safe default for a local gateway.
        public var allowedHosts: [String] = []
        public init() {}

        public static let loopbackHosts = ["localhost", "127.0.0.1", "[::1]", "::1"]
        public var effectiveAllowedHosts: [String] { allowedHosts.isEmpty ? Self.loopbackHosts : allowedHosts }
    }

    public struct Limits: Sendable, Equatable {
        public var maxBodyBytes: Int = 4 << 20
        public var maxJSONDepth: Int = 64
        public init() {}
    }

    public struct Sessions: Sendable, Equatable {
        public var idleTimeoutSeconds: Int = 1800
        public var maxSessions: Int = 10_000
        /// Key material for sealing session ids, so replicas sharing it serve each other's
        /// sessions. Nil: a random key per process (sessions then live on one replica).
        public var key: Secret?
        public init() {}
    }

    public struct Shutdown: Sendable, Equatable {
        public var gracePeriodSeconds: Int = 10
        public init() {}
    }

    public init(name: String, servers: [ServerConfig], endpoints: [Endpoint]) {
        self.name = name
        self.listen = Listen()
        self.security = Security()
        self.limits = Limits()
        self.sessions = Sessions()
        self.shutdown = Shutdown()
        self.servers = servers
        self.endpoints = endpoints
    }
}

/// One upstream MCP server (`kind: MCPServer`).
public struct ServerConfig: Sendable, Equatable {
    public var name: String
    public var transport: Transport
    public var timeouts: Timeouts

    public enum Transport: Sendable, Equatable {
        case http(HTTP)
        case stdio(Stdio)
    }

    public struct HTTP: Sendable, Equatable {
        public var url: String
        /// Extra headers sent upstream (credentials for the upstream, never the client's).
        public var headers: [(name: String, value: Secret)]

        public init(url: String, headers: [(name: String, value: Secret)] = []) {
            self.url = url
            self.headers = headers
        }

        public static func == (lhs: HTTP, rhs: HTTP) -> Bool {
            lhs.url == rhs.url && lhs.headers.map(\.name) == rhs.headers.map(\.name)
                && lhs.headers.map(\.value) == rhs.headers.map(\.value)
        }
    }

    public struct Stdio: Sendable, Equatable {
        public var command: String
        public var args: [String] = []
        public var env: [(name: String, value: Secret)] = []
        public var workingDirectory: String?
        /// First restart delay after the process dies; doubles up to `maxRestartDelaySeconds`.
        public var restartDelaySeconds: Double = 0.5
        public var maxRestartDelaySeconds: Double = 30

        public init(command: String) { self.command = command }

        public static func == (lhs: Stdio, rhs: Stdio) -> Bool {
            lhs.command == rhs.command && lhs.args == rhs.args && lhs.env.map(\.name) == rhs.env.map(\.name)
                && lhs.env.map(\.value) == rhs.env.map(\.value) && lhs.workingDirectory == rhs.workingDirectory
                && lhs.restartDelaySeconds == rhs.restartDelaySeconds && lhs.maxRestartDelaySeconds == rhs.maxRestartDelaySeconds
        }
    }

    public struct Timeouts: Sendable, Equatable {
        public var connectSeconds: Double = 5
        public var requestSeconds: Double = 60
        public init() {}
    }

    public init(name: String, transport: Transport) {
        self.name = name
        self.transport = transport
        self.timeouts = Timeouts()
    }
}

/// A value that may be secret. Its description never shows the value, so it cannot leak into logs.
public struct Secret: Sendable, Equatable, CustomStringConvertible {
    public let value: String
    public init(_ value: String) { self.value = value }
    public var description: String { "<redacted>" }
}
