import Foundation
import GatehouseAuth
import GatehouseConfig
import Logging
import Synchronization

/// Token buckets on MCP requests (`spec.rateLimits`).
///
/// Local limits are exact under concurrency within one process: every check-and-take happens
/// under one lock. Shared limits (`shared: true`) keep their buckets in PostgreSQL: a replica
/// takes a lease of `leaseTokens` tokens at a time (one fetch in flight per key and replica) and
/// spends it locally; a lease unused for a second is dropped, never returned. So R replicas
/// admit at most R × (leaseTokens − 1) requests beyond one shared bucket, and with a lease of 1
/// the limit is exact. When PostgreSQL cannot be reached, a shared limit falls back to a local
/// bucket with the same settings (logged and counted) so the gateway keeps serving.
final class RateLimiter: Sendable {
    struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    /// Tokens leased from a shared bucket and not yet spent.
    struct Lease {
        var tokens: Int
        var expires: ContinuousClock.Instant
    }

    /// Why a request was refused and when to come back.
    struct Refusal: Sendable {
        var limit: String
        var retryAfter: Double
        /// A leased token was spent by a concurrent request: fetch again rather than refuse.
        var leaseSpent = false
    }

    /// The caller and target of one request: what limit keys are made of.
    struct Subject: Sendable {
        var identity: String
        var client: String?
        var server: String?
        var tool: String?
        var method: String
        /// Other numbers for some limits, from the policy decision (by limit name).
        var overrides: [String: Override] = [:]
    }

    /// A policy's numbers for a configured limit (e.g. a higher rate for a paying tier). The
    /// bucket of an overridden limit is its own: callers with different numbers never share one.
    struct Override: Sendable, Equatable {
        var requestsPerSecond: Double
        var burst: Int
    }

    let limits: [GatewayConfig.RateLimit]
    let shared: SharedRateLimits?
    let metrics: Metrics?
    let logger: Logger?
    let buckets = Mutex<[String: Bucket]>([:])
    let leases = Mutex<[String: Lease]>([:])
    let lastSweep = Mutex(ContinuousClock.now)
    static let leaseLifetime = Duration.seconds(1)

    init(limits: [GatewayConfig.RateLimit], shared: SharedRateLimits? = nil, metrics: Metrics? = nil, logger: Logger? = nil) {
        self.limits = limits
        self.shared = limits.contains(where: \.shared) ? shared : nil
        self.metrics = metrics
        self.logger = logger
    }

    var isEmpty: Bool { limits.isEmpty }

    func applicable(to subject: Subject) -> [(limit: GatewayConfig.RateLimit, key: String)] {
        limits.compactMap { configured in
            var limit = configured
            guard limit.methods.contains(subject.method),
                limit.servers.isEmpty || subject.server.map(limit.servers.contains) == true,
                limit.tools.isEmpty || subject.tool.map(limit.tools.contains) == true
            else { return nil }
            let key = limit.name + "\u{1F}" + limit.key.map { dimension in
                switch dimension {
                case .identity: subject.identity
                case .client: subject.client ?? "-"
                case .server: subject.server ?? "-"
                case .tool: subject.tool ?? "-"
                }
            }.joined(separator: "\u{1F}")
            if let override = subject.overrides[limit.name] {
                limit.requestsPerSecond = override.requestsPerSecond
                limit.burst = override.burst
                limit.leaseTokens = min(limit.leaseTokens, override.burst)
                return (limit, key + "\u{1F}\(override.requestsPerSecond)/\(override.burst)")
            }
            return (limit, key)
        }
    }

    /// Takes a token from every limit that applies, or from none (the first limit without one
    /// refuses the request and nothing is taken).
    func take(_ subject: Subject, now: ContinuousClock.Instant = .now) async -> Refusal? {
        let applicable = applicable(to: subject)
        guard !applicable.isEmpty else { return nil }
        sweepIfDue(now)
        guard let shared else { return takeLocally(applicable, sharedKeys: [], now: now) }
        while true {
            // Shared limits: make sure a lease is there (or learn that the shared bucket is empty).
            var sharedKeys: Set<String> = []
            for (limit, key) in applicable where limit.shared {
                switch await shared.ensureLease(limit: limit, key: key, limiter: self) {
                case .ready: sharedKeys.insert(key)
                case .refused(let retryAfter): return Refusal(limit: limit.name, retryAfter: retryAfter)
                case .unavailable: metrics?.increment("gatehouse_rate_limit_fallback_total", [limit.name])
                }
            }
            let refusal = takeLocally(applicable, sharedKeys: sharedKeys, now: .now)
            if refusal?.leaseSpent != true { return refusal }
        }
    }

    /// Deletes shared buckets untouched for longer than the slowest shared limit takes to refill
    /// (plus a minute): they would be full again, which is what a missing row means.
    func sweepSharedBuckets() async {
        guard let shared else { return }
        let slowest = limits.filter(\.shared).map { Double($0.burst) / $0.requestsPerSecond }.max() ?? 0
        await shared.store.sweepSharedBuckets(olderThanSeconds: slowest + 60)
    }

    /// Local limits only, synchronously (shared limits need `take(_:)`).
    func take(identity: String, client: String?, server: String?, tool: String?, method: String, now: ContinuousClock.Instant = .now) -> Refusal? {
        let applicable = applicable(to: Subject(identity: identity, client: client, server: server, tool: tool, method: method))
        guard !applicable.isEmpty else { return nil }
        sweepIfDue(now)
        return takeLocally(applicable, sharedKeys: [], now: now)
    }

    /// The synchronous part: local buckets and leased tokens, all or nothing under the locks.
    func takeLocally(_ applicable: [(limit: GatewayConfig.RateLimit, key: String)], sharedKeys: Set<String>, now: ContinuousClock.Instant) -> Refusal? {
        leases.withLock { leases in
            buckets.withLock { buckets in
                var refilled: [(String, Bucket)] = []
                for (limit, key) in applicable {
                    if sharedKeys.contains(key) {
                        guard let lease = leases[key], lease.tokens > 0, lease.expires > now else {
                            // Spent by a concurrent request since it was fetched.
                            return Refusal(limit: limit.name, retryAfter: 0, leaseSpent: true)
                        }
                        continue
                    }
                    var bucket = buckets[key] ?? Bucket(tokens: Double(limit.burst), updated: now)
                    let elapsed = Self.seconds(now - bucket.updated)
                    bucket.tokens = min(Double(limit.burst), bucket.tokens + elapsed * limit.requestsPerSecond)
                    bucket.updated = now
                    if bucket.tokens < 1 {
                        return Refusal(limit: limit.name, retryAfter: (1 - bucket.tokens) / limit.requestsPerSecond)
                    }
                    refilled.append((key, bucket))
                }
                for (key, var bucket) in refilled {
                    bucket.tokens -= 1
                    buckets[key] = bucket
                }
                for key in sharedKeys { leases[key]?.tokens -= 1 }
                return nil
            }
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
        leases.withLock { leases in leases = leases.filter { $0.value.expires > now } }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// The PostgreSQL side of shared limits: fetches leases, one fetch in flight per key.
final class SharedRateLimits: Sendable {
    let store: AuthStore
    let logger: Logger
    /// One fetch in flight per key; the id tells a finished fetch from a newer one.
    private let inFlight = Mutex<(next: UInt64, tasks: [String: (id: UInt64, task: Task<LeaseResult, Never>)])>((0, [:]))
    private let lastWarning = Mutex<ContinuousClock.Instant?>(nil)

    init(store: AuthStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    enum LeaseResult: Sendable {
        case ready
        case refused(Double)
        case unavailable
    }

    /// Makes sure the replica holds at least one leased token for `key`.
    func ensureLease(limit: GatewayConfig.RateLimit, key: String, limiter: RateLimiter) async -> LeaseResult {
        while true {
            let now = ContinuousClock.now
            if limiter.leases.withLock({ ($0[key].map { $0.tokens > 0 && $0.expires > now }) ?? false }) { return .ready }
            let (id, task) = inFlight.withLock { state -> (UInt64, Task<LeaseResult, Never>) in
                if let running = state.tasks[key] { return running }
                state.next += 1
                let entry = (id: state.next, task: Task { await self.fetch(limit: limit, key: key, limiter: limiter) })
                state.tasks[key] = entry
                return entry
            }
            let result = await task.value
            // Whoever sees it finished first forgets it, so nobody waits on a spent fetch again
            // (awaiting a finished task does not suspend: looping on one would spin).
            inFlight.withLock { state in
                if state.tasks[key]?.id == id { state.tasks[key] = nil }
            }
            switch result {
            case .ready: continue  // spend it (or, if others spent it first, fetch again)
            case .refused, .unavailable: return result
            }
        }
    }

    /// After a failure, PostgreSQL is not asked again for a few seconds: requests limit locally
    /// at once instead of each waiting for the timeout.
    private let downUntil = Mutex<ContinuousClock.Instant?>(nil)
    static let queryTimeout = Duration.milliseconds(500)
    static let retryAfterFailure = Duration.seconds(5)

    struct Timeout: Error, CustomStringConvertible {
        var description: String { "PostgreSQL did not answer within 500 ms" }
    }

    private func fetch(limit: GatewayConfig.RateLimit, key: String, limiter: RateLimiter) async -> LeaseResult {
        if let until = downUntil.withLock({ $0 }), until > .now { return .unavailable }
        do {
            let store = store
            let retryAfter = try await withThrowingTaskGroup(of: Double?.self) { group in
                group.addTask { try await store.takeSharedTokens(key: key, burst: limit.burst, rate: limit.requestsPerSecond, lease: limit.leaseTokens) }
                group.addTask {
                    try await Task.sleep(for: Self.queryTimeout)
                    throw Timeout()
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
            downUntil.withLock { $0 = nil }
            if let retryAfter { return .refused(retryAfter) }
            let expires = ContinuousClock.now + RateLimiter.leaseLifetime
            limiter.leases.withLock { $0[key] = RateLimiter.Lease(tokens: limit.leaseTokens, expires: expires) }
            return .ready
        } catch {
            let now = ContinuousClock.now
            downUntil.withLock { $0 = now + Self.retryAfterFailure }
            let warn = lastWarning.withLock { last -> Bool in
                guard last.map({ now - $0 > .seconds(10) }) ?? true else { return false }
                last = now
                return true
            }
            if warn {
                logger.warning("shared rate limit unavailable; limiting on this replica alone", metadata: ["limit": "\(limit.name)", "error": "\(error)"])
            }
            return .unavailable
        }
    }
}
