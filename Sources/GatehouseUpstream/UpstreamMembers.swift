import Foundation
import GatehouseConfig
import Synchronization

/// The endpoints ("members") of one HTTP upstream server and which of them gets the next request.
///
/// Design note: every member is a full copy of the server. A request without a session picks a
/// member (round robin, or the fewest requests in flight) among those that are healthy (active
/// checks) and not ejected (passive outlier detection); when none is, every member is a
/// candidate again — a gateway that refuses to try is worse than one that tries a sick member.
/// A session-era upstream session lives on the member that created it (affinity), so requests
/// of that session never move. The state is one small lock-protected array: a pick is a few
/// comparisons, far below the cost of the request it routes.
public final class UpstreamMembers: Sendable {
    public let urls: [String]
    let balance: ServerConfig.HTTP.Balance
    let outlier: ServerConfig.OutlierDetection?
    let check: ServerConfig.HealthCheck?

    struct Member {
        var inFlight = 0
        var requests: UInt64 = 0
        var healthy = true
        var checkPasses = 0
        var checkFailures = 0
        var consecutiveFailures = 0
        var ejectedUntil: ContinuousClock.Instant?
    }

    struct State {
        var next = 0
        var members: [Member]
    }

    private let state: Mutex<State>

    public init(urls: [String], balance: ServerConfig.HTTP.Balance = .roundRobin, outlier: ServerConfig.OutlierDetection? = nil,
                check: ServerConfig.HealthCheck? = nil)
    {
        precondition(!urls.isEmpty, "an HTTP upstream has at least one endpoint")
        self.urls = urls
        self.balance = balance
        self.outlier = outlier
        self.check = check
        self.state = Mutex(State(members: Array(repeating: Member(), count: urls.count)))
    }

    public var count: Int { urls.count }

    /// The members to try for a new request, best first: the pick, then the other eligible
    /// members, then the rest (so a refused connection can fail over).
    func candidates(now: ContinuousClock.Instant = .now) -> [Int] {
        if urls.count == 1 { return [0] }
        return state.withLock { state in
            let all = Array(state.members.indices)
            var eligible = all.filter { i in
                let m = state.members[i]
                return m.healthy && (m.ejectedUntil.map { $0 <= now } ?? true)
            }
            if eligible.isEmpty { eligible = all }
            let start = state.next % eligible.count
            state.next &+= 1
            var ordered = Array(eligible[start...] + eligible[..<start])
            if balance == .leastRequests {
                // Stable: among equally loaded members, the round-robin order decides.
                ordered = ordered.enumerated().sorted { a, b in
                    let (la, lb) = (state.members[a.element].inFlight, state.members[b.element].inFlight)
                    return la != lb ? la < lb : a.offset < b.offset
                }.map(\.element)
            }
            return ordered + all.filter { !eligible.contains($0) }
        }
    }

    func begin(_ index: Int) {
        state.withLock { state in
            state.members[index].inFlight += 1
            state.members[index].requests += 1
        }
    }

    enum Outcome { case success, failure, neutral }

    /// Ends a request on a member. A failure is a refused or broken connection or an HTTP 5xx;
    /// `consecutiveFailures` of them in a row eject the member for `ejectionSeconds`.
    func end(_ index: Int, _ outcome: Outcome, now: ContinuousClock.Instant = .now) {
        state.withLock { state in
            state.members[index].inFlight = max(0, state.members[index].inFlight - 1)
            switch outcome {
            case .success:
                state.members[index].consecutiveFailures = 0
            case .failure:
                state.members[index].consecutiveFailures += 1
                if let outlier, state.members[index].consecutiveFailures >= outlier.consecutiveFailures {
                    state.members[index].ejectedUntil = now + .milliseconds(Int64(outlier.ejectionSeconds * 1000))
                    state.members[index].consecutiveFailures = 0
                }
            case .neutral:
                break
            }
        }
    }

    /// Records one active check; returns the member's health when it changed.
    @discardableResult
    func recordCheck(_ index: Int, passed: Bool) -> Bool? {
        let thresholds = (unhealthy: check?.unhealthyThreshold ?? 1, healthy: check?.healthyThreshold ?? 1)
        return state.withLock { state -> Bool? in
            var m = state.members[index]
            let before = m.healthy
            if passed {
                m.checkPasses += 1
                m.checkFailures = 0
                if !m.healthy, m.checkPasses >= thresholds.healthy { m.healthy = true }
                if m.healthy { m.ejectedUntil = nil }
            } else {
                m.checkFailures += 1
                m.checkPasses = 0
                if m.healthy, m.checkFailures >= thresholds.unhealthy { m.healthy = false }
            }
            state.members[index] = m
            return m.healthy != before ? m.healthy : nil
        }
    }

    /// What the admin API and metrics show per member.
    public struct Status: Sendable {
        public var url: String
        public var healthy: Bool
        public var ejected: Bool
        public var inFlight: Int
        public var requests: UInt64
    }

    public func status(now: ContinuousClock.Instant = .now) -> [Status] {
        state.withLock { state in
            state.members.enumerated().map { i, m in
                Status(url: urls[i], healthy: m.healthy, ejected: m.ejectedUntil.map { $0 > now } ?? false, inFlight: m.inFlight, requests: m.requests)
            }
        }
    }
}
