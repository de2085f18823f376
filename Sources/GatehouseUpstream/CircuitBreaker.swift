import Foundation
import Synchronization

/// A circuit breaker for one upstream, as a value-type state machine with an injected clock:
/// closed (counting consecutive failures) → open after `failureThreshold` of them (requests fail
/// fast for `openDuration`) → half-open (one probe request goes through) → closed on its
/// success, open again on its failure.
public struct CircuitBreakerState: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        case closed(failures: Int)
        case open(until: ContinuousClock.Instant)
        case halfOpen(probing: Bool)
    }

    public var phase: Phase = .closed(failures: 0)
    public let failureThreshold: Int
    public let openDuration: Duration

    public init(failureThreshold: Int, openDuration: Duration) {
        self.failureThreshold = failureThreshold
        self.openDuration = openDuration
    }

    /// Whether a request may go to the upstream now.
    public mutating func allow(now: ContinuousClock.Instant) -> Bool {
        switch phase {
        case .closed:
            return true
        case .open(let until):
            guard now >= until else { return false }
            phase = .halfOpen(probing: true)
            return true
        case .halfOpen(let probing):
            if probing { return false }
            phase = .halfOpen(probing: true)
            return true
        }
    }

    public mutating func record(success: Bool, now: ContinuousClock.Instant) {
        switch (phase, success) {
        case (_, true):
            phase = .closed(failures: 0)
        case (.closed(let failures), false):
            phase = failures + 1 >= failureThreshold ? .open(until: now + openDuration) : .closed(failures: failures + 1)
        case (.halfOpen, false), (.open, false):
            phase = .open(until: now + openDuration)
        }
    }

    public var isOpen: Bool { if case .open = phase { true } else { false } }
}

/// The shared breaker of one upstream server.
public final class CircuitBreaker: Sendable {
    let state: Mutex<CircuitBreakerState>

    public init(failureThreshold: Int, openDuration: Duration) {
        state = Mutex(CircuitBreakerState(failureThreshold: failureThreshold, openDuration: openDuration))
    }

    public func allow() -> Bool { state.withLock { $0.allow(now: .now) } }
    public func record(success: Bool) { state.withLock { $0.record(success: success, now: .now) } }
    public var isOpen: Bool { state.withLock { $0.isOpen } }
}
