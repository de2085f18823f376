import Foundation
import Testing

@testable import GatehousePolicy

/// The Rego differential corpus (testdata/differential/*.yaml) with the outcomes OPA v1.20 gave,
/// recorded by `scripts/rego-record` into recorded.json: every case must come out the same in
/// Gatehouse (values equal, undefined, or an error of the same class), without OPA at hand.
/// The end-to-end test tests/e2e/test_rego_differential.py runs the same cases against OPA live.
@Suite("Differential corpus (recorded from OPA)")
struct DifferentialCorpusTests {
    static var directory: String {
        let base = Bundle.module.resourcePath.map { ($0 as NSString).appendingPathComponent("testdata") } ?? "testdata"
        return (base as NSString).appendingPathComponent("differential")
    }

    struct Case: Sendable {
        let note: String
        let modules: [String]
        let data: Value?
        let input: Value?
        let query: String
        let want: Value
    }

    static func loadRecorded() throws -> (opa: String, cases: [Case]) {
        let path = (directory as NSString).appendingPathComponent("recorded.json")
        let text = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
        let doc = try JSON.parse(text)
        guard case .array(let list)? = doc["cases"] else { return (doc["opa"]?.stringValue ?? "?", []) }
        let cases = list.map { c in
            Case(
                note: c["note"]?.stringValue ?? "?",
                modules: c["modules"].flatMap { v -> [String]? in
                    guard case .array(let a) = v else { return nil }
                    return a.compactMap(\.stringValue)
                } ?? [],
                data: c["data"], input: c["input"], query: c["query"]?.stringValue ?? "",
                want: c["want"] ?? .null)
        }
        return (doc["opa"]?.stringValue ?? "?", cases)
    }

    /// `note # reason` lines of known-differences.txt.
    static func loadKnown() -> Set<String> {
        let path = (directory as NSString).appendingPathComponent("known-differences.txt")
        guard let d = FileManager.default.contents(atPath: path) else { return [] }
        var out = Set<String>()
        for line in String(decoding: d, as: UTF8.self).split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty || t.hasPrefix("#") { continue }
            out.insert(String(t.components(separatedBy: " # ")[0]).trimmingCharacters(in: .whitespaces))
        }
        return out
    }

    /// The class an error code is compared by (tests/rego/oracle.py's ERROR_CLASSES).
    static func errorClass(_ code: PolicyError.Code) -> String {
        switch code {
        case .parse: "parse"
        case .compile, .unsafeVar, .recursion: "compile"
        case .type: "type"
        case .conflict: "conflict"
        case .builtin, .evalType: "eval"
        default: "other:\(code.rawValue)"
        }
    }

    /// Gatehouse's outcome of a case, in the recorded shape, as `gatehouse policy eval` computes it.
    static func outcome(_ c: Case) -> Value {
        let modules = c.modules.enumerated().map { PolicyModule(name: "m\($0.offset).rego", source: $0.element) }
        func failed(_ code: PolicyError.Code) -> Value { .object([.string("error"): .string(errorClass(code))]) }
        do {
            let policy = try CompiledPolicy.compile(modules: modules, data: c.data ?? .emptyObject)
            let query = try policy.prepare(query: c.query)
            guard let v = try policy.evalValue(query, options: EvalOptions(input: c.input, strictBuiltinErrors: true)) else {
                return .object([.string("undefined"): .true])
            }
            // Through JSON, as OPA's answer was: sets become arrays in their sorted order.
            return .object([.string("value"): try JSON.parse(JSON.serialize(v))])
        } catch let e as PolicyErrors {
            return failed(e.errors.first?.code ?? .compile)
        } catch let e as PolicyError {
            return failed(e.code)
        } catch {
            return .object([.string("error"): .string("other:\(error)")])
        }
    }

    @Test func everyRecordedCaseAgreesWithOPA() async throws {
        let (opa, cases) = try Self.loadRecorded()
        let known = Self.loadKnown()
        #expect(cases.count >= 1500, "the corpus has \(cases.count) recorded cases")
        // Thousands of evaluations run on a thread of their own, not on the cooperative pool.
        let failures: [String] = await withCheckedContinuation { continuation in
            Thread {
                var failures: [String] = []
                for c in cases where !known.contains(c.note) {
                    let got = Self.outcome(c)
                    if got != c.want {
                        failures.append("\(c.note): OPA \(JSON.serialize(c.want)), Gatehouse \(JSON.serialize(got))")
                    }
                }
                continuation.resume(returning: failures)
            }.start()
        }
        #expect(failures.isEmpty, "\(failures.count) of \(cases.count) cases disagree with \(opa):\n\(failures.prefix(40).joined(separator: "\n"))")
    }

    /// Every builtin Gatehouse shares with OPA takes as many arguments as OPA declares (the type
    /// table is generated from OPA's capabilities file); OPA's own are all either here or listed
    /// as not implemented in docs/policy.md.
    @Test func builtinAritiesAreOPAs() {
        var wrong: [String] = []
        for (name, b) in Builtins.table where !name.hasPrefix("internal.") {
            guard let sig = BuiltinTypes.signatures[name], sig.variadic == nil, b.arity >= 0 else { continue }
            if sig.args.count != b.arity { wrong.append("\(name): Gatehouse \(b.arity), OPA \(sig.args.count)") }
        }
        #expect(wrong.isEmpty, "arity differs from OPA: \(wrong.sorted())")
    }
}
