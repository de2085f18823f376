import Foundation
import Testing

@testable import GatehousePolicy

func compile(_ sources: String..., data: Value = .emptyObject) throws -> CompiledPolicy {
    try CompiledPolicy.compile(
        modules: sources.enumerated().map { PolicyModule(name: "m\($0.offset).rego", source: $0.element) }, data: data)
}

func compileErrors(_ source: String, version: RegoVersion? = nil) -> [PolicyError] {
    do {
        _ = try CompiledPolicy.compile(modules: [PolicyModule(name: "p.rego", source: source, version: version)])
        return []
    } catch {
        return error.errors
    }
}

func value(_ p: CompiledPolicy, _ query: String, input: Value? = nil, strict: Bool = true) throws -> Value? {
    try p.evalValue(try p.prepare(query: query), options: EvalOptions(input: input, strictBuiltinErrors: strict))
}

@Suite("Compile errors")
struct CompileErrorTests {
    @Test func parseErrorHasFileLineColumn() {
        let errs = compileErrors("package a\n\np if {\n  x := [1, 2\n}\n")
        #expect(errs.count == 1)
        #expect(errs[0].code == .parse)
        #expect(errs[0].location?.file == "p.rego")
        #expect(errs[0].location?.line == 5)
        #expect(errs[0].location?.column == 1)
    }

    @Test func unsafeVariable() {
        let errs = compileErrors("package a\n\np if {\n  x > 1\n}\n")
        #expect(errs.map(\.code) == [.unsafeVar])
        #expect(errs[0].message == "var x is unsafe")
        #expect(errs[0].location?.line == 4)
    }

    @Test func unsafeHeadVariable() {
        let errs = compileErrors("package a\n\np := y if input.x\n")
        #expect(errs.map(\.code) == [.unsafeVar])
        #expect(errs[0].message.contains("var y is unsafe"))
    }

    @Test func unknownBuiltinIsNamed() {
        let errs = compileErrors("package a\n\np if frobnicate(1)\n")
        #expect(errs.count == 1)
        #expect(errs[0].message == "undefined function frobnicate")
        #expect(errs[0].location?.line == 3)
        #expect(errs[0].location?.column == 6)
    }

    @Test func arityMismatch() {
        let errs = compileErrors("package a\n\nf(x) := x\n\np if f(1, 2, 3)\n\nq if count(1, 2, 3)\n")
        #expect(errs.count == 2)
        #expect(errs.allSatisfy { $0.code == .type })
        #expect(errs[1].message.contains("count: arity mismatch"))
    }

    @Test func recursionDetected() {
        let errs = compileErrors("package a\n\np if q\n\nq if p\n")
        #expect(errs.first?.code == .recursion)
        #expect(errs.first?.message.contains("data.a.p") == true)
    }

    @Test func allErrorsReported() {
        let errs = compileErrors("package a\n\np if x > 1\n\nq if nope(1)\n\nr := count(1, 2, 3)\n")
        #expect(errs.count == 3)
    }

    @Test func conflictingRuleKinds() {
        let errs = compileErrors("package a\n\np := 1\n\np contains 2\n")
        #expect(errs.first?.code == .type)
    }

    @Test func assignTwice() {
        let errs = compileErrors("package a\n\np if {\n  x := 1\n  x := 2\n}\n")
        #expect(errs.first?.message == "var x assigned above")
    }

    @Test func v0SyntaxWithFutureKeywords() throws {
        let p = try compile(
            """
            package a
            import future.keywords.in
            deny[msg] { some x in input.xs; x > 2; msg := sprintf("big %v", [x]) }
            allow = true { count(deny) == 0 }
            """)
        #expect(try value(p, "data.a.deny", input: ["xs": [1, 3]]) == .set(["big 3"]))
        #expect(try value(p, "data.a.allow", input: ["xs": [1]]) == .true)
    }

    @Test func v0ConfiguredModule() throws {
        let p = try CompiledPolicy.compile(modules: [PolicyModule(name: "x.rego", source: "package a\np[x] { x := input.xs[_] }\n", version: .v0)])
        #expect(try value(p, "data.a.p", input: ["xs": [1, 2]]) == .set([1, 2]))
    }
}

@Suite("Evaluation semantics")
struct EvalSemanticsTests {
    @Test func undefinedVersusFalse() throws {
        let p = try compile("package a\n\nt := input.x == 1\n\nu if input.x == 1\n")
        #expect(try value(p, "data.a.t", input: ["x": 2]) == .false)
        #expect(try value(p, "data.a.u", input: ["x": 2]) == nil)
        #expect(try value(p, "data.a.t", input: [:]) == nil)
    }

    @Test func conflictFailsQuery() throws {
        let p = try compile("package a\n\np := 1 if input.a\n\np := 2 if input.b\n")
        #expect(try value(p, "data.a.p", input: ["a": true]) == 1)
        #expect(throws: PolicyError.self) { try value(p, "data.a.p", input: ["a": true, "b": true]) }
        do {
            _ = try value(p, "data.a.p", input: ["a": true, "b": true])
        } catch let error as PolicyError {
            #expect(error.code == .conflict)
        }
    }

    @Test func divisionByZeroStrictAndNonStrict() throws {
        let p = try compile("package a\n\np := 1 / input.d\n")
        #expect(try value(p, "data.a.p", input: ["d": 4]) == 0.25)
        do {
            _ = try value(p, "data.a.p", input: ["d": 0])
            Issue.record("expected error")
        } catch let error as PolicyError {
            #expect(error.code == .builtin)
            #expect(error.message.contains("divide by zero"))
        }
        #expect(try value(p, "data.a.p", input: ["d": 0], strict: false) == nil)
    }

    @Test func typeErrorInBuiltinFailsQuery() throws {
        let p = try compile("package a\n\np := upper(input.name)\n")
        do {
            _ = try value(p, "data.a.p", input: ["name": 3])
            Issue.record("expected error")
        } catch let error as PolicyError {
            #expect(error.code == .evalType)
            #expect(error.message.contains("upper: operand 1 must be string but got number"))
        }
    }

    @Test func bigIntegers() throws {
        let p = try compile("package a\n\np := 9223372036854775807 * 10\n\nq := 10 / 4\n\nr := 0.1 + 0.2 > 0.3\n")
        #expect(try value(p, "data.a.p").map { JSON.serialize($0) } == "92233720368547758070")
        #expect(try value(p, "data.a.q") == 2.5)
        #expect(try value(p, "data.a.r") != nil)
    }

    @Test func withReplacesData() throws {
        let p = try compile("package a\n\nadmins := data.users.admins\n\np if input.user in admins\n", data: ["users": ["admins": ["ann"]]])
        #expect(try value(p, "data.a.p", input: ["user": "ann"]) == .true)
        #expect(try value(p, "data.a.p with data.users.admins as [\"bob\"]", input: ["user": "ann"]) == nil)
        #expect(try value(p, "data.a.p with input as {\"user\": \"ann\"}") == .true)
    }

    @Test func everyAndComprehensions() throws {
        let p = try compile(
            """
            package a
            ok if every x in input.xs { x > 0 }
            evens := {x | some x in input.xs; x % 2 == 0}
            byName := {u.name: u.age | some u in input.users}
            """)
        let input: Value = ["xs": [1, 2, 4], "users": [["name": "a", "age": 1]]]
        #expect(try value(p, "data.a.ok", input: input) == .true)
        #expect(try value(p, "data.a.ok", input: ["xs": [1, -1]]) == nil)
        #expect(try value(p, "data.a.ok", input: ["xs": []]) == .true)
        #expect(try value(p, "data.a.evens", input: input) == .set([2, 4]))
        #expect(try value(p, "data.a.byName", input: input) == ["a": 1])
    }

    @Test func functionsWithSeveralDefinitions() throws {
        let p = try compile(
            """
            package a
            f(x) := "small" if x < 10
            f(x) := "big" if x >= 10
            g(x) := 1
            g(x) := 2 if x == "y"
            """)
        #expect(try value(p, "data.a.f(3)") == "small")
        #expect(try value(p, "data.a.f(30)") == "big")
        #expect(throws: PolicyError.self) { try value(p, "data.a.g(\"y\")") }
    }

    @Test func elseChains() throws {
        let p = try compile(
            """
            package a
            level := "high" if input.score > 80
            else := "mid" if input.score > 40
            else := "low"
            """)
        #expect(try value(p, "data.a.level", input: ["score": 90]) == "high")
        #expect(try value(p, "data.a.level", input: ["score": 50]) == "mid")
        #expect(try value(p, "data.a.level", input: ["score": 1]) == "low")
    }

    @Test func queryBindings() throws {
        let p = try compile("package a\n\nroles := {\"alice\": [\"admin\", \"dev\"], \"bob\": [\"dev\"]}\n")
        let q = try p.prepare(query: "some name; data.a.roles[name][_] == \"dev\"")
        let rows = try p.eval(q)
        #expect(Set(rows.compactMap { $0["name"] }) == ["alice", "bob"])
    }

    @Test func sharedAcrossThreads() async throws {
        let p = try compile("package a\n\nallow if input.n % 2 == 0\n")
        let q = try p.prepare(query: "data.a.allow")
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<64 {
                group.addTask { try p.evalValue(q, options: EvalOptions(input: ["n": .int(i)])) == .true }
            }
            var count = 0
            for try await ok in group where ok { count += 1 }
            #expect(count == 32)
        }
    }

    @Test func reusedContextsKeepNothingFromEarlierQueries() throws {
        // Evaluation contexts are pooled: rule results, bindings and `with` overrides of one query
        // must not be visible to the next, including after a query that failed half-way.
        let p = try compile("""
            package a

            level := input.level
            allow if level > 2
            boom := 1 / input.d
            tested if allow with input as {"level": 9}
            """)
        let allow = try p.prepare(query: "data.a.allow")
        let boom = try p.prepare(query: "data.a.boom")
        let tested = try p.prepare(query: "data.a.tested")
        for _ in 0..<3 {
            #expect(try p.evalValue(allow, options: EvalOptions(input: ["level": 5])) == .true)
            #expect(try p.evalValue(allow, options: EvalOptions(input: ["level": 1])) == nil)
            #expect(throws: PolicyError.self) { try p.evalValue(boom, options: EvalOptions(input: ["d": 0])) }
            #expect(try p.evalValue(boom, options: EvalOptions(input: ["d": 1])) == .int(1))
            #expect(try p.evalValue(tested, options: EvalOptions(input: ["level": 0])) == .true)
            #expect(try p.evalValue(allow, options: EvalOptions(input: ["level": 0])) == nil)
            #expect(try p.evalValue(allow, options: EvalOptions()) == nil)
        }
    }

    @Test func compiledPolicyIsFreedWithItsPooledContexts() throws {
        // The pool must not keep a replaced policy alive (hot reload compiles a new one each time).
        weak var weakPolicy: CompiledPolicy?
        do {
            let p = try compile("package a\n\nallow if input.x == 1\n")
            weakPolicy = p
            let q = try p.prepare(query: "data.a.allow")
            #expect(try p.evalValue(q, options: EvalOptions(input: ["x": 1])) == .true)
        }
        #expect(weakPolicy == nil)
    }

    @Test func someInAndFunctionCallsAgreeOnEveryCollectionShape() throws {
        // `some x in xs` over an array and calls of functions with plain heads take closure-free
        // paths; objects, sets, undefined collections and pattern heads take the general ones.
        let p = try compile("""
            package a

            big if { some x in input.xs; x > 2 }
            found contains x if { some x in input.xs; x > 1 }
            first_big := x if { some x in input.xs; x > 1 }
            pairs contains [i, x] if { some i, x in input.xs; x > 1 }
            grants(g, m) if m in g.methods
            grants(g, _) if "*" in g.methods
            same(x, x) := true
            head([a, _]) := a
            ok if grants(input.grant, input.method)
            twice if same(input.a, input.b)
            first := head(input.pair)
            """)
        func eval(_ q: String, _ input: Value) throws -> Value? {
            try p.evalValue(try p.prepare(query: q), options: EvalOptions(input: input))
        }
        #expect(try eval("data.a.big", ["xs": [1, 2, 3]]) == .true)
        #expect(try eval("data.a.big", ["xs": [1, 2]]) == nil)
        #expect(try eval("data.a.big", [:]) == nil)
        #expect(try eval("data.a.big", ["xs": ["k": 3]]) == .true)
        #expect(try eval("data.a.big", ["xs": .set([1, 5])]) == .true)
        #expect(try eval("data.a.found", ["xs": [1, 2, 3]]) == .set([2, 3]))
        #expect(try eval("data.a.found", ["xs": ["a": 1, "b": 4]]) == .set([4]))
        #expect(try eval("data.a.pairs", ["xs": [0, 7]]) == .set([[1, 7]]))
        #expect(throws: PolicyError.self) { try eval("data.a.first_big", ["xs": [1, 2, 3]]) }
        #expect(try eval("data.a.first_big", ["xs": [1, 2]]) == .int(2))
        #expect(try eval("data.a.ok", ["grant": ["methods": ["tools/call"]], "method": "tools/call"]) == .true)
        #expect(try eval("data.a.ok", ["grant": ["methods": ["*"]], "method": "ping"]) == .true)
        #expect(try eval("data.a.ok", ["grant": ["methods": ["tools/list"]], "method": "ping"]) == nil)
        #expect(try eval("data.a.ok", ["method": "ping"]) == nil)
        #expect(try eval("data.a.twice", ["a": 1, "b": 1]) == .true)
        #expect(try eval("data.a.twice", ["a": 1, "b": 2]) == nil)
        #expect(try eval("data.a.first", ["pair": ["l", "r"]]) == "l")
        #expect(try eval("data.a.first", ["pair": ["l"]]) == nil)
    }

    @Test func timeNowFixedPerQuery() throws {
        let p = try compile("package a\n\np if { a := time.now_ns(); b := time.now_ns(); a == b }\n")
        #expect(try value(p, "data.a.p") == .true)
    }

    @Test func printGoesToHook() throws {
        let p = try compile("package a\n\np if { print(\"hello\", input.x, input.missing) }\n")
        final class Box: @unchecked Sendable { var lines: [String] = [] }
        let box = Box()
        let q = try p.prepare(query: "data.a.p")
        _ = try p.evalValue(q, options: EvalOptions(input: ["x": 1], print: { box.lines.append($0) }))
        #expect(box.lines.count == 1)
        #expect(box.lines.first?.hasSuffix("hello 1 <undefined>") == true)
    }
}

@Suite("Builtins")
struct BuiltinTests {
    func eval(_ expr: String) throws -> Value? {
        let p = try compile("package b\n\nv := \(expr)\n")
        return try value(p, "data.b.v")
    }

    @Test func strings() throws {
        #expect(try eval(#"sprintf("%s has %d items (%.2f)", ["cart", 3, 1.5])"#) == "cart has 3 items (1.50)")
        #expect(try eval(#"concat(",", ["a", "b"])"#) == "a,b")
        #expect(try eval(#"split("a.b.c", ".")"#) == ["a", "b", "c"])
        #expect(try eval(#"trim_prefix("/srv/x", "/srv")"#) == "/x")
        #expect(try eval(#"substring("héllo", 1, 3)"#) == "éll")
        #expect(try eval(#"indexof("héllo", "l")"#) == 2)
        #expect(try eval(#"format_int(255, 16)"#) == "ff")
        #expect(try eval(#"strings.any_prefix_match("/srv/a", ["/tmp", "/srv"])"#) == .true)
        #expect(try eval(#"replace("a-b-c", "-", "+")"#) == "a+b+c")
    }

    @Test func regexAndGlob() throws {
        #expect(try eval(#"regex.match(`^[a-z]+@example\.com$`, "ann@example.com")"#) == .true)
        #expect(try eval(#"glob.match("api.*.com", ["."], "api.github.com")"#) == .true)
        #expect(try eval(#"glob.match("api.*.com", ["."], "api.a.b.com")"#) == .false)
        #expect(try eval(#"glob.match("api.**.com", ["."], "api.a.b.com")"#) == .true)
        #expect(try eval(#"regex.split(`\s*,\s*`, "a , b,c")"#) == ["a", "b", "c"])
    }

    @Test func objects() throws {
        #expect(try eval(#"object.get({"a": {"b": 1}}, ["a", "b"], 0)"#) == 1)
        #expect(try eval(#"object.get({"a": 1}, "x", "d")"#) == "d")
        #expect(try eval(#"object.remove({"a": 1, "b": 2}, ["a"])"#) == ["b": 2])
        #expect(try eval(#"object.filter({"a": 1, "b": 2}, {"a"})"#) == ["a": 1])
        #expect(try eval(#"object.union({"a": {"x": 1}}, {"a": {"y": 2}})"#) == ["a": ["x": 1, "y": 2]])
        #expect(try eval(#"object.keys({"a": 1})"#) == .set(["a"]))
    }

    @Test func encodings() throws {
        #expect(try eval(#"base64.encode("hi")"#) == "aGk=")
        #expect(try eval(#"base64url.decode("aGk")"#) == "hi")
        #expect(try eval(#"hex.encode("hi")"#) == "6869")
        #expect(try eval(#"urlquery.encode("a b&c")"#) == "a+b%26c")
        #expect(try eval(#"json.unmarshal(`{"a": [1, 2.5]}`)"#) == ["a": [1, 2.5]])
        #expect(try eval(#"json.marshal({"b": 1, "a": [true]})"#) == #"{"a":[true],"b":1}"#)
        // YAML 1.1 as OPA (go-yaml v2): a plain y is true.
        #expect(try eval(#"yaml.unmarshal("a: 1\nb: [x, y]\n")"#) == ["a": 1, "b": ["x", true]])
        #expect(try eval(#"yaml.unmarshal(yaml.marshal({"a": "true", "b": [1]}))"#) == ["a": "true", "b": [1]])
    }

    @Test func timeFunctions() throws {
        #expect(try eval(#"time.parse_rfc3339_ns("2024-02-29T12:30:45.5+01:00")"#).map { JSON.serialize($0) } == "1709206245500000000")
        #expect(try eval(#"time.date(1709206245500000000)"#) == [2024, 2, 29])
        #expect(try eval(#"time.clock(1709206245500000000)"#) == [11, 30, 45])
        #expect(try eval(#"time.weekday(1709206245500000000)"#) == "Thursday")
        #expect(try eval(#"time.date(time.add_date(time.parse_rfc3339_ns("2024-01-31T00:00:00Z"), 0, 1, 0))"#) == [2024, 3, 2])
        #expect(try eval(#"time.parse_duration_ns("1h30m")"#).map { JSON.serialize($0) } == "5400000000000")
    }

    @Test func network() throws {
        #expect(try eval(#"net.cidr_contains("10.0.0.0/8", "10.2.3.4")"#) == .true)
        #expect(try eval(#"net.cidr_contains("10.0.0.0/8", "11.2.3.4")"#) == .false)
        #expect(try eval(#"net.cidr_contains("fd00::/8", "fd12::1")"#) == .true)
        #expect(try eval(#"net.cidr_contains_matches(["10.0.0.0/8", "192.168.0.0/16"], "192.168.1.1")"#) == .set([[1, "192.168.1.1"]]))
    }

    @Test func cryptoAndJWT() throws {
        #expect(try eval(#"crypto.sha256("abc")"#) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(try eval(#"crypto.hmac.sha256("data", "key")"#) == "5031fe3d989c6d1537a013fa6e739da23463fdaec3b70137d828e36ace221bd0")
        // HS256 token {"alg":"HS256","typ":"JWT"}.{"sub":"1234567890","name":"John Doe","iat":1516239022} signed with "your-256-bit-secret".
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        #expect(try eval(#"io.jwt.verify_hs256("\#(token)", "your-256-bit-secret")"#) == .true)
        #expect(try eval(#"io.jwt.verify_hs256("\#(token)", "wrong")"#) == .false)
        #expect(try eval(#"io.jwt.decode("\#(token)")[1].name"#) == "John Doe")
        #expect(try eval(#"io.jwt.decode_verify("\#(token)", {"secret": "your-256-bit-secret"})[0]"#) == .true)
    }

    @Test func unitsSemverUUID() throws {
        #expect(try eval(#"units.parse_bytes("10KiB")"#) == 10240)
        #expect(try eval(#"units.parse_bytes("1.5MB")"#) == 1_500_000)
        #expect(try eval(#"semver.compare("1.2.3", "1.10.0")"#) == -1)
        #expect(try eval(#"semver.is_valid("1.0.0-rc.1+build.5")"#) == .true)
        // OPA v1.20 accepts leading zeros and a "v" prefix (the differential corpus has more).
        #expect(try eval(#"semver.is_valid("01.0.0")"#) == .true)
        #expect(try eval(#"semver.is_valid("1.0")"#) == .false)
        #expect(try eval(#"uuid.rfc4122("a") == uuid.rfc4122("a")"#) == .true)
    }

    @Test func aggregates() throws {
        #expect(try eval("sum([1, 2.5])") == 3.5)
        #expect(try eval("max({3, 1, 2})") == 3)
        #expect(try eval("sort([3, 1, 2])") == [1, 2, 3])
        #expect(try eval("count(\"héllo\")") == 5)
        #expect(try eval("{1, 2} | {3}") == .set([1, 2, 3]))
        #expect(try eval("{1, 2} & {2}") == .set([2]))
        #expect(try eval("{1, 2} - {2}") == .set([1]))
    }

    @Test func builtinListIsDocumented() throws {
        // docs/policy.md carries the generated index (scripts/gen-builtin-docs) and prose for each.
        let docs = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/policy.md")
        guard let text = try? String(contentsOf: docs, encoding: .utf8) else { return }
        #expect(text.contains(PolicyBuiltins.markdownIndex), "docs/policy.md's builtin index is stale: run scripts/gen-builtin-docs")
    }
}

@Suite("Policy test runner")
struct TestRunnerTests {
    static var examples: String {
        URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples/policies").path
    }

    @Test func examplePoliciesPass() throws {
        let bundle = try PolicyLoader.load(paths: [Self.examples])
        #expect(bundle.modules.count >= 12)
        let policy = try CompiledPolicy.compile(modules: bundle.modules, data: bundle.data)
        let results = PolicyTestRunner.run(policy: policy)
        #expect(results.count >= 40)
        let bad = results.filter { $0.outcome != .pass }
        #expect(bad.isEmpty, "\(PolicyTestRunner.report(bad, verbose: true))")
    }

    @Test func reportsFailuresAndDataByDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-policy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("teams/platform"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try #"{"members": ["ann"]}"#.write(to: dir.appendingPathComponent("teams/platform/data.json"), atomically: true, encoding: .utf8)
        try "lead: bob\n".write(to: dir.appendingPathComponent("teams/platform/extra.yaml"), atomically: true, encoding: .utf8)
        try """
        package t
        test_member if "ann" in data.teams.platform.members
        test_lead if data.teams.platform.lead == "bob"
        test_wrong if data.teams.platform.lead == "ann"
        test_error if 1 / 0
        todo_later if false
        """.write(to: dir.appendingPathComponent("t_test.rego"), atomically: true, encoding: .utf8)
        let bundle = try PolicyLoader.load(paths: [dir.path])
        let policy = try CompiledPolicy.compile(modules: bundle.modules, data: bundle.data)
        let results = PolicyTestRunner.run(policy: policy)
        let byName = Dictionary(uniqueKeysWithValues: results.map { ($0.name, $0.outcome) })
        #expect(byName["data.t.test_member"] == .pass)
        #expect(byName["data.t.test_lead"] == .pass)
        #expect(byName["data.t.test_wrong"] == .fail)
        #expect(byName["data.t.test_error"] == .error)
        #expect(byName["data.t.todo_later"] == .skip)
        let report = PolicyTestRunner.report(results, verbose: false)
        #expect(report.contains("PASS: 2/5"))
        #expect(report.contains("FAIL: 1/5"))
        #expect(report.contains("ERROR: 1/5"))
    }
}

@Suite("Numbers a caller controls cost linear time")
struct NumberParsingCostTests {
    @Test("a 1,000,000-digit integer becomes a double at once; shorter ones stay exact")
    func hugeIntegers() {
        let start = ContinuousClock.now
        let huge = Number(parsing: String(repeating: "7", count: 1_000_000))
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(huge != nil)
        let exact = Number(parsing: "1" + String(repeating: "0", count: 100))
        #expect(exact == Number(parsing: "1e100"), "integers within maxExactDigits stay exact")
        #expect(Number(parsing: "1e3000") != nil)
    }
}

extension NumberParsingCostTests {
    @Test("integers over the exact-digit cap become doubles; within it they stay exact")
    func digitCap() {
        let long = String(repeating: "9", count: Number.maxExactDigits + 10)
        #expect(Number(parsing: long) == Number(Double(long)!))
        let exact = "1" + String(repeating: "0", count: 300)
        #expect(Number(parsing: exact) == Number(parsing: "1e300"))
    }
}

@Suite("Refused policies")
struct RefusedPolicyTests {
    /// That its rules are freed is checked by LeakSanitizer: these sources are in the FuzzRego
    /// seed corpus, so every `scripts/fuzz` run compiles them with leak detection on.
    @Test("a recursive policy is refused with a recursion error", arguments: [
        "package g\nr := r", "package g\nr if { r }", "package g\na if { b }\nb if { a }",
    ])
    func recursion(_ source: String) throws {
        do {
            _ = try compile(source)
            Issue.record("a recursive policy must not compile")
        } catch let errors as PolicyErrors {
            #expect(errors.description.contains("recursion"), "\(errors)")
        }
    }
}

@Suite("One JSON reader for messages and policy")
struct PolicyJSONTests {
    @Test("policy JSON is read by MCPWire's parser with the same values")
    func sameValues() throws {
        let value = try JSON.parse(#"{"a":1,"a":2,"big":123456789012345678901234567890,"x":0.1,"u":"\u00e9\ud83d\ude00","n":null,"l":[true,false]}"#)
        guard case .object(let object) = value else { Issue.record("not an object"); return }
        #expect(object[.string("a")] == .number(Number(parsing: "2")!), "a repeated key keeps its last value, as OPA does")
        #expect(object[.string("big")] == .number(Number(parsing: "123456789012345678901234567890")!))
        #expect(object[.string("x")] == .number(Number(parsing: "0.1")!))
        #expect(object[.string("u")] == .string("é😀"))
        #expect(object[.string("n")] == .null)
        #expect(object[.string("l")] == .array([.bool(true), .bool(false)]))
    }

    @Test("bad JSON is a parse error with its offset; nesting has a limit", arguments: ["{", "[1,]", "01", "\"\\x\"", "{} x", ""])
    func errors(_ text: String) {
        #expect(throws: JSON.ParseError.self) { try JSON.parse(text) }
    }

    @Test func depth() throws {
        let ok = String(repeating: "[", count: JSON.maxDepth - 1) + String(repeating: "]", count: JSON.maxDepth - 1)
        #expect(throws: Never.self) { try JSON.parse(ok) }
        let deep = String(repeating: "[", count: JSON.maxDepth + 10) + String(repeating: "]", count: JSON.maxDepth + 10)
        #expect(throws: JSON.ParseError.self) { try JSON.parse(deep) }
    }
}
