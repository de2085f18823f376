/// A regular expression that Go's `regexp` package would refuse, with Go's error text:
/// `error parsing regexp: <code>: `<expr>``.
struct RE2Error: Error, Sendable, Equatable, CustomStringConvertible {
    enum Code: String, Sendable {
        case invalidCharClass = "invalid character class"
        case invalidCharRange = "invalid character class range"
        case invalidEscape = "invalid escape sequence"
        case invalidNamedCapture = "invalid named capture"
        case invalidPerlOp = "invalid or unsupported Perl syntax"
        case invalidRepeatOp = "invalid nested repetition operator"
        case invalidRepeatSize = "invalid repeat count"
        case invalidUTF8 = "invalid UTF-8"
        case missingBracket = "missing closing ]"
        case missingParen = "missing closing )"
        case missingRepeatArgument = "missing argument to repetition operator"
        case trailingBackslash = "trailing backslash at end of expression"
        case unexpectedParen = "unexpected )"
        case nestingDepth = "expression nests too deeply"
        case large = "expression too large"
    }

    let code: Code
    let expr: String

    init(_ code: Code, _ expr: String) {
        self.code = code
        self.expr = expr
    }

    var description: String { "error parsing regexp: \(code.rawValue): `\(expr)`" }
}
