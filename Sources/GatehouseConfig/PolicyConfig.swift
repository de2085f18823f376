import Foundation

/// `spec.policy`: Rego decisions for every MCP request, the three-phase match pipeline, and the
/// decision (audit) log.
public struct PolicyConfig: Sendable, Equatable {
    /// `.rego` files and directories (with `.json`/`.yaml` data), absolute paths.
    public var regoPaths: [String] = []
    /// A Rego module written in the config itself (`rego.inline`).
    public var inlineModule: String?
    /// The rule whose value is the decision: a boolean, or an object with `allow`, `reasons`,
    /// `message`, `redact` and `headers`.
    public var query: String = "data.gatehouse.decision"
    public var deniedTools: DeniedTools = .hide
    public var audit = Audit()
    public var pipeline: Pipeline?

    public init() {}

    public enum DeniedTools: String, Sendable, Equatable, CaseIterable {
        /// A denied `tools/call` answers like an unknown tool: existence does not leak.
        case hide
        /// A denied `tools/call` answers with a "forbidden by policy" error.
        case error
    }

    public struct Audit: Sendable, Equatable {
        public enum Sink: Sendable, Equatable {
            case stdout
            case file(String)
            case off
        }

        public var sink: Sink = .stdout
        /// Argument fields (at any depth) whose values the log shows as "***".
        public var maskArguments: [String] = ["password", "secret", "token", "apiKey", "api_key", "authorization"]
        public init() {}
    }

    /// The three-phase pipeline: analysis (client IP, user agent, claims) → named matchers →
    /// one boolean expression over their names.
    public struct Pipeline: Sendable, Equatable {
        /// Peers whose `X-Forwarded-For` is believed (the client IP is the last untrusted hop).
        public var trustedProxies: [CIDR] = []
        public var matchers: [Matcher] = []
        public var expression: PipelineExpression
        public var expressionText: String

        public init(expression: PipelineExpression, text: String) {
            self.expression = expression
            self.expressionText = text
        }
    }

    public struct Matcher: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            /// The client IP is in one of these ranges.
            case clientIP([CIDR])
            /// A request header equals one of the values (case-insensitive); `*` matches presence.
            case header(name: String, values: [String])
            /// An identity claim (or `scopes`, `groups`, `roles`, `subject`, `kind`) equals / contains one of the values.
            case claim(name: String, values: [String])
            /// The user agent contains one of these substrings (case-insensitive).
            case userAgent([String])
        }

        public var name: String
        public var kind: Kind
        public init(name: String, kind: Kind) {
            self.name = name
            self.kind = kind
        }
    }
}

/// An IPv4 or IPv6 network, e.g. `10.0.0.0/8`, `2001:db8::/32`, or one address.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    public let address: [UInt8]
    public let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let bytes = CIDR.parseAddress(parts[0]) else { return nil }
        let maxPrefix = bytes.count * 8
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...maxPrefix).contains(p) else { return nil }
            prefix = p
        } else {
            prefix = maxPrefix
        }
        address = bytes
    }

    public static func parseAddress(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: v4) { Array($0) } }
        var v6 = in6_addr()
        let bare = text.hasPrefix("[") && text.hasSuffix("]") ? String(text.dropFirst().dropLast()) : text
        if inet_pton(AF_INET6, bare, &v6) == 1 {
            let bytes = withUnsafeBytes(of: v6) { Array($0) }
            // IPv4-mapped addresses compare as IPv4.
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff { return Array(bytes[12..<16]) }
            return bytes
        }
        return nil
    }

    public func contains(_ bytes: [UInt8]) -> Bool {
        guard bytes.count == address.count else { return false }
        var remaining = prefix
        for i in 0..<address.count where remaining > 0 {
            let bits = min(8, remaining)
            let mask: UInt8 = bits == 8 ? 0xff : ~(0xff >> UInt8(bits))
            if address[i] & mask != bytes[i] & mask { return false }
            remaining -= bits
        }
        return true
    }

    public var description: String {
        let text: String
        if address.count == 4 {
            text = address.map(String.init).joined(separator: ".")
        } else {
            text = stride(from: 0, to: 16, by: 2).map { String(format: "%x", Int(address[$0]) << 8 | Int(address[$0 + 1])) }.joined(separator: ":")
        }
        return "\(text)/\(prefix)"
    }
}

/// `(a || b) && !c` over matcher names.
public indirect enum PipelineExpression: Sendable, Equatable {
    case name(String)
    case not(PipelineExpression)
    case and(PipelineExpression, PipelineExpression)
    case or(PipelineExpression, PipelineExpression)

    public var names: [String] {
        switch self {
        case .name(let n): [n]
        case .not(let e): e.names
        case .and(let a, let b), .or(let a, let b): a.names + b.names
        }
    }

    public func evaluate(_ verdicts: [String: Bool]) -> Bool? {
        switch self {
        case .name(let n): return verdicts[n]
        case .not(let e): return e.evaluate(verdicts).map { !$0 }
        case .and(let a, let b):
            guard let x = a.evaluate(verdicts) else { return nil }
            if !x { return false }
            return b.evaluate(verdicts)
        case .or(let a, let b):
            guard let x = a.evaluate(verdicts) else { return nil }
            if x { return true }
            return b.evaluate(verdicts)
        }
    }

    public struct ParseError: Error, Equatable {
        public var message: String
        public var offset: Int
    }

    /// Grammar: or := and ('||' and)* ; and := unary ('&&' unary)* ; unary := '!' unary | '(' or ')' | name.
    public static func parse(_ text: String) throws(ParseError) -> PipelineExpression {
        var parser = Parser(chars: Array(text))
        let expression = try parser.parseOr()
        parser.skipSpace()
        guard parser.position == parser.chars.count else { throw ParseError(message: "unexpected '\(parser.chars[parser.position])'", offset: parser.position) }
        return expression
    }

    struct Parser {
        let chars: [Character]
        var position = 0

        mutating func skipSpace() { while position < chars.count, chars[position].isWhitespace { position += 1 } }

        mutating func take(_ token: String) -> Bool {
            skipSpace()
            let t = Array(token)
            guard position + t.count <= chars.count, Array(chars[position..<position + t.count]) == t else { return false }
            position += t.count
            return true
        }

        mutating func parseOr() throws(ParseError) -> PipelineExpression {
            var left = try parseAnd()
            while take("||") { left = .or(left, try parseAnd()) }
            return left
        }

        mutating func parseAnd() throws(ParseError) -> PipelineExpression {
            var left = try parseUnary()
            while take("&&") { left = .and(left, try parseUnary()) }
            return left
        }

        mutating func parseUnary() throws(ParseError) -> PipelineExpression {
            if take("!") { return .not(try parseUnary()) }
            if take("(") {
                let inner = try parseOr()
                guard take(")") else { throw ParseError(message: "missing ')'", offset: position) }
                return inner
            }
            skipSpace()
            let start = position
            while position < chars.count, chars[position].isLetter || chars[position].isNumber || chars[position] == "-" || chars[position] == "_" {
                position += 1
            }
            guard position > start else {
                throw ParseError(message: position < chars.count ? "expected a matcher name, got '\(chars[position])'" : "expected a matcher name at the end", offset: position)
            }
            return .name(String(chars[start..<position]))
        }
    }
}
