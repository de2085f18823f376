import Foundation
import GatehouseConfig
import Synchronization

/// Token buckets on MCP requests (`spec.rateLimits`), exact under concurrency within one process:
/// every check-and-take happens under one lock. Buckets idle for a minute past full are dropped.
final class RateLimiter: Sendable {
    struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    /// Why a request was refused and when to come back.
    struct Refusal: Sendable {
        var limit: String
        var retryAfter: Double
    }

    let limits: [GatewayConfig.RateLimit]
    let buckets = Mutex<[String: Bucket]>([:])
    let lastSweep = Mutex(ContinuousClock.now)

    init(limits: [GatewayConfig.RateLimit]) { self.limits = limits }

    var isEmpty: Bool { limits.isEmpty }

    /// Takes a token from every limit that applies, or from none (the first limit without one
    /// refuses the request and nothing is taken).
    func take(identity: String, client: String?, server: String?, tool: String?, method: String,
              now: ContinuousClock.Instant = .now) -> Refusal?
    {
        let applicable = limits.filter { limit in
            limit.methods.contains(method)
                && (limit.servers.isEmpty || server.map(limit.servers.contains) == true)
                && (limit.tools.isEmpty || tool.map(limit.tools.contains) == true)
        }
        guard !applicable.isEmpty else { return nil }
        let keys = applicable.map { limit in
            limit.name + "\u{1F}" + limit.key.map { dimension in
                switch dimension {
                case .identity: identity
                case .client: client ?? "-"
                case .server: server ?? "-"
                case .tool: tool ?? "-"
                }
            }.joined(separator: "\u{1F}")
        }
        sweepIfDue(now)
        return buckets.withLock { buckets in
            var refilled: [Bucket] = []
            for (limit, key) in zip(applicable, keys) {
                var bucket = buckets[key] ?? Bucket(tokens: Double(limit.burst), updated: now)
                let elapsed = Self.seconds(now - bucket.updated)
                bucket.tokens = min(Double(limit.burst), bucket.tokens + elapsed * limit.requestsPerSecond)
                bucket.updated = now
                if bucket.tokens < 1 {
                    return Refusal(limit: limit.name, retryAfter: (1 - bucket.tokens) / limit.requestsPerSecond)
                }
                refilled.append(bucket)
            }
            for (key, var bucket) in zip(keys, refilled) {
                bucket.tokens -= 1
                buckets[key] = bucket
            }
            return nil
        }
    }

    private func sweepIfDue(_ now: ContinuousClock.Instant) {
        let due = lastSweep.withLock { last -> Bool in
            guard now - last > .seconds(60) else { return false }
            last = now
            return true
        }
        guard due else { return }
        let slowest = limits.map { Double($0.burst) / $0.requestsPerSecond }.max() ?? 0
        buckets.withLock { buckets in
            buckets = buckets.filter { Self.seconds(now - $0.value.updated) < slowest + 60 }
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
