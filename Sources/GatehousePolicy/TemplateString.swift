/// `internal.template_string`, what the parser lowers a template string (`$"a {x}"`) to: its one
/// argument is an array of literal strings and sets (one set comprehension per expression, empty
/// when the expression is undefined). Strings are written as they are, other values as `print`
/// writes them.
extension Builtins {
    static let templateString = Builtin("internal.template_string", 1) { args, _ in
        guard case .array(let parts) = args[0] else { throw BuiltinError("template string: expected array", type: true) }
        var out = ""
        for part in parts {
            switch part {
            case .set(let values):
                if values.isEmpty {
                    out += "<undefined>"
                } else if values.count == 1, let v = values.first {
                    out += templateText(v)
                } else {
                    throw BuiltinError("template-strings must not produce multiple outputs")
                }
            default:
                out += templateText(part)
            }
        }
        return .string(out)
    }

    static func templateText(_ v: Value) -> String {
        if case .string(let s) = v { return s }
        return v.description
    }
}
