// swift-tools-version:6.1
// A minimal MCP server on SwiftNIO, used only as the upstream of the load benchmarks
// (scripts/bench). It is a separate package so the gateway's Package.swift stays untouched;
// build it with `swift build -c release --scratch-path .build-release` in this folder.
import PackageDescription

let package = Package(
    name: "FastUpstream",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "fast-upstream",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/FastUpstream",
            swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
