import Crypto
import _CryptoExtras
import Foundation
import MCPWire
import Testing

@testable import GatehouseAuth

/// RFC 7515 strictness of compact JWS parsing and signature encodings.
@Suite struct JOSEStrictnessTests {
    static let p256 = P256.Signing.PrivateKey()
    static let ed = Curve25519.Signing.PrivateKey()
    static let rsa = try! _RSA.Signing.PrivateKey(keySize: .bits2048)

    static func es256Token(_ claims: JSONObject = ["iss": "https://issuer", "sub": "alice"]) -> String {
        Mint.token(header: ["alg": "ES256", "kid": "e"], claims: claims) { try! Self.p256.signature(for: $0).rawRepresentation }
    }

    static func verifies(_ token: String) -> Bool {
        guard let jwt = try? JWT.decode(token) else { return false }
        return VerificationKey.p256(Self.p256.publicKey).isValid(signature: jwt.signature, for: jwt.signingInput, algorithm: .es256)
    }

    @Test func paddedSegmentsAreRefused() {
        // A 64-byte signature is 86 characters: standard base64 would pad it with "==".
        let token = Self.es256Token()
        #expect(Self.verifies(token))
        #expect(throws: TokenError.self) { try JWT.decode(token + "==") }
        let parts = token.split(separator: ".").map(String.init)
        let padded = parts[0] + String(repeating: "=", count: (4 - parts[0].count % 4) % 4)
        if padded != parts[0] {
            #expect(throws: TokenError.self) { try JWT.decode(padded + "." + parts[1] + "." + parts[2]) }
        }
    }

    @Test func standardBase64AlphabetIsRefused() throws {
        // Find a signature whose base64url form has '-' or '_', then spell it with '+' and '/'.
        var token = Self.es256Token()
        while !(token.split(separator: ".")[2].contains("-") || token.split(separator: ".")[2].contains("_")) { token = Self.es256Token() }
        let parts = token.split(separator: ".").map(String.init)
        let standard = parts[2].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        #expect(throws: TokenError.self) { try JWT.decode(parts[0] + "." + parts[1] + "." + standard) }
        #expect(JWT.strictBase64URL("ab+/") == nil)
        #expect(JWT.strictBase64URL("ab c") == nil)
        #expect(JWT.strictBase64URL("abc=") == nil)
        #expect(JWT.strictBase64URL("a") == nil)
        #expect(JWT.strictBase64URL("e30") == Data("{}".utf8))
        #expect(JWT.strictBase64URL("") == Data())
    }

    @Test func nonCanonicalTrailingBitsAreRefused() {
        // "e30" is "{}"; "e31" decodes to the same bytes with a spare bit set.
        #expect(JWT.strictBase64URL("e31") == nil)
        #expect(JWT.strictBase64URL("QQ") == Data("A".utf8))
        #expect(JWT.strictBase64URL("QR") == nil)
    }

    @Test func signaturesOfTheWrongLengthAreRefused() throws {
        let input = Data("header.payload".utf8)
        let es = try Self.p256.signature(for: input).rawRepresentation
        let es256 = VerificationKey.p256(Self.p256.publicKey)
        #expect(es256.isValid(signature: es, for: input, algorithm: .es256))
        #expect(!es256.isValid(signature: es + [0], for: input, algorithm: .es256))
        #expect(!es256.isValid(signature: Data([0]) + es, for: input, algorithm: .es256))
        #expect(!es256.isValid(signature: es.prefix(63), for: input, algorithm: .es256))
        let der = try Self.p256.signature(for: input).derRepresentation
        #expect(!es256.isValid(signature: der, for: input, algorithm: .es256), "DER is not the JWS encoding")

        let ed = try Self.ed.signature(for: input)
        let eddsa = VerificationKey.ed25519(Self.ed.publicKey)
        #expect(eddsa.isValid(signature: ed, for: input, algorithm: .edDSA))
        #expect(!eddsa.isValid(signature: ed + [0], for: input, algorithm: .edDSA))

        let rs = try Self.rsa.signature(for: input, padding: .insecurePKCS1v1_5).rawRepresentation
        let rs256 = VerificationKey.rsa(Self.rsa.publicKey)
        #expect(rs256.isValid(signature: rs, for: input, algorithm: .rs256))
        #expect(!rs256.isValid(signature: Data([0]) + rs, for: input, algorithm: .rs256))
        #expect(!rs256.isValid(signature: rs + [0], for: input, algorithm: .rs256))
    }

    /// The decision (see `VerificationKey.isValid`): high-S ES256 signatures are accepted, as
    /// issuers that do not normalize S produce them.
    @Test func highSSignaturesAreAcceptedByDecision() throws {
        let input = Data("header.payload".utf8)
        let raw = try Self.p256.signature(for: input).rawRepresentation
        let r = Array(raw.prefix(32)), s = Array(raw.suffix(32))
        let flipped = Data(r + Self.subtract(Self.p256Order, s))
        #expect(flipped != raw)
        let key = VerificationKey.p256(Self.p256.publicKey)
        #expect(key.isValid(signature: raw, for: input, algorithm: .es256))
        #expect(key.isValid(signature: flipped, for: input, algorithm: .es256))
        // s = 0 and s = n are never valid.
        #expect(!key.isValid(signature: Data(r + [UInt8](repeating: 0, count: 32)), for: input, algorithm: .es256))
        #expect(!key.isValid(signature: Data(r + Self.p256Order), for: input, algorithm: .es256))
    }

    static let p256Order: [UInt8] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
    ]

    /// a − b for 32-byte big-endian numbers, a ≥ b.
    static func subtract(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var borrow = 0
        for i in stride(from: 31, through: 0, by: -1) {
            var d = Int(a[i]) - Int(b[i]) - borrow
            borrow = d < 0 ? 1 : 0
            if d < 0 { d += 256 }
            out[i] = UInt8(d)
        }
        return out
    }
}
