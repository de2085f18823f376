import Foundation
import Synchronization

/// Prometheus metrics, kept in-process and rendered in the text exposition format (0.0.4) on
/// the admin listener. Counters and histograms are keyed by their label values; label sets are
/// bounded by configuration (endpoints, servers, tools, methods), never by request content.
///
/// Names follow the OpenTelemetry semantic conventions for MCP where they exist
/// (`mcp.server.operation.duration` → `mcp_server_operation_duration_seconds`, attributes
/// `mcp.method.name`, `gen_ai.tool.name`, `error.type`); the rest are `gatehouse_*`.
final class Metrics: Sendable {
    struct Family: Sendable {
        enum Kind: String, Sendable { case counter, gauge, histogram }
        var name: String
        var help: String
        var kind: Kind
        var labels: [String]
        var buckets: [Double] = []
    }

    struct Series: Sendable {
        var value: Double = 0
        var bucketCounts: [UInt64] = []
        var sum: Double = 0
        var count: UInt64 = 0

        mutating func record(_ value: Double, buckets: [Double]) {
            for (i, bound) in buckets.enumerated() where value <= bound { bucketCounts[i] += 1 }
            sum += value
            count += 1
        }
    }

    static let latencyBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    static let evaluationBuckets: [Double] = [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01]

    private let families: [String: Family]
    private let order: [String]
    private let series = Mutex<[String: [[String]: Series]]>([:])
    /// Gauges computed at scrape time (sessions, upstream health).
    private let collectors = Mutex<[@Sendable () -> [(name: String, labels: [String], value: Double)]]>([])

    init() {
        let all: [Family] = [
            Family(name: "gatehouse_requests_total", help: "MCP requests by endpoint, method, server, tool and outcome.", kind: .counter,
                   labels: ["endpoint", "mcp_method_name", "server", "gen_ai_tool_name", "outcome"]),
            Family(name: "mcp_server_operation_duration_seconds", help: "Time from request to final answer at the gateway (OpenTelemetry mcp.server.operation.duration).",
                   kind: .histogram, labels: ["endpoint", "mcp_method_name", "gen_ai_tool_name", "error_type"], buckets: Self.latencyBuckets),
            Family(name: "gatehouse_upstream_duration_seconds", help: "Time the upstream took to answer (the rest of the operation is the gateway's overhead).",
                   kind: .histogram, labels: ["server", "mcp_method_name"], buckets: Self.latencyBuckets),
            Family(name: "gatehouse_http_requests_total", help: "HTTP requests at the MCP endpoints by status.", kind: .counter, labels: ["endpoint", "method", "status"]),
            Family(name: "gatehouse_auth_failures_total", help: "Refused credentials by reason.", kind: .counter, labels: ["endpoint", "reason"]),
            Family(name: "gatehouse_policy_decisions_total", help: "Policy decisions by stage and result.", kind: .counter, labels: ["stage", "decision"]),
            Family(name: "gatehouse_policy_evaluation_seconds", help: "Rego evaluation time per decision.", kind: .histogram, labels: ["stage"], buckets: Self.evaluationBuckets),
            Family(name: "gatehouse_policy_reloads_total", help: "Policy reloads by result.", kind: .counter, labels: ["result"]),
            Family(name: "gatehouse_rate_limited_total", help: "Requests refused by a rate limit.", kind: .counter, labels: ["limit"]),
            Family(name: "gatehouse_sessions_active", help: "Open session-era sessions.", kind: .gauge, labels: ["endpoint"]),
            Family(name: "gatehouse_streams_active", help: "Open long-lived streams (session GET streams and subscriptions/listen).", kind: .gauge, labels: ["endpoint"]),
            Family(name: "gatehouse_upstream_ready", help: "1 when the upstream server completed its handshake.", kind: .gauge, labels: ["server"]),
            Family(name: "gatehouse_upstream_endpoint_healthy", help: "1 when an endpoint of an upstream server is healthy and not ejected.", kind: .gauge, labels: ["server", "url"]),
            Family(name: "gatehouse_upstream_endpoint_requests_total", help: "Requests sent to each endpoint of an upstream server.", kind: .counter, labels: ["server", "url"]),
            Family(name: "gatehouse_upstream_retries_total", help: "Requests sent again after an upstream failure.", kind: .counter, labels: ["server"]),
            Family(name: "gatehouse_circuit_breaker_open", help: "1 while the upstream's circuit breaker is open.", kind: .gauge, labels: ["server"]),
            Family(name: "gatehouse_rate_limit_fallback_total", help: "Shared rate limit checks done locally because PostgreSQL could not be reached.", kind: .counter, labels: ["limit"]),
            Family(name: "gatehouse_config_info", help: "The running config version (value 1).", kind: .gauge, labels: ["version"]),
            Family(name: "gatehouse_config_reloads_total", help: "Config reloads by result.", kind: .counter, labels: ["result"]),
            Family(name: "gatehouse_tools_held", help: "Tools whose current definition is held until approved (tool pinning, enforce mode).", kind: .gauge, labels: ["server"]),
            Family(name: "gatehouse_tool_changes_total", help: "Tool definitions seen that were not the approved one, by kind (new, changed, renamed, rejected, restored).",
                   kind: .counter, labels: ["server", "kind"]),
            Family(name: "gatehouse_tool_findings_total", help: "Poisoning scanner findings in newly seen tool definitions, by severity.", kind: .counter, labels: ["server", "severity"]),
            Family(name: "gatehouse_tool_decisions_total", help: "Approvals and rejections of tool definitions made on this replica.", kind: .counter, labels: ["server", "decision"]),
            Family(name: "gatehouse_trace_spans_dropped_total", help: "Spans dropped because the export queue was full.", kind: .counter, labels: []),
        ]
        self.families = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
        self.order = all.map(\.name)
    }

    func increment(_ name: String, _ labels: [String], by amount: Double = 1) {
        series.withLock { all in all[name, default: [:]][labels, default: Series()].value += amount }
    }

    func observe(_ name: String, _ labels: [String], _ value: Double) {
        guard let family = families[name] else { return }
        series.withLock { all in
            // In place: no copy of the bucket array per observation.
            all[name, default: [:]][labels, default: Series(bucketCounts: Array(repeating: 0, count: family.buckets.count))]
                .record(value, buckets: family.buckets)
        }
    }

    /// A series' current value (0 when it has none yet); for a histogram, its count.
    func value(_ name: String, _ labels: [String]) -> Double {
        series.withLock { all in
            guard let series = all[name]?[labels] else { return 0 }
            return series.bucketCounts.isEmpty ? series.value : Double(series.count)
        }
    }

    func addCollector(_ collector: @escaping @Sendable () -> [(name: String, labels: [String], value: Double)]) {
        collectors.withLock { $0.append(collector) }
    }

    /// The text exposition format.
    func render() -> String {
        var snapshot = series.withLock { $0 }
        for collector in collectors.withLock({ $0 }) {
            for sample in collector() { snapshot[sample.name, default: [:]][sample.labels] = Series(value: sample.value) }
        }
        var out = ""
        for name in order {
            guard let family = families[name] else { continue }
            out += "# HELP \(name) \(family.help)\n# TYPE \(name) \(family.kind.rawValue)\n"
            for (labels, s) in (snapshot[name] ?? [:]).sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
                let base = zip(family.labels, labels).map { "\($0)=\"\(Self.escape($1))\"" }
                switch family.kind {
                case .counter, .gauge:
                    out += "\(name){\(base.joined(separator: ","))} \(Self.number(s.value))\n"
                case .histogram:
                    for (i, bound) in family.buckets.enumerated() {
                        out += "\(name)_bucket{\((base + ["le=\"\(Self.number(bound))\""]).joined(separator: ","))} \(s.bucketCounts[i])\n"
                    }
                    out += "\(name)_bucket{\((base + ["le=\"+Inf\""]).joined(separator: ","))} \(s.count)\n"
                    out += "\(name)_sum{\(base.joined(separator: ","))} \(Self.number(s.sum))\n"
                    out += "\(name)_count{\(base.joined(separator: ","))} \(s.count)\n"
                }
            }
        }
        return out
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
