import Foundation
import Logging
import Testing

@testable import GatehouseAuth

/// Single-use sign-in forms and failed sign-in counters on a real SQLite file (PostgreSQL runs
/// the same statements: `tests/e2e/test_auth_replicas.py`).
@Suite struct SignInStoreTests {
    func withStore(_ body: (AuthStore) async throws -> Void) async throws { try await withTemporaryStore(body) }

    @Test func formsAreClaimedOnceEvenUnderConcurrency() async throws {
        try await withStore { store in
            let outcomes = await withTaskGroup(of: Bool?.self) { group in
                for _ in 0..<8 { group.addTask { try? await store.claimForm(hash: "f1", expiresAt: 100, now: 10) } }
                var all: [Bool?] = []
                for await o in group { all.append(o) }
                return all
            }
            #expect(outcomes.filter { $0 == true }.count == 1)
            #expect(outcomes.filter { $0 == false }.count == 7)
            let other = try await store.claimForm(hash: "f2", expiresAt: 100, now: 10)
            #expect(other)
            // Past its expiry the row is swept; the form itself is refused by its own exp long before.
            let swept = try await store.claimForm(hash: "f1", expiresAt: 300, now: 200)
            #expect(swept)
        }
    }

    @Test func attemptsCountUpLockAndResetAfterQuiet() async throws {
        try await withStore { store in
            for n in 1...3 {
                let attempt = try await store.beginSignInAttempt(key: "account:a", now: Int64(100 + n), resetAfter: 3600)
                #expect(attempt == .init(number: n, lockedUntil: 0))
            }
            // Locked: an attempt is refused and not counted.
            try await store.lockSignIn(key: "account:a", until: 200)
            try await store.lockSignIn(key: "account:a", until: 150)  // never shortens
            #expect(try await store.beginSignInAttempt(key: "account:a", now: 120, resetAfter: 3600) == .init(number: 3, lockedUntil: 200))
            #expect(try await store.beginSignInAttempt(key: "account:a", now: 201, resetAfter: 3600) == .init(number: 4, lockedUntil: 200))
            // Taking an attempt back also lifts the lock it set, and only that one.
            try await store.forgiveSignInAttempt(key: "account:a", lockedUntil: 999)
            #expect(try await store.beginSignInAttempt(key: "account:a", now: 202, resetAfter: 3600) == .init(number: 4, lockedUntil: 200))
            try await store.lockSignIn(key: "account:a", until: 500)
            try await store.forgiveSignInAttempt(key: "account:a", lockedUntil: 500)
            #expect(try await store.beginSignInAttempt(key: "account:a", now: 203, resetAfter: 3600) == .init(number: 4, lockedUntil: 0))
            // An hour of quiet: counting starts again.
            #expect(try await store.beginSignInAttempt(key: "account:a", now: 203 + 3601, resetAfter: 3600).number == 1)
            try await store.clearSignInAttempts(key: "account:a")
            #expect(try await store.beginSignInAttempt(key: "account:a", now: 5000, resetAfter: 3600).number == 1)
        }
    }

    /// Concurrent attempts each get their own number: none can pass a check another one made.
    @Test func concurrentAttemptsAreNumberedOnce() async throws {
        try await withStore { store in
            let numbers = await withTaskGroup(of: Int?.self) { group in
                for _ in 0..<10 { group.addTask { try? await store.beginSignInAttempt(key: "address:x", now: 10, resetAfter: 3600).number } }
                var all: [Int] = []
                for await n in group { if let n { all.append(n) } }
                return all
            }
            #expect(numbers.sorted() == Array(1...10))
        }
    }
}

@Suite struct SignInThrottleTests {
    let throttle = SignInThrottle()

    @Test func backoffDoublesFromTheFifthAccountFailureUpToFifteenMinutes() {
        #expect(throttle.delay(attempt: 4, free: 5) == 0)
        #expect(throttle.delay(attempt: 5, free: 5) == 30)
        #expect(throttle.delay(attempt: 6, free: 5) == 60)
        #expect(throttle.delay(attempt: 7, free: 5) == 120)
        #expect(throttle.delay(attempt: 100, free: 5) == 900)
        let keys = throttle.keys(username: "alice", clientAddress: "192.0.2.1")
        // The address counter allows more (offices behind one NAT) before it locks.
        #expect(throttle.freeFailures(keys.account) == 5)
        #expect(throttle.freeFailures(keys.address!) == 20)
    }

    @Test func ipv6AddressesCountByTheirSlash64() {
        #expect(SignInThrottle.addressBucket("2001:db8:1:2:aaaa::1") == SignInThrottle.addressBucket("2001:db8:1:2:bbbb::2"))
        #expect(SignInThrottle.addressBucket("2001:db8:1:2::1") != SignInThrottle.addressBucket("2001:db8:1:3::1"))
        #expect(SignInThrottle.addressBucket("::ffff:192.0.2.1") == "192.0.2.1")
        #expect(SignInThrottle.addressBucket("192.0.2.1") == "192.0.2.1")
    }
}
