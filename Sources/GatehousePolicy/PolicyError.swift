/// An error from parsing, compiling or evaluating Rego. Codes follow OPA's error codes
/// (`rego_parse_error`, `rego_compile_error`, `rego_unsafe_var_error`, `rego_recursion_error`,
/// `rego_type_error`, `eval_conflict_error`, `eval_builtin_error`, `eval_type_error`).
public struct PolicyError: Error, Sendable, CustomStringConvertible, Hashable {
    public enum Code: String, Sendable {
        case parse = "rego_parse_error"
        case compile = "rego_compile_error"
        case unsafeVar = "rego_unsafe_var_error"
        case recursion = "rego_recursion_error"
        case type = "rego_type_error"
        case conflict = "eval_conflict_error"
        case builtin = "eval_builtin_error"
        case evalType = "eval_type_error"
        case halt = "eval_halt_error"
        case cancel = "eval_cancel_error"
        case internalError = "eval_internal_error"
    }

    public let code: Code
    public let message: String
    public let location: SourceLocation?

    public init(_ code: Code, _ message: String, at location: SourceLocation? = nil) {
        self.code = code
        self.message = message
        self.location = location
    }

    public var description: String {
        if let l = location { return "\(l): \(code.rawValue): \(message)" }
        return "\(code.rawValue): \(message)"
    }
}

/// Several compile errors reported together.
public struct PolicyErrors: Error, Sendable, CustomStringConvertible {
    public let errors: [PolicyError]
    public init(_ errors: [PolicyError]) { self.errors = errors }
    public var description: String {
        let n = errors.count
        return "\(n) error\(n == 1 ? "" : "s") occurred:\n" + errors.map(\.description).joined(separator: "\n")
    }
}

/// Error thrown by builtin implementations; turned into `eval_builtin_error` (or undefined when not strict).
struct BuiltinError: Error {
    let message: String
    let isType: Bool
    init(_ message: String, type: Bool = false) {
        self.message = message
        self.isType = type
    }
}
