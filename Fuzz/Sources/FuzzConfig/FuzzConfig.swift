import GatehouseConfig

/// GatehouseConfig's loader on YAML text: Yams parsing, typed specs, cross-document checks.
/// Environment variables and secret files are stubbed so a run never reads the machine's
/// files (a config naming /dev/zero as a secret file would hang, by design, not by a bug).
/// Errors (diagnostics) are expected; crashes and hangs are findings.
let loader = ConfigLoader(
    environment: { name in name.hasPrefix("UNSET") ? nil : "fuzz-value-\(name.utf8.count)" },
    readFile: { path in path.hasSuffix(".missing") ? nil : "fuzz-file-contents\n" })

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let config = try loader.load(yaml: text, file: "/nonexistent/fuzz/gatehouse.yaml")
        _ = String(describing: config)
    } catch {
        precondition(!error.diagnostics.isEmpty, "ConfigError without diagnostics")
        for diagnostic in error.diagnostics { _ = diagnostic.description }
    }
    return 0
}
