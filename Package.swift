// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "gatehouse",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gatehouse", targets: ["gatehouse"]),
        .executable(name: "gatehouse-demo-server", targets: ["gatehouse-demo-server"]),
        // For the fuzz targets in Fuzz/ (a separate package, so the main build does not pay for them).
        .library(name: "MCPWire", targets: ["MCPWire"]),
        .library(name: "GatehouseConfig", targets: ["GatehouseConfig"]),
        .library(name: "GatehousePolicy", targets: ["GatehousePolicy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
        .package(url: "https://github.com/attaswift/BigInt", from: "6.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.13.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    ],
    targets: [
        // Pure wire layer: JSON-RPC envelope, JSON values that keep key order and number text,
        // SSE codec, Streamable HTTP rules per protocol revision. No I/O.
        .target(name: "MCPWire", swiftSettings: strict),
        // Manifests (YAML) -> diagnostics -> immutable runtime snapshot.
        .target(
            name: "GatehouseConfig",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: strict),
        // The Rego engine. No networking, no server dependencies.
        .target(
            name: "GatehousePolicy",
            dependencies: [
                "MCPWire",
                .product(name: "BigInt", package: "BigInt"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: strict),
        // Tool supply chain: canonical tool definitions and their digests, readable diffs, and
        // the poisoning scanner. Pure functions over MCPWire values; no I/O.
        .target(
            name: "GatehouseTools",
            dependencies: ["MCPWire", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // MCP client side: upstream transports (HTTP, stdio), upstream sessions, version bridging.
        .target(
            name: "GatehouseUpstream",
            dependencies: [
                "MCPWire", "GatehouseConfig",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        // Who is calling: the OAuth 2.1 resource server (JWT/JWKS, introspection, API keys), the
        // embedded authorization server, upstream credentials, and their storage (SQLite or
        // PostgreSQL behind one protocol). Knows nothing of the HTTP front or of MCP routing.
        .target(
            name: "GatehouseAuth",
            dependencies: [
                "MCPWire", "GatehouseConfig",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // MCP server side: the HTTP front and the request pipeline.
        .target(
            name: "GatehouseServer",
            dependencies: [
                "MCPWire", "GatehouseConfig", "GatehouseUpstream", "GatehouseAuth", "GatehousePolicy", "GatehouseTools",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "gatehouse",
            dependencies: [
                "GatehouseServer", "GatehouseConfig", "GatehousePolicy", "GatehouseAuth", "GatehouseTools",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "gatehouse-demo-server",
            dependencies: [
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(name: "MCPWireTests", dependencies: ["MCPWire"], swiftSettings: strict),
        .testTarget(name: "GatehouseConfigTests", dependencies: ["GatehouseConfig"], swiftSettings: strict),
        .testTarget(name: "GatehousePolicyTests", dependencies: ["GatehousePolicy"],
                    resources: [.copy("testdata")], swiftSettings: strict),
        .testTarget(name: "GatehouseToolsTests", dependencies: ["GatehouseTools", "MCPWire"],
                    resources: [.copy("testdata")], swiftSettings: strict),
        .testTarget(name: "GatehouseAuthTests", dependencies: ["GatehouseAuth", "GatehouseConfig", "MCPWire"], swiftSettings: strict),
        .testTarget(name: "GatehouseServerTests", dependencies: [
            "GatehouseServer", "GatehouseUpstream", "MCPWire", "GatehouseConfig", "GatehouseAuth", "GatehouseTools",
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"), .product(name: "Hummingbird", package: "hummingbird"),
        ], swiftSettings: strict),
    ]
)
