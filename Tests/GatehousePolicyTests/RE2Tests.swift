import Foundation
import Testing

@testable import GatehousePolicy

/// Long CPU-bound work on a thread of its own, not on the two-thread cooperative pool.
private func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: work()) }.start()
    }
}

private func re(_ p: String) throws -> RE2 { try RE2(p) }

/// Go's FindAllStringSubmatch(s, -1), with "" for groups that did not participate.
private func submatches(_ p: String, _ s: String, _ n: Int = -1) throws -> [[String]] {
    try re(p).matches(in: s, limit: n).map { m in m.map { r in r.map { String(s[$0]) } ?? "" } }
}

private func firstGroups(_ p: String, _ s: String) throws -> [String?]? {
    try re(p).firstMatch(in: s)?.map { r in r.map { String(s[$0]) } }
}

private func parseError(_ p: String) -> String? {
    do {
        _ = try RE2(p)
        return nil
    } catch {
        return error.description
    }
}

@Suite struct RE2Tests {
    @Test func acceptsGoSyntax() throws {
        for p in [
            #"\n\t\x41\x{10FFFF}\123\Q.*\E"#, "[^a-z\\d]", "[[:alpha:]][[:^digit:]]", #"\pL\p{Greek}\PN\p{^L}"#,
            #"^\A\z$\b\B"#, "(?:a)(?P<n>b)(?<m>c)", "(?i)a(?m)b(?s)c(?U)d(?i-m:e)", "a*b+c?d{2}e{2,}f{2,3}",
            "a*?b+?c??d{2}?", "a{,2}", "[]a]", "a|b|", "()", "\\pN\\p{Lu}\\p{Cyrillic}\\p{Han}\\p{Arabic}\\p{Hebrew}",
        ] {
            #expect(parseError(p) == nil, "\(p)")
        }
    }

    @Test func rejectsWithGoMessages() {
        let cases: [(String, String)] = [
            ("a(b", "missing closing ): `a(b`"),
            ("a)", "unexpected ): `a)`"),
            ("[a", "missing closing ]: `[a`"),
            ("[z-a]", "invalid character class range: `z-a`"),
            ("a**", "invalid nested repetition operator: `**`"),
            ("a*?+", "invalid nested repetition operator: `*?+`"),
            ("*", "missing argument to repetition operator: `*`"),
            ("x{1001}", "invalid repeat count: `{1001}`"),
            ("(((a{1000}){1000}){1000})", "invalid repeat count: `{1000}`"),
            ("\\1", "invalid escape sequence: `\\1`"),
            ("\\x{110000}", "invalid escape sequence: `\\x{110000`"),
            ("(?=a)", "invalid or unsupported Perl syntax: `(?=`"),
            ("(?!a)", "invalid or unsupported Perl syntax: `(?!`"),
            ("(?<=a)b", "invalid named capture: `(?<=a)b`"),
            ("(?P=n)", "invalid or unsupported Perl syntax: `(?P`"),
            ("a++", "invalid nested repetition operator: `++`"),
            ("\\pX", "invalid character class range: `\\pX`"),
            ("[[:foo:]]", "invalid character class range: `[:foo:]`"),
            ("\\", "trailing backslash at end of expression: ``"),
        ]
        for (p, want) in cases {
            #expect(parseError(p) == "error parsing regexp: " + want, "\(p)")
        }
    }

    @Test func boundsProgramSizeAndNesting() {
        let big = String(repeating: "[a-z]{1000}", count: 4000)
        #expect(parseError(big)?.hasPrefix("error parsing regexp: expression too large") == true)
        let deep = String(repeating: "(", count: 1001) + "a" + String(repeating: ")", count: 1001)
        #expect(parseError(deep)?.hasPrefix("error parsing regexp: expression nests too deeply") == true)
    }

    @Test func leftmostFirstSubmatches() throws {
        #expect(try submatches("a(b)?", "abaa") == [["ab", "b"], ["a", ""], ["a", ""]])
        #expect(try firstGroups("(a|ab)(c|bcd)(d*)", "abcd") == ["abcd", "a", "bcd", ""])
        #expect(try firstGroups("(a)|(b)", "b") == ["b", nil, "b"])
        #expect(try firstGroups("(a*)*", "b") == ["", ""])
        #expect(try firstGroups("(a*)+", "b") == ["", ""])
        #expect(try firstGroups("(?:(a)|b)+", "ab") == ["ab", "a"])
        #expect(try firstGroups("(a){0}b", "ab") == ["b", nil])
    }

    @Test func lazyAndGreedy() throws {
        #expect(try submatches("a+?", "aaa") == [["a"], ["a"], ["a"]])
        #expect(try submatches("a{2,3}", "aaaaaaa") == [["aaa"], ["aaa"]])
        #expect(try submatches("a{2,3}?", "aaaaa") == [["aa"], ["aa"]])
        #expect(try submatches("(?U)a+", "aa") == [["a"], ["a"]])
        #expect(try submatches("(?U)a+?", "aa") == [["aa"]])
        #expect(try firstGroups("<(.+)>", "<a><b>") == ["<a><b>", "a><b"])
        #expect(try firstGroups("<(.+?)>", "<a><b>") == ["<a>", "a"])
    }

    @Test func emptyMatchIteration() throws {
        #expect(try submatches("a*", "baaab") == [[""], ["aaa"], [""]])
        #expect(try submatches("x*", "xaxx") == [["x"], ["xx"]])
        #expect(try submatches("", "ab") == [[""], [""], [""]])
        #expect(try submatches("a*", "baaab", 2) == [[""], ["aaa"]])
        #expect(try submatches("a", "aaa", 0) == [])
    }

    @Test func replaceTemplates() throws {
        let r = try re("(a)(?P<x>b)?")
        #expect(r.replacingAll(in: "abacab", template: "[$1|${x}|$2x|$$]") == "[a|b||$][a|||$]c[a|b||$]")
        #expect(try re("a*").replacingAll(in: "baaab", template: "-") == "-b-b-")
        #expect(try re("(\\w+) (\\w+)").replacingAll(in: "hello world", template: "$2 $1") == "world hello")
        #expect(try re("(\\w+)").replacingAll(in: "ab", template: "${1}x $1x $") == "abx  $")
        #expect(try re("b").replacingAll(in: "abc", template: "$9") == "ac")
    }

    @Test func split() throws {
        #expect(try re(",").split("a,b,,c,", limit: -1) == ["a", "b", "", "c", ""])
        #expect(try re("x*").split("axbxxc", limit: -1) == ["a", "b", "c"])
        #expect(try re("").split("abc", limit: -1) == ["a", "b", "c"])
        #expect(try re(",").split("", limit: -1) == [""])
        #expect(try re(",").split("a,b,c", limit: 2) == ["a", "b,c"])
        #expect(try re(",").split("a,b", limit: 0) == [])
    }

    @Test func caseFolding() throws {
        #expect(try submatches("(?i)k", "Kk\u{212A}").count == 3)
        #expect(try submatches("(?i)[k-m]+", "KLM\u{212A}klm") == [["KLM\u{212A}klm"]])
        #expect(try submatches("(?i)σ", "Σσς").count == 3)
        #expect(try re("(?i)ı").matches("I") == false)
        #expect(try re("(?i)\\W").matches("\u{212A}") == false)
        #expect(try re("(?i:a)a").matches("Aa"))
        #expect(try re("(?i:a)a").matches("AA") == false)
        #expect(try re("(?i)a(?-i)a").matches("AA") == false)
    }

    @Test func unicodeClasses() throws {
        #expect(try submatches("\\pL+", "héllo wörld 123") == [["héllo"], ["wörld"]])
        #expect(try submatches("\\p{Greek}+", "abc Ωμέγα") == [["Ωμέγα"]])
        #expect(try submatches("\\p{Cyrillic}+", "x привет") == [["привет"]])
        #expect(try submatches("\\p{Han}+", "x 漢字 y") == [["漢字"]])
        #expect(try submatches("\\PL+", "ab12 cd") == [["12 "]])
        #expect(try submatches("\\p{^L}+", "ab12 cd") == [["12 "]])
        #expect(try submatches("\\p{Lu}", "aBc") == [["B"]])
        #expect(try submatches("[[:^alpha:]]+", "ab12cd") == [["12"]])
        #expect(try submatches("\\d+", "x١٢٣x12") == [["12"]])
        #expect(try submatches(".", "😀a") == [["😀"], ["a"]])
    }

    @Test func anchorsAndMultiline() throws {
        #expect(try submatches("(?m)^\\w+$", "ab\ncd\n") == [["ab"], ["cd"]])
        #expect(try submatches("^\\w+$", "ab\ncd") == [])
        #expect(try re("^a$").matches("a\n") == false)
        #expect(try re("a$").matches("a\n") == false)
        #expect(try submatches("\\b\\w", "ab cd") == [["a"], ["c"]])
        #expect(try submatches("\\B\\w", "ab cd") == [["b"], ["d"]])
        #expect(try re("(?s)a.b").matches("a\nb"))
        #expect(try re("a.b").matches("a\nb") == false)
        #expect(try re("[^x]").matches("\n"))
    }

    @Test func quoteMeta() throws {
        let s = "a.b*c\\d[e]{f}(g)|h^$+?"
        #expect(try re("^" + RE2.quoteMeta(s) + "$").matches(s))
    }

    /// A backtracking engine never finishes these; the Pike VM is linear in the input.
    @Test func noCatastrophicBacktracking() async throws {
        let cases: [(String, String, Bool)] = [
            ("(a+)+$", String(repeating: "a", count: 100_000) + "!", false),
            ("(a|a)*b", String(repeating: "a", count: 100_000), false),
            ("(x+x+)+y", String(repeating: "x", count: 100_000), false),
            ("(a*)*$", String(repeating: "a", count: 100_000) + "b", true),
            ("^(\\w+\\s?)*$", String(repeating: "word ", count: 20_000) + "!", false),
            ("(.*a){12}", String(repeating: "a", count: 100_000), true),
        ]
        let results = await onOwnThread { () -> [Bool?] in
            cases.map { (p, s, _) in (try? RE2(p))?.matches(s) }
        }
        for (c, got) in zip(cases, results) {
            #expect(got == c.2, "\(c.0)")
        }
        let deep = await onOwnThread { () -> Bool in
            let p = String(repeating: "(", count: 999) + "a" + String(repeating: ")", count: 999)
            return (try? RE2(p))?.matches("a") ?? false
        }
        #expect(deep)
    }

    @Test func builtinsUseRE2() throws {
        let p = try compile("""
            package t
            p := [
                regex.find_n("a*", "baaab", -1),
                regex.find_all_string_submatch_n("a(b)?", "abaa", -1),
                regex.split("x*", "axbxxc"),
                regex.replace("abc", "(b)", "[$1]"),
                regex.match("(?i)K", "\\u212a"),
                regex.template_match("urn:foo:{.*}", "urn:foo:bar:baz", "{", "}"),
                glob.match("*.com", null, "a.b.com"),
                glob.match("*.com", [], "a.b.com"),
                regex.globs_match("a.a.[0-9]+z", ".b.b2359825792*594823z"),
                regex.is_valid("a(?=b)"),
            ]
            """)
        #expect(try value(p, "data.t.p") == Value.array([
            .array(["", "aaa", ""].map { Value.string($0) }),
            .array([.array([.string("ab"), .string("b")]), .array([.string("a"), .string("")]), .array([.string("a"), .string("")])]),
            .array(["a", "b", "c"].map { Value.string($0) }),
            .string("a[b]c"), .true, .true, .true, .false, .true, .false,
        ]))
    }

    @Test func builtinErrorMessage() throws {
        let p = try compile("package t\np := regex.match(input.re, \"x\")")
        #expect(throws: (any Error).self) { try value(p, "data.t.p", input: .object([.string("re"): .string("(")])) }
        do {
            _ = try value(p, "data.t.p", input: .object([.string("re"): .string("(")]))
        } catch {
            #expect("\(error)".contains("regex.match: error parsing regexp: missing closing ): `(`"), "\(error)")
        }
    }
}
