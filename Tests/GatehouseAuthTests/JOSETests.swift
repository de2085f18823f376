import Crypto
import _CryptoExtras
import Foundation
import MCPWire
import Testing

@testable import GatehouseAuth

/// Signs compact JWS tokens the way issuers do, to feed the verifier.
enum Mint {
    static func token(header: JSONObject, claims: JSONObject, sign: (Data) throws -> Data) rethrows -> String {
        let input = Base64URL.encode(Data(JSONWriter.bytes(.object(header)))) + "." + Base64URL.encode(Data(JSONWriter.bytes(.object(claims))))
        return input + "." + Base64URL.encode(try sign(Data(input.utf8)))
    }
}

@Suite struct JOSETests {
    static let rsa = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    static let p256 = P256.Signing.PrivateKey()
    static let ed = Curve25519.Signing.PrivateKey()

    static func rsaJWK(_ key: _RSA.Signing.PublicKey, kid: String) -> JSONObject {
        let p = try! key.getKeyPrimitives()
        return ["kty": "RSA", "kid": .string(kid), "n": .string(Base64URL.encode(p.modulus)), "e": .string(Base64URL.encode(p.publicExponent))]
    }

    @Test func verifiesRS256ES256AndEdDSA() throws {
        let claims: JSONObject = ["iss": "https://issuer", "sub": "alice"]
        let rs = try Mint.token(header: ["alg": "RS256", "kid": "r"], claims: claims) { try Self.rsa.signature(for: $0, padding: .insecurePKCS1v1_5).rawRepresentation }
        let es = try Mint.token(header: ["alg": "ES256", "kid": "e"], claims: claims) { try Self.p256.signature(for: $0).rawRepresentation }
        let eddsa = try Mint.token(header: ["alg": "EdDSA", "kid": "o"], claims: claims) { try Self.ed.signature(for: $0) }
        let keys = try #require(JWK.parseSet(JSONWriter.bytes(["keys": [
            .object(Self.rsaJWK(Self.rsa.publicKey, kid: "r")),
            .object(AuthCrypto.jwk(of: Self.p256.publicKey, kid: "e")),
            ["kty": "OKP", "crv": "Ed25519", "kid": "o", "x": .string(Base64URL.encode(Self.ed.publicKey.rawRepresentation))],
            ["kty": "oct", "kid": "h", "k": "c2VjcmV0"],
        ]])))
        #expect(keys.count == 3, "the symmetric key is not usable for verification")
        for (token, alg, kid) in [(rs, JWSAlgorithm.rs256, "r"), (es, .es256, "e"), (eddsa, .edDSA, "o")] {
            let jwt = try JWT.decode(token)
            let key = try #require(keys.first { $0.kid == kid })
            #expect(key.key.isValid(signature: jwt.signature, for: jwt.signingInput, algorithm: alg))
            // A key never verifies another family's algorithm.
            for other in JWSAlgorithm.allCases where other != alg {
                #expect(!key.key.isValid(signature: jwt.signature, for: jwt.signingInput, algorithm: other))
            }
        }
    }

    @Test func tamperedPayloadFails() throws {
        let token = try Mint.token(header: ["alg": "ES256"], claims: ["sub": "alice"]) { try Self.p256.signature(for: $0).rawRepresentation }
        let parts = token.split(separator: ".").map(String.init)
        let forged = parts[0] + "." + Base64URL.encode(Data(#"{"sub":"mallory"}"#.utf8)) + "." + parts[2]
        let jwt = try JWT.decode(forged)
        #expect(!VerificationKey.p256(Self.p256.publicKey).isValid(signature: jwt.signature, for: jwt.signingInput, algorithm: .es256))
    }

    @Test(arguments: ["", "a.b", "a.b.c.d", "!!!.e30.x", "e30.!!!.x", "WzFd.e30."])
    func malformedTokensAreRefused(_ token: String) {
        #expect(throws: TokenError.self) { try JWT.decode(token) }
    }

    @Test func oversizedTokensAreRefused() {
        #expect(throws: TokenError.self) { try JWT.decode(String(repeating: "a", count: 20000) + ".e30.x") }
    }

    @Test func signedTokensRoundTrip() throws {
        let token = try JWT.sign(claims: ["sub": "bob"], key: Self.p256, kid: "k1")
        let jwt = try JWT.decode(token)
        #expect(jwt.algorithm == "ES256" && jwt.keyID == "k1" && jwt.claims["sub"]?.stringValue == "bob")
        #expect(VerificationKey.p256(Self.p256.publicKey).isValid(signature: jwt.signature, for: jwt.signingInput, algorithm: .es256))
    }

    @Test func pkceS256MatchesRFC7636Example() {
        #expect(AuthCrypto.pkceChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    }

    @Test func passwordHashesVerify() throws {
        let hash = try PasswordHash.make("correct horse", rounds: 1000)
        #expect(PasswordHash.verify("correct horse", against: hash))
        #expect(!PasswordHash.verify("correct horsf", against: hash))
        #expect(!PasswordHash.verify("correct horse", against: "pbkdf2-sha256$10$x$y"), "too few rounds is refused")
        #expect(!PasswordHash.verify("x", against: "plain-text"))
    }
}

@Suite struct NetworkAddressTests {
    @Test(arguments: ["127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
                      "::1", "::", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "224.0.0.1", "not-an-ip"])
    func internalAddresses(_ address: String) { #expect(NetworkAddress.isInternal(address)) }

    @Test(arguments: ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8",
                      "64:ff9b::808:808", "2002:808:808::1", "::8.8.8.8", "::ffff:0:8.8.8.8"])
    func publicAddresses(_ address: String) { #expect(!NetworkAddress.isInternal(address)) }

    /// IPv6 forms that carry an internal IPv4 address (NAT64, 6to4, IPv4-compatible,
    /// IPv4-translated), Teredo and local-use NAT64 whole, other reserved IPv6 ranges.
    @Test(arguments: ["64:ff9b::7f00:1", "64:ff9b::127.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b::10.0.0.1", "64:ff9b::c0a8:101",
                      "2002:7f00:1::", "2002:a9fe:a9fe::1", "2002:0a00:0001:1::1", "2002:c0a8:0101::",
                      "::127.0.0.1", "::10.0.0.1", "::169.254.169.254", "::7f00:1",
                      "::ffff:0:127.0.0.1", "::ffff:0:a00:1",
                      "2001:0:4136:e378:8000:63bf:3fff:fdd2", "64:ff9b:1::808:808", "fec0::1", "100::1", "2001:db8::1",
                      "240.0.0.1", "255.255.255.255"])
    func internalAddressesInsideIPv6(_ address: String) { #expect(NetworkAddress.isInternal(address)) }

    @Test func resolvesLiterals() {
        #expect(NetworkAddress.resolve("127.0.0.1") == ["127.0.0.1"])
        #expect(NetworkAddress.resolve("[::1]") == ["::1"])
    }
}
