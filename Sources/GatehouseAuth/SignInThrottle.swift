import Foundation

/// Backoff for failed password sign-ins on the embedded authorization server's page, counted in
/// the store so every replica sees the same counts.
///
/// Two counters: one per account (the username's hash; unknown names count too, so the answer
/// does not tell them apart) and one per client address (an IPv6 address counts by its /64).
/// An attempt is counted before its password is checked, so concurrent guesses cannot all pass
/// one check; a successful attempt is taken back. The first `freeFailures` attempts of a
/// counter cost nothing; the attempt that reaches that number locks the counter for
/// `baseDelay` seconds (unless it succeeds), doubling with every further one up to `maxDelay`.
/// While locked, the password is not checked and nothing is counted. A counter is forgotten
/// `resetAfter` seconds after its last attempt; an account's counter also after a successful
/// sign-in (an address's is not: one good account must not let an address guess others).
struct SignInThrottle: Sendable {
    var accountFreeFailures = 5
    var addressFreeFailures = 20
    var baseDelay: Int64 = 30
    var maxDelay: Int64 = 900
    var resetAfter: Int64 = 3600

    struct Keys: Sendable {
        var account: String
        var address: String?
        var all: [String] { [account] + (address.map { [$0] } ?? []) }
    }

    func keys(username: String, clientAddress: String?) -> Keys {
        Keys(account: "account:" + AuthCrypto.hash(username), address: clientAddress.map { "address:" + Self.addressBucket($0) })
    }

    func freeFailures(_ key: String) -> Int { key.hasPrefix("address:") ? addressFreeFailures : accountFreeFailures }

    /// How long the attempt numbered `attempt` locks its counter if it fails.
    func delay(attempt: Int, free: Int) -> Int64 {
        guard attempt >= free else { return 0 }
        return min(baseDelay << Int64(min(attempt - free, 20)), maxDelay)
    }

    /// An IPv4 address as is; an IPv6 address by its /64 (one host usually has all of it).
    static func addressBucket(_ address: String) -> String {
        var v6 = in6_addr()
        guard address.contains(":"), inet_pton(AF_INET6, address, &v6) == 1 else { return address }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            return bytes[12..<16].map { String($0) }.joined(separator: ".")  // IPv4-mapped
        }
        return bytes[0..<8].map { String(format: "%02x", $0) }.joined() + "::/64"
    }
}
