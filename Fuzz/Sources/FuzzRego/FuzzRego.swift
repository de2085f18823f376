import GatehousePolicy

/// The Rego front end of GatehousePolicy: lexer, parser and compiler (safety, rule indexing,
/// the IR), through `CompiledPolicy.compile` — once as a rego.v1 module, once as a v0 module —
/// and the query parser/compiler through `prepare(query:)`. Nothing is evaluated (evaluation
/// time depends on the policy, a slow policy is not a bug). Errors are expected; crashes and
/// hangs (beyond -timeout) are findings.
let emptyPolicy: CompiledPolicy = {
    do {
        return try CompiledPolicy.compile(modules: [PolicyModule(name: "empty.rego", source: "package fuzz\n")])
    } catch {
        fatalError("cannot compile the empty policy: \(error)")
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    for version in [RegoVersion.v1, .v0] {
        do {
            let policy = try CompiledPolicy.compile(modules: [PolicyModule(name: "fuzz.rego", source: text, version: version)])
            _ = policy.rulePaths
        } catch {
            precondition(!error.errors.isEmpty, "compile threw no errors")
            _ = error.description
        }
    }
    do {
        _ = try emptyPolicy.prepare(query: text)
    } catch {
        precondition(!error.errors.isEmpty, "prepare(query:) threw no errors")
        _ = error.description
    }
    return 0
}
