import Crypto
import _CryptoExtras
import Foundation
import MCPWire

/// Local users' password hashes: `pbkdf2-sha256$<rounds>$<salt>$<hash>` (base64url fields).
public enum PasswordHash {
    public static let defaultRounds = 210_000

    public static func make(_ password: String, rounds: Int = defaultRounds) throws -> String {
        precondition(rounds >= 1000, "at least 1000 rounds")
        let salt = AuthCrypto.randomToken(bytes: 16)
        let key = try KDF.Insecure.PBKDF2.deriveKey(from: Data(password.utf8), salt: Data(salt.utf8), using: .sha256, outputByteCount: 32,
                                                    unsafeUncheckedRounds: rounds)
        return "pbkdf2-sha256$\(rounds)$\(salt)$\(key.withUnsafeBytes { Base64URL.encode(Data($0)) })"
    }

    public static func verify(_ password: String, against encoded: String) -> Bool {
        let parts = encoded.split(separator: "$").map(String.init)
        guard parts.count == 4, parts[0] == "pbkdf2-sha256", let rounds = Int(parts[1]), rounds >= 1000, rounds <= 10_000_000 else { return false }
        guard let key = try? KDF.Insecure.PBKDF2.deriveKey(from: Data(password.utf8), salt: Data(parts[2].utf8), using: .sha256,
                                                           outputByteCount: 32, unsafeUncheckedRounds: rounds)
        else { return false }
        return AuthCrypto.equal(key.withUnsafeBytes { Base64URL.encode(Data($0)) }, parts[3])
    }

    /// A hash to verify against when the user does not exist, so timing does not tell.
    static let decoy: String = (try? make("gatehouse-decoy-password")) ?? "pbkdf2-sha256$210000$x$y"
}
