import Foundation

@testable import GatehousePolicy

/// Runs test cases in the YAML format used by OPA's conformance suite
/// (`cases: [{note, modules, data, input, input_term, query, want_result, want_error_code, want_error, strict_error}]`).
struct ConformanceCase {
    let file: String
    let note: String
    let modules: [String]
    let data: Value?
    let input: Value?
    let inputTerm: String?
    let query: String
    let wantResult: [Value]?
    let wantErrorCode: String?
    let wantError: String?
    let strictError: Bool
    let skip: Bool
}

enum CaseOutcome {
    case pass
    case fail(String)
}

enum ConformanceRunner {
    static func loadCases(directory: String) throws -> [ConformanceCase] {
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: directory) else { return [] }
        var files: [String] = []
        while let rel = e.nextObject() as? String {
            if rel.hasSuffix(".yaml") || rel.hasSuffix(".yml") { files.append(rel) }
        }
        var out: [ConformanceCase] = []
        for rel in files.sorted() {
            let path = (directory as NSString).appendingPathComponent(rel)
            let text = String(decoding: fm.contents(atPath: path) ?? Data(), as: UTF8.self)
            out.append(contentsOf: try parseCases(text, file: rel))
        }
        return out
    }

    static func parseCases(_ text: String, file: String) throws -> [ConformanceCase] {
        let doc = try Builtins.yamlParse(text)
        guard case .array(let cases)? = doc["cases"] else { return [] }
        return cases.map { c in
            var modules: [String] = []
            if case .array(let ms)? = c["modules"] { modules = ms.compactMap(\.stringValue) }
            var want: [Value]?
            if case .array(let w)? = c["want_result"] { want = w }
            return ConformanceCase(
                file: file,
                note: c["note"]?.stringValue ?? file,
                modules: modules,
                data: c["data"],
                input: c["input"],
                inputTerm: c["input_term"]?.stringValue,
                query: c["query"]?.stringValue ?? "",
                wantResult: want,
                wantErrorCode: c["want_error_code"]?.stringValue,
                wantError: c["want_error"]?.stringValue,
                strictError: c["strict_error"] == .true,
                skip: c["skip"] == .true)
        }
    }

    static func run(_ c: ConformanceCase) -> CaseOutcome {
        let mods = c.modules.enumerated().map { PolicyModule(name: "test-\($0.offset).rego", source: $0.element) }
        var data = c.data ?? .emptyObject
        if case .null = data { data = .emptyObject }
        let expectError = c.wantErrorCode != nil || c.wantError != nil
        func checkError(_ e: PolicyError) -> CaseOutcome {
            let code = e.code.rawValue, message = e.message
            if !expectError { return .fail("unexpected error: \(code): \(message)") }
            if let want = c.wantErrorCode, want != code {
                return .fail("error code \(code) (\(message)), want \(want)")
            }
            // OPA's runner compares against "file:line: code: message".
            let opaStyle = e.location.map { "\($0.file):\($0.line): \(code): \(message)" } ?? "\(code): \(message)"
            if let want = c.wantError, !message.contains(want), !opaStyle.contains(want) {
                return .fail("error message \(JSON.serialize(.string(message))) does not contain \(JSON.serialize(.string(want)))")
            }
            return .pass
        }
        let policy: CompiledPolicy
        let query: CompiledQuery
        do {
            policy = try CompiledPolicy.compile(modules: mods, data: data)
            query = try policy.prepare(query: c.query)
        } catch {
            return checkError(error.errors[0])
        }
        var input = c.input
        if let term = c.inputTerm {
            do {
                let q = try policy.prepare(query: "__input := \(term)")
                input = try policy.eval(q).first?["__input"]
            } catch {
                return .fail("cannot evaluate input_term: \(error)")
            }
        }
        let rows: [[String: Value]]
        do {
            rows = try policy.eval(query, options: EvalOptions(input: input, strictBuiltinErrors: c.strictError))
        } catch {
            return checkError(error)
        }
        if expectError {
            return .fail("expected error \(c.wantErrorCode ?? "") \(c.wantError ?? ""), got \(rows.count) result(s)")
        }
        // Results are compared as JSON (sets become sorted arrays), like OPA's runner.
        let got = rows.map { row in
            (try? JSON.parse(JSON.serialize(Value.object(Dictionary(uniqueKeysWithValues: row.map { (Value.string($0.key), $0.value) }))))) ?? .null
        }
        let want = c.wantResult ?? []
        // Compare as multisets (order of solutions is not part of the contract here).
        if got.sorted() == want.map(normalize).sorted() { return .pass }
        return .fail("got \(JSON.serialize(.array(got))), want \(JSON.serialize(.array(want)))")
    }

    /// Expected values come from YAML; sets are written as arrays there only when the query converts them,
    /// so values are compared as-is.
    static func normalize(_ v: Value) -> Value { v }

    /// Known failures: one `note # reason` per line; blank lines and lines starting with '#' are ignored.
    static func loadKnownFailures(_ path: String) -> [String: String] {
        guard let d = FileManager.default.contents(atPath: path) else { return [:] }
        var out: [String: String] = [:]
        for line in String(decoding: d, as: UTF8.self).split(separator: "\n") {
            let l = line.trimmingCharacters(in: .whitespaces)
            if l.isEmpty || l.hasPrefix("#") { continue }
            if let r = l.range(of: " # ", options: .backwards) {
                out[String(l[..<r.lowerBound]).trimmingCharacters(in: .whitespaces)] = String(l[r.upperBound...])
            } else {
                out[l] = ""
            }
        }
        return out
    }
}
