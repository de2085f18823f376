// swift-tools-version:6.1
// Micro benchmark of the Gatehouse Rego engine (compile and evaluation time of examples/policies).
// Run from the repository root:
//   swift run -c release --package-path Benchmarks/PolicyBench PolicyBench
// Sources/GatehousePolicy and Sources/MCPWire are symlinks to the library sources, so this package
// builds the same code.
import PackageDescription

let package = Package(
    name: "PolicyBench",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/attaswift/BigInt", from: "6.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    ],
    targets: [
        .target(name: "MCPWire", swiftSettings: [.swiftLanguageMode(.v6)]),
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
            swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(
            name: "PolicyBench",
            dependencies: ["GatehousePolicy"],
            swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
