enum TokenKind: Equatable {
    case ident
    case string
    case number
    case op  // punctuation and operators; text holds the symbol
    /// `$"..."` or `` $`...` ``: text holds the raw content between the quotes (`isRawString` for the latter).
    case template
    case eof
}

struct Token {
    var kind: TokenKind
    var text: String  // ident name, decoded string, number text, or operator
    var line: Int
    var col: Int
    var newlineBefore: Bool
    var isRawString: Bool = false
    var spaceBefore: Bool = false
}

struct Lexer {
    let src: [UInt8]
    let file: String
    var i = 0
    var line = 1
    var col = 1

    init(_ text: String, file: String) {
        self.src = Array(text.utf8)
        self.file = file
    }

    func err(_ m: String, _ l: Int, _ c: Int) -> PolicyError {
        PolicyError(.parse, m, at: SourceLocation(file: file, line: l, column: c))
    }

    mutating func advance() {
        if src[i] == 0x0A {
            line += 1
            col = 1
        } else if src[i] & 0xC0 != 0x80 {
            col += 1
        }
        i += 1
    }

    mutating func tokenize() throws(PolicyError) -> [Token] {
        var out: [Token] = []
        var nl = false
        while true {
            let before = i
            // whitespace and comments
            while i < src.count {
                let c = src[i]
                if c == 0x0A { nl = true; advance() } else if c == 0x20 || c == 0x09 || c == 0x0D { advance() } else if c == UInt8(ascii: "#") {
                    while i < src.count, src[i] != 0x0A { advance() }
                } else { break }
            }
            let l = line, c0 = col
            let sp = i != before
            if i >= src.count {
                out.append(Token(kind: .eof, text: "", line: l, col: c0, newlineBefore: true))
                return out
            }
            let c = src[i]
            if isIdentStart(c) {
                let s = i
                while i < src.count, isIdentChar(src[i]) { advance() }
                out.append(Token(kind: .ident, text: String(decoding: src[s..<i], as: UTF8.self), line: l, col: c0, newlineBefore: nl))
            } else if c == UInt8(ascii: "$"), i + 1 < src.count, src[i + 1] == UInt8(ascii: "\"") || src[i + 1] == UInt8(ascii: "`") {
                out.append(try scanTemplate(l, c0, nl))
            } else if c >= 0x30 && c <= 0x39 {
                let s = i
                if c == 0x30, i + 1 < src.count, isDigit(src[i + 1]) { throw err("invalid number literal: leading zero", l, c0) }
                while i < src.count, isDigit(src[i]) { advance() }
                if i + 1 < src.count, src[i] == UInt8(ascii: "."), isDigit(src[i + 1]) {
                    advance()
                    while i < src.count, isDigit(src[i]) { advance() }
                }
                if i < src.count, src[i] == UInt8(ascii: "e") || src[i] == UInt8(ascii: "E") {
                    var j = i + 1
                    if j < src.count, src[j] == UInt8(ascii: "+") || src[j] == UInt8(ascii: "-") { j += 1 }
                    if j < src.count, isDigit(src[j]) {
                        while i < j { advance() }
                        while i < src.count, isDigit(src[i]) { advance() }
                    }
                }
                if i < src.count, isIdentStart(src[i]) {
                    throw err("invalid number literal", l, c0)
                }
                out.append(Token(kind: .number, text: String(decoding: src[s..<i], as: UTF8.self), line: l, col: c0, newlineBefore: nl))
            } else if c == UInt8(ascii: "\"") {
                let s = i
                advance()
                var closed = false
                while i < src.count {
                    if src[i] == UInt8(ascii: "\\") {
                        advance()
                        if i < src.count { advance() }
                        continue
                    }
                    if src[i] == 0x0A { break }
                    if src[i] == UInt8(ascii: "\"") { advance(); closed = true; break }
                    advance()
                }
                if !closed { throw err("non-terminated string", l, c0) }
                let raw = Lexer.escapingControls(src[s..<i])
                guard case .string(let decoded)? = try? JSON.parse(raw) else {
                    throw err("invalid string literal \(raw)", l, c0)
                }
                out.append(Token(kind: .string, text: decoded, line: l, col: c0, newlineBefore: nl))
            } else if c == UInt8(ascii: "`") {
                advance()
                let s = i
                while i < src.count, src[i] != UInt8(ascii: "`") { advance() }
                if i >= src.count { throw err("non-terminated raw string", l, c0) }
                let text = String(decoding: src[s..<i], as: UTF8.self)
                advance()
                out.append(Token(kind: .string, text: text, line: l, col: c0, newlineBefore: nl, isRawString: true))
            } else {
                let two: String? = i + 1 < src.count ? String(decoding: src[i...(i + 1)], as: UTF8.self) : nil
                if let t = two, [":=", "==", "!=", "<=", ">="].contains(t) {
                    advance(); advance()
                    out.append(Token(kind: .op, text: t, line: l, col: c0, newlineBefore: nl))
                } else {
                    let ch = Character(Unicode.Scalar(c))
                    guard "{}[]().,;:=<>+-*/%&|!".contains(ch) else {
                        throw err("illegal token \(ch)", l, c0)
                    }
                    advance()
                    out.append(Token(kind: .op, text: String(ch), line: l, col: c0, newlineBefore: nl))
                }
            }
            out[out.count - 1].spaceBefore = sp || nl
            nl = false
        }
    }

    /// A quoted literal's bytes with raw control characters (a tab, say) written as `\u00XX`:
    /// OPA accepts them in string literals, JSON does not.
    static func escapingControls(_ bytes: ArraySlice<UInt8>) -> String {
        guard bytes.contains(where: { $0 < 0x20 }) else { return String(decoding: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 8)
        for b in bytes {
            if b < 0x20 {
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A template string from its `$`: the content up to the closing quote, stepping over `{...}`
    /// expressions (which may hold strings and braces of their own).
    mutating func scanTemplate(_ l: Int, _ c0: Int, _ nl: Bool) throws(PolicyError) -> Token {
        advance()  // $
        let quote = src[i]
        let raw = quote == UInt8(ascii: "`")
        advance()
        let s = i
        var depth = 0
        while true {
            guard i < src.count, raw || src[i] != 0x0A || depth > 0 else { throw err("non-terminated template string", l, c0) }
            let ch = src[i]
            if depth == 0, ch == quote { break }
            if ch == UInt8(ascii: "\\"), !raw || depth > 0 {
                advance()
                if i < src.count { advance() }
                continue
            }
            if depth > 0, ch == UInt8(ascii: "\"") || ch == UInt8(ascii: "`") {
                try skipNested(ch, l, c0)
                continue
            }
            if ch == UInt8(ascii: "{") { depth += 1 } else if ch == UInt8(ascii: "}"), depth > 0 { depth -= 1 }
            advance()
        }
        let text = String(decoding: src[s..<i], as: UTF8.self)
        advance()
        return Token(kind: .template, text: text, line: l, col: c0, newlineBefore: nl, isRawString: raw)
    }

    /// Steps over a string literal inside a template expression.
    mutating func skipNested(_ q: UInt8, _ l: Int, _ c0: Int) throws(PolicyError) {
        advance()
        while i < src.count, src[i] != q {
            if q == UInt8(ascii: "\""), src[i] == UInt8(ascii: "\\") { advance() }
            if i < src.count { advance() }
        }
        guard i < src.count else { throw err("non-terminated template string", l, c0) }
        advance()
    }

    @inline(__always) func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    @inline(__always) func isIdentStart(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == UInt8(ascii: "_")
    }
    @inline(__always) func isIdentChar(_ c: UInt8) -> Bool { isIdentStart(c) || isDigit(c) }
}
