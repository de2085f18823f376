import Foundation
import Testing

@testable import GatehousePolicy

/// Inputs a caller controls (the policy input is built from tool arguments and headers) that
/// crashed, froze or exhausted the engine through builtins, found by an adversarial review of
/// the builtins added for OPA agreement. Each now gets a clear error; that these tests finish is
/// the bound (they run on a thread of their own, not on the cooperative pool).
@Suite("Builtin limits against hostile input")
struct BuiltinLimitsTests {
    /// Evaluates `p := <expr>` with the input, on its own thread.
    static func outcome(_ expr: String, _ input: Value) async -> Result<Value?, PolicyError> {
        await withCheckedContinuation { continuation in
            Thread {
                do {
                    let policy = try CompiledPolicy.compile(modules: [PolicyModule(name: "t.rego", source: "package t\np := \(expr)\n")])
                    let q = try policy.prepare(query: "data.t.p")
                    continuation.resume(returning: .success(try policy.evalValue(q, options: EvalOptions(input: input))))
                } catch let e as PolicyError {
                    continuation.resume(returning: .failure(e))
                } catch {
                    continuation.resume(returning: .failure(PolicyError(.internalError, "\(error)")))
                }
            }.start()
        }
    }

    static func expectError(_ r: Result<Value?, PolicyError>, containing text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        guard case .failure(let e) = r else {
            Issue.record("expected an error containing \"\(text)\", got \(r)", sourceLocation: sourceLocation)
            return
        }
        #expect(e.message.contains(text), "\(e.message)", sourceLocation: sourceLocation)
    }

    @Test func yamlAliasesCannotBuildValuesDeeperThanJSONAllows() async throws {
        // Each anchor nests 900 levels (under libyaml's own limit); chaining eight made a value
        // 7,200 deep that crashed json.marshal, walk and ==.
        var doc = ""
        for a in 0..<8 {
            let inner = a == 0 ? "1" : "*a\(a - 1)"
            doc += "a\(a): &a\(a) " + String(repeating: "[", count: 900) + inner + String(repeating: "]", count: 900) + "\n"
        }
        let r = await Self.outcome("json.marshal(yaml.unmarshal(input.s))", ["s": .string(doc)])
        Self.expectError(r, containing: "nesting deeper than 512")
        // Shallow aliases still work.
        let ok = await Self.outcome("yaml.unmarshal(input.s).b", ["s": "a: &x [1, 2]\nb: *x\n"])
        #expect(try ok.get() == [1, 2])
    }

    @Test func templatesHaveANestingAndOutputLimit() async throws {
        let deep = String(repeating: "{{if .a}}", count: 8000) + "x" + String(repeating: "{{end}}", count: 8000)
        Self.expectError(await Self.outcome("strings.render_template(input.t, {\"a\": true})", ["t": .string(deep)]),
                         containing: "nesting deeper than 100")
        // 100³ iterations of 1,500 characters: 1.6 GB before; now refused past 1 MiB.
        let t = String(repeating: "{{range $.a}}", count: 3) + String(repeating: "x", count: 1500) + String(repeating: "{{end}}", count: 3)
        let items = Value.array((0..<100).map { .int($0) })
        Self.expectError(await Self.outcome("strings.render_template(input.t, {\"a\": input.a})", ["t": .string(t), "a": items]),
                         containing: "output larger than")
        let ok = await Self.outcome("strings.render_template(\"{{range .a}}{{.}},{{end}}\", {\"a\": [1, 2]})", [:])
        #expect(try ok.get() == "1,2,")
    }

    @Test func shiftsAndUnitAmountsAreBounded() async throws {
        Self.expectError(await Self.outcome("bits.lsh(1, input.n)", ["n": .int(10_000_000_000)]), containing: "4096 bits")
        let ok = await Self.outcome("bits.lsh(1, 70)", [:])
        #expect(try ok.get() == .number(Number(BigIntLiteral.twoTo70)))
        let long = String(repeating: "9", count: 100_000) + "Ki"
        Self.expectError(await Self.outcome("units.parse(input.v)", ["v": .string(long)]), containing: "longer than 400")
        Self.expectError(await Self.outcome("units.parse_bytes(input.v)", ["v": .string(long + "B")]), containing: "longer than 400")
    }

    @Test func callerPatternsAreBoundedInSize() async throws {
        let words = (0..<100_000).map { "w\($0)" }.joined(separator: "|")
        Self.expectError(await Self.outcome("regex.match(input.p, input.s)", ["p": .string(words), "s": "xxxx"]),
                         containing: "expression too large")
        let glob = String(repeating: "*a", count: 10_000)
        Self.expectError(await Self.outcome("glob.match(input.p, [], input.s)", ["p": .string(glob), "s": "ab"]),
                         containing: "expression too large")
    }

    @Test func uniqueItemsIsLinear() async throws {
        // 20,000 items took 16 s pairwise; a table makes it one pass.
        let items = Value.array((0..<20_000).map { .int($0) })
        let r = await Self.outcome("json.match_schema(json.marshal(input.d), {\"uniqueItems\": true})[0]", ["d": items])
        #expect(try r.get() == .true)
        // Every repeat against its first occurrence, in order, as OPA (gojsonschema) reports them.
        let dup = await Self.outcome("[e.desc | some e in json.match_schema(\"[1, 2, 2, 1]\", {\"uniqueItems\": true})[1]]", [:])
        #expect(try dup.get() == ["array items[1,2] must be unique", "array items[0,3] must be unique"])
    }
}

import BigInt

enum BigIntLiteral {
    static let twoTo70 = BigInt(1) << 70
}
