// swift-tools-version:6.1
// Micro benchmarks of the wire layer (MCPWire): JSON-RPC envelope decode/encode, SSE framing,
// session ids. Sources/MCPWire is a symlink to the gateway's own sources, so this package
// measures exactly the code the gateway runs, without touching the gateway's Package.swift.
//
//   swift package --package-path Benchmarks/Micro benchmark          # time, CPU, mallocs
//   Benchmarks/micro-callgrind.sh                                      # instructions per op
import PackageDescription

let package = Package(
    name: "Micro",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .target(name: "MCPWire", swiftSettings: [.swiftLanguageMode(.v6)]),
        // The cases, shared by the Benchmark suite and the callgrind driver.
        .target(name: "WireCases", dependencies: ["MCPWire"], swiftSettings: [.swiftLanguageMode(.v6)]),
        // Runs one case N times with no framework around it, for valgrind --tool=callgrind.
        .executableTarget(name: "wire-count", dependencies: ["WireCases"], swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(
            name: "WireBenchmarks",
            dependencies: [
                "WireCases", "MCPWire",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/WireBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
    ]
)
