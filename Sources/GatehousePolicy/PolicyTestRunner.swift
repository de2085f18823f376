import Foundation
import Synchronization

/// Runs `test_*` rules like `opa test`.
public struct PolicyTestResult: Sendable {
    public enum Outcome: String, Sendable {
        case pass = "PASS"
        case fail = "FAIL"
        case error = "ERROR"
        case skip = "SKIPPED"
    }
    public let name: String
    public let location: SourceLocation?
    public let outcome: Outcome
    public let message: String?
    public let duration: Duration
    public let output: [String]
}

public enum PolicyTestRunner {
    /// Evaluates every rule whose name starts with `test_` (and reports `todo_` rules as skipped).
    public static func run(policy: CompiledPolicy, filter: String? = nil) -> [PolicyTestResult] {
        var results: [PolicyTestResult] = []
        let clock = ContinuousClock()
        for rs in policy.ruleSets.sorted(by: { ($0.rules.first?.loc.file ?? "", $0.rules.first?.loc.line ?? 0) < ($1.rules.first?.loc.file ?? "", $1.rules.first?.loc.line ?? 0) }) {
            guard let last = rs.path.last, rs.kind != .function else { continue }
            let name = rs.dottedPath
            if let f = filter, !name.contains(f) { continue }
            let loc = rs.rules.first?.loc
            if last.hasPrefix("todo_") {
                results.append(PolicyTestResult(name: name, location: loc, outcome: .skip, message: nil, duration: .zero, output: []))
                continue
            }
            guard last.hasPrefix("test_") else { continue }
            let lines = Mutex<[String]>([])
            let start = clock.now
            var outcome: PolicyTestResult.Outcome
            var message: String?
            do {
                let v = try policy.evalRule(rs.path, options: EvalOptions(print: { line in lines.withLock { $0.append(line) } }))
                if let v, v != .false {
                    outcome = .pass
                } else {
                    outcome = .fail
                    message = v == nil ? "undefined" : "false"
                }
            } catch {
                outcome = .error
                message = "\(error)"
            }
            let elapsed = clock.now - start
            results.append(PolicyTestResult(name: name, location: loc, outcome: outcome, message: message, duration: elapsed, output: lines.withLock { $0 }))
        }
        return results
    }

    /// Formats results like `opa test`: failures (all with `verbose`), then a summary line.
    public static func report(_ results: [PolicyTestResult], verbose: Bool) -> String {
        var out = ""
        var currentFile: String?
        for r in results {
            let show = verbose || r.outcome == .fail || r.outcome == .error
            guard show else { continue }
            if let f = r.location?.file, f != currentFile {
                if currentFile != nil { out += "\n" }
                out += "\(f):\n"
                currentFile = f
            }
            var line = "\(r.name): \(r.outcome.rawValue)"
            if r.outcome != .skip { line += " (\(format(r.duration)))" }
            out += line + "\n"
            if let m = r.message, r.outcome == .error { out += "  \(m)\n" }
            if r.outcome != .pass || verbose {
                for o in r.output { out += "  \(o)\n" }
            }
        }
        let pass = results.filter { $0.outcome == .pass }.count
        let fail = results.filter { $0.outcome == .fail }.count
        let err = results.filter { $0.outcome == .error }.count
        let skip = results.filter { $0.outcome == .skip }.count
        if !out.isEmpty { out += String(repeating: "-", count: 80) + "\n" }
        let total = results.count
        if pass > 0 { out += "PASS: \(pass)/\(total)\n" }
        if fail > 0 { out += "FAIL: \(fail)/\(total)\n" }
        if err > 0 { out += "ERROR: \(err)/\(total)\n" }
        if skip > 0 { out += "SKIPPED: \(skip)/\(total)\n" }
        if total == 0 { out += "no tests found\n" }
        return out
    }

    static func format(_ d: Duration) -> String {
        let (s, atto) = d.components
        let ns = Double(s) * 1e9 + Double(atto) / 1e9
        if ns < 1000 { return String(format: "%.0fns", ns) }
        if ns < 1_000_000 { return String(format: "%.1fµs", ns / 1000) }
        if ns < 1_000_000_000 { return String(format: "%.2fms", ns / 1_000_000) }
        return String(format: "%.2fs", ns / 1e9)
    }
}
