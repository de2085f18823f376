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
    /// Authentication: trusted issuers, API keys, the embedded authorization server. Nil: every
    /// endpoint is open (the laptop default, bound to loopback).
    public var auth: Auth?
    /// Where auth state lives (API keys, clients, codes, refresh tokens, signing keys). Only
    /// opened when `auth` is set.
    public var storage: Storage = .sqlite(path: "gatehouse.db")
    /// Policy: Rego decisions, the match pipeline, the decision log. Nil: every authenticated
    /// request is allowed.
    public var policy: PolicyConfig?
    /// Token buckets on MCP requests, keyed by identity, client, server and tool.
    public var rateLimits: [RateLimit] = []
    /// The admin listener (metrics, status, policy reload). Nil: none.
    public var admin: Admin?
    public var tracing: Tracing?

    /// The admin listener and the credential that protects it.
    public struct Admin: Sendable, Equatable {
        public var listen: Listen
        /// A bearer token for every admin route but health and readiness; nil is allowed only
        /// on a loopback address.
        public var token: Secret?
        /// `Host` values the admin listener answers (DNS rebinding defence). Empty: the MCP
        /// listener's allowed hosts plus the admin bind address; any host when bound to a
        /// wildcard address (a token is required then).
        public var allowedHosts: [String] = []
        /// Browser origins that may call the admin API. Empty: any request with an `Origin`
        /// header is refused (no web page may read metrics or trigger a reload).
        public var allowedOrigins: [String] = []
        public init(listen: Listen, token: Secret? = nil) {
            self.listen = listen
            self.token = token
        }
    }

    /// OpenTelemetry traces exported over OTLP/HTTP (JSON encoding).
    public struct Tracing: Sendable, Equatable {
        /// The collector's base URL; spans go to `<endpoint>/v1/traces`.
        public var otlpEndpoint: String
        public var headers: [(name: String, value: Secret)] = []
        public var serviceName: String?
        public var sampleRatio: Double = 1
        public init(otlpEndpoint: String) { self.otlpEndpoint = otlpEndpoint }

        public static func == (lhs: Tracing, rhs: Tracing) -> Bool {
            lhs.otlpEndpoint == rhs.otlpEndpoint && lhs.headers.map(\.name) == rhs.headers.map(\.name)
                && lhs.headers.map(\.value) == rhs.headers.map(\.value) && lhs.serviceName == rhs.serviceName && lhs.sampleRatio == rhs.sampleRatio
        }
    }

    /// One token bucket family: `requestsPerSecond` refill, `burst` capacity, one bucket per
    /// distinct value of `key` (e.g. per identity and tool).
    public struct RateLimit: Sendable, Equatable {
        public enum Dimension: String, Sendable, Equatable, CaseIterable {
            case identity, client, server, tool
        }

        public var name: String
        public var key: [Dimension] = [.identity]
        public var requestsPerSecond: Double
        public var burst: Int
        /// Methods it applies to (default tools/call).
        public var methods: [String] = ["tools/call"]
        /// Only these servers / tools (empty: all).
        public var servers: [String] = []
        public var tools: [String] = []
        /// Buckets kept in PostgreSQL and shared by every replica.
        public var shared = false
        /// Tokens a replica takes from the shared bucket at once (1: exact).
        public var leaseTokens = 1

        public init(name: String, requestsPerSecond: Double, burst: Int) {
            self.name = name
            self.requestsPerSecond = requestsPerSecond
            self.burst = burst
        }
    }

    public func server(named name: String) -> ServerConfig? { servers.first { $0.name == name } }

    /// One MCP endpoint: a path and the upstream servers it federates.
    public struct Endpoint: Sendable, Equatable {
        public var path: String
        /// Server names, in the order lists are merged.
        public var servers: [String]
        public var naming: Naming
        /// How long a list fan-out waits for each server before leaving it out.
        public var listTimeoutSeconds: Double = 5
        /// Whether callers must present a token, and which scopes it must carry.
        public var auth = EndpointAuth()
        /// Tools renamed, re-described or hidden on this endpoint (`tools`).
        public var toolOverrides: [ToolOverride] = []
        /// `toolSelection: listed`: only the tools named in `tools` (and not hidden) are
        /// exposed — a virtual server made of chosen tools of several servers.
        public var onlyListedTools = false

        public init(path: String, servers: [String], naming: Naming = Naming()) {
            self.path = path
            self.servers = servers
            self.naming = naming
        }

        /// The effective prefix mode: explicit, or `always` with several servers and `never`
        /// with one (a single server's names pass through unchanged).
        public var prefix: Naming.Prefix { naming.prefix ?? (servers.count > 1 ? .always : .never) }
    }

    /// One tool of one server as an endpoint exposes it (docs/federation.md "Virtual servers").
    public struct ToolOverride: Sendable, Equatable {
        public var server: String
        /// The server's own name of the tool.
        public var tool: String
        /// The name clients see (never prefixed); nil: the endpoint's naming.
        public var name: String?
        public var title: String?
        public var description: String?
        /// Annotation values replacing the server's (a key with null removes it).
        public var annotations: [(key: String, value: AnnotationValue)] = []
        public var hide = false

        public enum AnnotationValue: Sendable, Equatable {
            case bool(Bool)
            case string(String)
            case null
        }

        public init(server: String, tool: String) {
            self.server = server
            self.tool = tool
        }

        public static func == (lhs: ToolOverride, rhs: ToolOverride) -> Bool {
            lhs.server == rhs.server && lhs.tool == rhs.tool && lhs.name == rhs.name && lhs.title == rhs.title && lhs.description == rhs.description
                && lhs.annotations.map(\.key) == rhs.annotations.map(\.key) && lhs.annotations.map(\.value) == rhs.annotations.map(\.value)
                && lhs.hide == rhs.hide
        }
    }

    public struct EndpointAuth: Sendable, Equatable {
        public enum Mode: String, Sendable, Equatable, CaseIterable {
            case required
            case off
        }

        public var mode: Mode = .off
        /// Scopes a token must carry (all of them) to use the endpoint.
        public var scopes: [String] = []
        public init(mode: Mode = .off, scopes: [String] = []) {
            self.mode = mode
            self.scopes = scopes
        }
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
        public var tls: TLS?
        public init() {}
    }

    /// TLS on a listener. The files are read again when they change (certificate rotation
    /// without a restart); a new pair that does not load is refused and the old one stays.
    public struct TLS: Sendable, Equatable {
        public enum ClientCertificates: String, Sendable, Equatable, CaseIterable {
            case optional
            case required
        }

        public var certificateFile: String
        public var keyFile: String
        /// CA bundle for client certificates (mTLS); nil: none are asked for.
        public var clientCAFile: String?
        public var clientCertificates: ClientCertificates = .optional
        /// Offer HTTP/2 (ALPN h2) next to HTTP/1.1.
        public var http2 = true

        public init(certificateFile: String, keyFile: String) {
            self.certificateFile = certificateFile
            self.keyFile = keyFile
        }
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
        /// Open connections on the MCP listener; more are answered 503 and closed.
        public var maxConnections: Int = 10_000
        /// A connection waiting for its next request closes after this.
        public var idleTimeoutSeconds: Double = 60
        /// A request head must be complete this long after its first byte.
        public var headerTimeoutSeconds: Double = 10
        /// A request body must be complete this long after its head.
        public var bodyTimeoutSeconds: Double = 30
        public init() {}
    }

    public struct Sessions: Sendable, Equatable {
        public var idleTimeoutSeconds: Int = 1800
        public var maxSessions: Int = 10_000
        /// Sessions one caller may hold (one identity; one client address when anonymous). A
        /// new session over it ends that caller's least recently used session.
        public var maxPerCaller: Int = 100
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

/// Where auth state is kept.
public enum Storage: Sendable, Equatable {
    /// A SQLite file: no setup, one process.
    case sqlite(path: String)
    /// A PostgreSQL database shared by replicas: `postgres://user:password@host:port/database`.
    case postgres(url: Secret)
}

/// `spec.auth`: the resource server's trust settings and the optional embedded authorization server.
public struct Auth: Sendable, Equatable {
    /// The base URL clients use to reach the gateway (resource identifiers and the embedded
    /// issuer derive from it). Nil: `http://<bind>:<port>`.
    public var publicURL: String?
    public var clockSkewSeconds: Int = 60
    /// How long a validated token (or API key) is trusted without checking again: the bound on
    /// how late a revocation takes effect.
    public var cacheSeconds: Int = 30
    public var apiKeys: Bool = true
    /// At most one JWKS refetch per issuer in this interval when tokens name unknown key ids.
    public var jwksMinRefreshSeconds: Double = 10
    /// How long fetched keys stay usable while the issuer cannot be reached.
    public var jwksCacheSeconds: Int = 3600
    public var issuers: [Issuer] = []
    public var authorizationServer: AuthorizationServer?

    public init() {}

    public struct Issuer: Sendable, Equatable {
        public var issuer: String
        public var jwksURL: String?
        /// Accepted `aud` values. Empty: the endpoint's resource URL.
        public var audiences: [String] = []
        public var algorithms: [String] = ["RS256", "ES256", "EdDSA"]
        public var introspection: Introspection?
        public init(issuer: String) { self.issuer = issuer }
    }

    public struct Introspection: Sendable, Equatable {
        public var url: String
        public var clientID: String
        public var clientSecret: Secret
        public init(url: String, clientID: String, clientSecret: Secret) {
            self.url = url
            self.clientID = clientID
            self.clientSecret = clientSecret
        }
    }

    public struct AuthorizationServer: Sendable, Equatable {
        public var accessTokenSeconds: Int = 3600
        public var refreshTokenSeconds: Int = 30 * 86400
        public var codeSeconds: Int = 60
        public var keyRotationDays: Int = 30
        public var scopes: [String] = ["mcp"]
        public var users: [LocalUser] = []
        public var clients: [StaticClient] = []
        public var registration = Registration()
        /// Where users sign in: nil means the local users above.
        public var login: Login?
        public init() {}
    }

    /// User sign-in delegated to an upstream identity provider.
    public enum Login: Sendable, Equatable {
        case oidc(OIDCLogin)
    }

    /// An OpenID Connect provider signs users in (authorization code + PKCE against it); its
    /// ID token's subject becomes the user.
    public struct OIDCLogin: Sendable, Equatable {
        public var issuer: String
        public var clientID: String
        public var clientSecret: Secret
        public var scopes: [String] = ["openid", "email", "profile"]
        public var subjectClaim: String = "sub"
        public init(issuer: String, clientID: String, clientSecret: Secret) {
            self.issuer = issuer
            self.clientID = clientID
            self.clientSecret = clientSecret
        }
    }

    public struct LocalUser: Sendable, Equatable {
        public var username: String
        /// `pbkdf2-sha256$<rounds>$<salt>$<hash>` from `gatehouse hash-password`.
        public var passwordHash: Secret
        public init(username: String, passwordHash: Secret) {
            self.username = username
            self.passwordHash = passwordHash
        }
    }

    public struct StaticClient: Sendable, Equatable {
        public var clientID: String
        /// Nil: a public client (PKCE only).
        public var clientSecret: Secret?
        public var grantTypes: [String] = ["authorization_code", "refresh_token"]
        public var scopes: [String] = []
        public var redirectURIs: [String] = []
        public var name: String?
        public init(clientID: String) { self.clientID = clientID }
    }

    public struct Registration: Sendable, Equatable {
        /// RFC 7591 dynamic client registration at /oauth/register.
        public var dynamic = true
        /// When set, /oauth/register requires `Authorization: Bearer <it>`.
        public var initialAccessToken: Secret?
        /// Client ID Metadata Documents: an https URL as client_id.
        public var clientMetadataDocuments = true
        /// Tests only: allow http:// and loopback, private or link-local metadata URLs.
        public var allowPrivateAddresses = false
        public init() {}
    }
}

/// One upstream MCP server (`kind: MCPServer`).
public struct ServerConfig: Sendable, Equatable {
    public var name: String
    public var transport: Transport
    public var timeouts: Timeouts
    public var resilience = Resilience()
    /// Requests in flight to this server at most (nil: no limit); more are refused at once
    /// with 429 / -32029 rather than queued.
    public var maxConcurrentRequests: Int?
    public var healthCheck: HealthCheck?
    public var outlierDetection: OutlierDetection?
    /// `metadata.labels` / `metadata.annotations`: facts policies can read (team, data class...).
    public var labels: [String: String] = [:]
    public var annotations: [String: String] = [:]
    /// `spec.toolPinning`: tool definitions recorded, checked and held until approved.
    public var toolPinning = ToolPinning()

    /// How a server's tool definitions are pinned (docs/security.md "Tool pinning").
    public struct ToolPinning: Sendable, Equatable {
        public enum Mode: String, Sendable, CaseIterable {
            /// Definitions pass unchecked.
            case off
            /// Definitions are recorded (first sight is pinned) and changes reported; nothing is held.
            case record
            /// Changed, new (with `onNewTool: hold`), rejected and flagged tools are held.
            case enforce
        }
        public enum OnNewTool: String, Sendable, CaseIterable { case allow, hold }
        public enum OnChange: String, Sendable, CaseIterable { case hold, warn }
        public enum Severity: String, Sendable, CaseIterable { case low, medium, high }

        public var mode: Mode = .off
        public var onNewTool: OnNewTool = .allow
        public var onChange: OnChange = .hold
        /// Tools with a scanner finding at or above this severity are never pinned
        /// automatically, and are held in enforce mode until a person approves them.
        public var blockSeverity: Severity? = .high
        public init() {}
    }

    public enum Transport: Sendable, Equatable {
        case http(HTTP)
        case stdio(Stdio)
    }

    public struct HTTP: Sendable, Equatable {
        /// The server's endpoints (`url`, or several in `urls`): each one a full copy of the server.
        public var urls: [String]
        public var balance: Balance = .roundRobin
        /// Extra headers sent upstream (credentials for the upstream, never the client's).
        public var headers: [(name: String, value: Secret)]
        /// A bearer token obtained with OAuth client credentials from the upstream's issuer.
        public var clientCredentials: ClientCredentials?
        /// TLS towards an https upstream: a CA bundle to trust instead of the system's, and a
        /// client certificate to present.
        public var tls: UpstreamTLS?

        public struct UpstreamTLS: Sendable, Equatable {
            public var caFile: String?
            public var certificateFile: String?
            public var keyFile: String?
            public init() {}
        }

        public enum Balance: String, Sendable, Equatable, CaseIterable {
            case roundRobin = "round-robin"
            case leastRequests = "least-requests"
        }

        public init(url: String, headers: [(name: String, value: Secret)] = []) {
            self.urls = [url]
            self.headers = headers
        }

        /// The first endpoint (the only one of most servers).
        public var url: String {
            get { urls[0] }
            set { urls = [newValue] }
        }

        public static func == (lhs: HTTP, rhs: HTTP) -> Bool {
            lhs.urls == rhs.urls && lhs.balance == rhs.balance && lhs.headers.map(\.name) == rhs.headers.map(\.name)
                && lhs.headers.map(\.value) == rhs.headers.map(\.value) && lhs.clientCredentials == rhs.clientCredentials
                && lhs.tls == rhs.tls
        }
    }

    /// OAuth 2.1 client credentials towards the upstream's own authorization server.
    public struct ClientCredentials: Sendable, Equatable {
        public var tokenURL: String
        public var clientID: String
        public var clientSecret: Secret
        public var scopes: [String] = []
        /// Sent as `resource` (RFC 8707) when set.
        public var resource: String?
        public init(tokenURL: String, clientID: String, clientSecret: Secret) {
            self.tokenURL = tokenURL
            self.clientID = clientID
            self.clientSecret = clientSecret
        }
    }

    /// Active checks of every endpoint of an HTTP server (`spec.healthCheck`).
    public struct HealthCheck: Sendable, Equatable {
        public var intervalSeconds: Double = 10
        public var timeoutSeconds: Double = 2
        /// An HTTP GET path on each endpoint's origin; nil: an MCP-level probe.
        public var path: String?
        public var unhealthyThreshold: Int = 2
        public var healthyThreshold: Int = 1
        public init() {}
    }

    /// Passive ejection of an endpoint that keeps failing real requests (`spec.outlierDetection`).
    public struct OutlierDetection: Sendable, Equatable {
        public var consecutiveFailures: Int = 5
        public var ejectionSeconds: Double = 30
        public init() {}
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

    /// Retries and circuit breaking (`spec.resilience`).
    public struct Resilience: Sendable, Equatable {
        /// Extra attempts for requests that are safe to repeat (lists, reads, prompts/get) when
        /// the upstream could not be reached; `tools/call` only with `retryIdempotentTools` and
        /// a tool annotated `idempotentHint: true`.
        public var retries: Int = 0
        public var retryBackoffSeconds: Double = 0.1
        public var retryIdempotentTools = false
        /// Consecutive failures that open the breaker (nil: no breaker).
        public var breakerFailures: Int?
        public var breakerOpenSeconds: Double = 30
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

extension GatewayConfig {
    /// The base URL clients use: `spec.auth.publicURL`, or the listen address.
    public var publicBaseURL: String {
        if let url = auth?.publicURL { return url.hasSuffix("/") ? String(url.dropLast()) : url }
        let host = listen.bind == "0.0.0.0" || listen.bind == "::" ? "127.0.0.1" : listen.bind
        return "\(listen.tls == nil ? "http" : "https")://\(host.contains(":") ? "[\(host)]" : host):\(listen.port)"
    }

    /// The RFC 8707 resource identifier of an endpoint: the URL clients call it at.
    public func resourceURL(for endpoint: Endpoint) -> String { publicBaseURL + endpoint.path }

    /// Whether any state needs the store: API keys or the embedded authorization server.
    public var needsStore: Bool {
        (auth.map { $0.apiKeys || $0.authorizationServer != nil } ?? false) || rateLimits.contains(where: \.shared) || pinsTools
    }

    /// True when a server pins its tool definitions (they live in the store).
    public var pinsTools: Bool { servers.contains { $0.toolPinning.mode != .off } }
}
