import Foundation
import GatehousePolicy

// Usage: PolicyBench [examples/policies] [--iterations N]
// Prints median and p90 compile time of the example policy set, and median/p90/min evaluation time of
// representative decisions, each measured over many runs (not a timed test: numbers vary by machine
// and with load; on a shared machine the minimum is the best estimate of the uncontended cost).
// POLICYBENCH_ONLY=<text> runs only the cases whose name contains <text> (e.g. for `perf record`).
// POLICYBENCH_EVAL_ONLY=1 skips the compile timing and the throughput run, so that counting events
// (e.g. `perf stat -e` on a uprobe of swift_retain) sees almost only the selected evaluations.

var args = Array(CommandLine.arguments.dropFirst())
var iterations = 20_000
if let i = args.firstIndex(of: "--iterations"), i + 1 < args.count, let n = Int(args[i + 1]) {
    iterations = n
    args.removeSubrange(i...(i + 1))
}
let root = args.first ?? "examples/policies"

func percentile(_ xs: [Double], _ p: Double) -> Double {
    let s = xs.sorted()
    return s[min(s.count - 1, Int(Double(s.count - 1) * p))]
}

func fmt(_ ns: Double) -> String {
    ns < 1000 ? String(format: "%.0f ns", ns) : (ns < 1_000_000 ? String(format: "%.2f µs", ns / 1000) : String(format: "%.2f ms", ns / 1e6))
}

@inline(never) func measure(_ runs: Int, _ body: () throws -> Void) rethrows -> [Double] {
    var out: [Double] = []
    out.reserveCapacity(runs)
    let clock = ContinuousClock()
    for _ in 0..<runs {
        let t0 = clock.now
        try body()
        let d = clock.now - t0
        out.append(Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9)
    }
    return out
}

let bundle = try PolicyLoader.load(paths: [root])
let sourceBytes = bundle.modules.reduce(0) { $0 + $1.source.utf8.count }
print("Gatehouse policy micro benchmark")
print("policies: \(root) (\(bundle.modules.count) modules, \(sourceBytes) bytes); eval iterations: \(iterations)")
print("")

// Compile (parse + compile all modules, including tests).
let evalOnly = ProcessInfo.processInfo.environment["POLICYBENCH_EVAL_ONLY"] == "1"
if !evalOnly {
_ = try CompiledPolicy.compile(modules: bundle.modules, data: bundle.data)
let compileTimes = try measure(200) { _ = try CompiledPolicy.compile(modules: bundle.modules, data: bundle.data) }
print(String(format: "%-52@ median %@  p90 %@", "compile examples/policies (all modules)" as NSString, fmt(percentile(compileTimes, 0.5)), fmt(percentile(compileTimes, 0.9))))
}

let policy = try CompiledPolicy.compile(modules: bundle.modules, data: bundle.data)

struct Case {
    let name: String
    let query: String
    let input: Value
    let expect: Value?
}

let alice: Value = ["id": "cursor-alice", "subject": "alice", "roles": ["developer"], "authenticated": true]
let cases: [Case] = [
    Case(name: "baseline: input lookup (input.client.id)", query: "input.client.id",
         input: ["client": alice], expect: "cursor-alice"),
    Case(name: "baseline: constant rule (tool_rbac.filesystem_tools)", query: "data.mcp.tool_rbac.filesystem_tools",
         input: ["client": alice], expect: nil),
    Case(name: "client_authz.allow (allowed)", query: "data.mcp.client_authz.allow",
         input: ["client": alice, "server": "github", "method": "tools/call"], expect: .true),
    Case(name: "client_authz.allow (denied)", query: "data.mcp.client_authz.allow",
         input: ["client": alice, "server": "warehouse", "method": "tools/call"], expect: .false),
    Case(name: "client_authz.decision (denied, with reasons)", query: "data.mcp.client_authz.decision",
         input: ["client": alice, "server": "warehouse", "method": "tools/call"], expect: nil),
    Case(name: "tool_rbac.allow (path prefix)", query: "data.mcp.tool_rbac.allow",
         input: ["subject": ["sub": "alice", "roles": ["engineer"]], "server": "filesystem",
                 "tool": ["name": "read_file", "arguments": ["path": "/srv/projects/app/README.md"]]], expect: .true),
    Case(name: "business_hours.allow (contractor)", query: "data.mcp.business_hours.allow",
         input: ["subject": ["sub": "carol", "employment": "contractor"], "server": "github"], expect: nil),
    Case(name: "adaptive_limits.limit", query: "data.mcp.adaptive_limits.limit",
         input: ["client": ["id": "c1", "tier": "pro", "trusted": true], "tool": ["server": "warehouse", "name": "run_query"],
                 "signals": ["error_rate": 0.01, "abuse_reports": 0]], expect: nil),
    // The gateway's own decision (examples/policies/gateway_authz) with an input shaped like the
    // one Gatehouse builds for a tools/call (docs/policy.md "The input document").
    Case(name: "gateway_authz.decision (contractor, read-only tool)", query: "data.gatehouse.decision",
         input: ["identity": ["kind": "machine", "subject": "apikey:key_c", "issuer": "gatehouse:api-keys", "client_id": "contractor",
                              "scopes": ["mcp"], "groups": [], "roles": [], "claims": ["owner": "vendor"], "source": "api_key"],
                 "request": ["method": "tools/call", "phase": "call", "protocol_version": "2026-07-28", "session": false, "server": "demo",
                             "name": "echo", "tool": "echo", "arguments": ["message": "hello"]],
                 "server": ["name": "demo", "labels": ["team": "platform"], "annotations": [:]],
                 "tool": ["name": "echo", "annotations": ["readOnlyHint": true, "idempotentHint": true]],
                 "context": ["client_ip": "127.0.0.1", "headers": ["user-agent": "bench"], "endpoint": "/mcp"]], expect: nil),
    Case(name: "gateway_authz.decision (contractor, destructive: deny)", query: "data.gatehouse.decision",
         input: ["identity": ["kind": "machine", "subject": "apikey:key_c", "scopes": ["mcp"]],
                 "request": ["method": "tools/call", "phase": "call", "server": "demo", "name": "delete_item", "tool": "delete_item",
                             "arguments": ["id": "7"]],
                 "tool": ["name": "delete_item", "annotations": ["readOnlyHint": false, "destructiveHint": true]]], expect: nil),
    Case(name: "hipaa.decision (compliant)", query: "data.mcp.hipaa.decision",
         input: ["subject": ["sub": "dr", "hipaa_training_ns": .number(Number(Int(Date().timeIntervalSince1970 * 1e9) - 86_400_000_000_000))],
                 "server": "ehr", "tool": ["name": "get", "arguments": ["fields": ["allergies"]]],
                 "context": ["purpose_of_use": "treatment", "tls": true]], expect: nil),
]

let only = ProcessInfo.processInfo.environment["POLICYBENCH_ONLY"]
for c in cases where only == nil || c.name.contains(only!) {
    let q = try policy.prepare(query: c.query)
    let opts = EvalOptions(input: c.input)
    let first = try policy.evalValue(q, options: opts)
    if let e = c.expect, first != e {
        print("warning: \(c.name) returned \(first.map { JSON.serialize($0) } ?? "undefined"), expected \(JSON.serialize(e))")
    }
    // Warm up, then measure single evaluations.
    for _ in 0..<1000 { _ = try policy.evalValue(q, options: opts) }
    let times = try measure(iterations) { _ = try policy.evalValue(q, options: opts) }
    print(String(format: "%-52@ median %@  p90 %@  min %@", "eval \(c.name)" as NSString, fmt(percentile(times, 0.5)), fmt(percentile(times, 0.9)), fmt(times.min() ?? 0)))
}

if !evalOnly {
    // Throughput with both cores sharing one compiled policy.
    let q = try policy.prepare(query: "data.mcp.client_authz.allow")
    let input: Value = ["client": alice, "server": "github", "method": "tools/call"]
    let perTask = 100_000
    let t0 = ContinuousClock().now
    await withTaskGroup(of: Void.self) { g in
        for _ in 0..<2 {
            g.addTask {
                for _ in 0..<perTask { _ = try? policy.evalValue(q, options: EvalOptions(input: input)) }
            }
        }
    }
    let elapsed = ContinuousClock().now - t0
    let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print(String(format: "%-52@ %.0f decisions/s", "throughput client_authz.allow (2 tasks)" as NSString, Double(2 * perTask) / secs))
}
