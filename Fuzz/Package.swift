// swift-tools-version:6.1
// libFuzzer targets for Gatehouse's parsers. A separate package so the gateway's own build never
// pays for them; it depends on the gateway package by path and uses its library products.
//
// Build and run through the script (it passes the sanitizer flags to every module):
//   scripts/fuzz                       # every target, FUZZ_SECONDS (20) each
//   FUZZ_SECONDS=600 scripts/fuzz FuzzJSON
// See docs/fuzzing.md.
import PackageDescription

let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

/// One executable per fuzz target: `main.swift` hands control to libFuzzer, `<Target>.swift`
/// holds `LLVMFuzzerTestOneInput`.
func fuzzTarget(_ name: String, _ products: [String]) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["FuzzDriver"] + products.map { .product(name: $0, package: "gatehouse") },
        swiftSettings: swift6)
}

let package = Package(
    name: "GatehouseFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "gatehouse", path: ".."),
    ],
    targets: [
        // Calls LLVMFuzzerRunDriver from main: SwiftPM links an executable target's entry point
        // as `main`, so libFuzzer's own `main` is never used (and -parse-as-library cannot work).
        .target(name: "FuzzDriver"),
        fuzzTarget("FuzzJSON", ["MCPWire"]),
        fuzzTarget("FuzzSSE", ["MCPWire"]),
        fuzzTarget("FuzzHeaders", ["MCPWire"]),
        fuzzTarget("FuzzRego", ["GatehousePolicy"]),
        fuzzTarget("FuzzConfig", ["GatehouseConfig"]),
    ]
)
