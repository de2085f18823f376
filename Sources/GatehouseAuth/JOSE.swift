import Crypto
import _CryptoExtras
import Foundation
import MCPWire

/// The JWS algorithms Gatehouse accepts. Anything else (`none`, HS*, PS*, RS384...) is refused
/// by name before any key is looked at.
public enum JWSAlgorithm: String, Sendable, CaseIterable {
    case rs256 = "RS256"
    case es256 = "ES256"
    case edDSA = "EdDSA"
}

/// A public key usable for one algorithm family. The key's type decides which algorithm it
/// verifies, so a token cannot choose to have an RSA key used as an HMAC secret.
public enum VerificationKey: Sendable {
    case rsa(_RSA.Signing.PublicKey)
    case p256(P256.Signing.PublicKey)
    case ed25519(Curve25519.Signing.PublicKey)

    public func verifies(_ algorithm: JWSAlgorithm) -> Bool {
        switch (self, algorithm) {
        case (.rsa, .rs256), (.p256, .es256), (.ed25519, .edDSA): true
        default: false
        }
    }

    /// Verifies a JWS signature. Its length must be exactly the algorithm's (RS256: the
    /// modulus length, RFC 7518 §3.3; ES256: 64 bytes R || S, §3.4; EdDSA: 64 bytes, RFC 8037)
    /// — no DER, no leading zeros dropped or added.
    ///
    /// ES256 and high S: a signature (r, s) and (r, n − s) both verify, and this accepts both.
    /// RFC 7515/7518 do not require low-S, and issuers that sign with generic ECDSA (cloud KMS,
    /// HSMs, Java, OpenSSL) do not normalize S, so refusing high S would refuse valid tokens of
    /// real identity providers. The malleability gives an attacker nothing here: a second
    /// encoding of a signature signs the same header and claims, and nothing in Gatehouse uses
    /// a token's signature bytes as an identifier (revocation goes by `gid`/`jti` and grants,
    /// the validated-token cache only saves work). r and s must still be in [1, n − 1]
    /// (BoringSSL checks).
    public func isValid(signature: Data, for input: Data, algorithm: JWSAlgorithm) -> Bool {
        guard verifies(algorithm) else { return false }
        switch self {
        case .rsa(let key):
            guard signature.count == (key.keySizeInBits + 7) / 8 else { return false }
            return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: input, padding: .insecurePKCS1v1_5)
        case .p256(let key):
            guard signature.count == 64, let sig = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(sig, for: input)
        case .ed25519(let key):
            guard signature.count == 64 else { return false }
            return key.isValidSignature(signature, for: input)
        }
    }
}

/// One key of a JWKS.
public struct JWK: Sendable {
    public var kid: String?
    /// The `alg` the key is published for, if named.
    public var algorithm: String?
    public var key: VerificationKey

    /// Parses one JWK; keys Gatehouse cannot use (other types, encryption keys) are nil.
    public static func parse(_ object: JSONObject) -> JWK? {
        if let use = object["use"]?.stringValue, use != "sig" { return nil }
        let kid = object["kid"]?.stringValue
        let alg = object["alg"]?.stringValue
        func bytes(_ name: String) -> Data? { object[name]?.stringValue.flatMap(Base64URL.decode) }
        switch object["kty"]?.stringValue {
        case "RSA":
            guard let n = bytes("n"), let e = bytes("e"), let key = try? _RSA.Signing.PublicKey(n: n, e: e) else { return nil }
            return JWK(kid: kid, algorithm: alg, key: .rsa(key))
        case "EC":
            guard object["crv"]?.stringValue == "P-256", let x = bytes("x"), let y = bytes("y"), x.count == 32, y.count == 32,
                  let key = try? P256.Signing.PublicKey(rawRepresentation: x + y)
            else { return nil }
            return JWK(kid: kid, algorithm: alg, key: .p256(key))
        case "OKP":
            guard object["crv"]?.stringValue == "Ed25519", let x = bytes("x"), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: x) else { return nil }
            return JWK(kid: kid, algorithm: alg, key: .ed25519(key))
        default:
            return nil
        }
    }

    /// Every usable key of a JWKS document.
    public static func parseSet(_ bytes: some Collection<UInt8>) -> [JWK]? {
        guard let value = try? JSONParser.parse(bytes), let keys = value["keys"]?.arrayValue else { return nil }
        return keys.compactMap { $0.objectValue.flatMap(JWK.parse) }
    }
}

/// Why a token was refused. The description goes to the client in `error_description`, so it
/// names the rule, never a secret.
public enum TokenError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    case unsupportedAlgorithm(String)
    case unknownKey
    case badSignature
    case untrustedIssuer
    case wrongAudience
    case expired
    case notYetValid
    case missingClaim(String)
    case revoked
    case issuerUnavailable
    case inactive

    public var description: String {
        switch self {
        case .malformed(let why): "the token is malformed: \(why)"
        case .unsupportedAlgorithm(let alg): "the token's algorithm '\(alg)' is not accepted (RS256, ES256 and EdDSA are)"
        case .unknownKey: "the token is signed with a key the issuer does not publish"
        case .badSignature: "the token's signature is invalid"
        case .untrustedIssuer: "the token's issuer is not trusted here"
        case .wrongAudience: "the token is not meant for this resource (audience mismatch)"
        case .expired: "the token has expired"
        case .notYetValid: "the token is not valid yet"
        case .missingClaim(let name): "the token lacks the '\(name)' claim"
        case .revoked: "the token has been revoked"
        case .issuerUnavailable: "the token's issuer cannot be reached to get its keys"
        case .inactive: "the token is not active"
        }
    }

    /// The log reason (a short, stable label for metrics).
    public var reason: String {
        switch self {
        case .malformed: "malformed"
        case .unsupportedAlgorithm: "algorithm"
        case .unknownKey: "unknown_kid"
        case .badSignature: "signature"
        case .untrustedIssuer: "issuer"
        case .wrongAudience: "audience"
        case .expired: "expired"
        case .notYetValid: "not_yet_valid"
        case .missingClaim: "missing_claim"
        case .revoked: "revoked"
        case .issuerUnavailable: "issuer_unavailable"
        case .inactive: "inactive"
        }
    }
}

/// A compact JWS, decoded but not yet trusted.
public struct JWT: Sendable {
    public var header: JSONObject
    public var claims: JSONObject
    public var signingInput: Data
    public var signature: Data

    public var algorithm: String? { header["alg"]?.stringValue }
    public var keyID: String? { header["kid"]?.stringValue }
    public var issuer: String? { claims["iss"]?.stringValue }

    /// Tokens over 16 KB are refused before decoding.
    public static let maxLength = 16 * 1024

    public static func looksLikeJWT(_ token: String) -> Bool {
        token.utf8.count(where: { $0 == UInt8(ascii: ".") }) == 2
    }

    public static func decode(_ token: String) throws(TokenError) -> JWT {
        guard token.utf8.count <= maxLength else { throw .malformed("longer than \(maxLength) bytes") }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformed("a JWT has three dot-separated parts") }
        guard let headerBytes = strictBase64URL(parts[0]), let payloadBytes = strictBase64URL(parts[1]), let signature = strictBase64URL(parts[2])
        else { throw .malformed("a part is not base64url without padding") }
        guard let header = (try? JSONParser.parse(headerBytes, maxDepth: 8))?.objectValue else { throw .malformed("the header is not a JSON object") }
        guard let claims = (try? JSONParser.parse(payloadBytes, maxDepth: 16))?.objectValue else { throw .malformed("the payload is not a JSON object") }
        if header["crit"] != nil { throw .malformed("critical header parameters are not supported") }
        let input = Data(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        return JWT(header: header, claims: claims, signingInput: input, signature: signature)
    }

    /// RFC 7515 §2 base64url: only `A-Z a-z 0-9 - _`, no `=` padding, no whitespace, and the
    /// canonical encoding (unused bits of the last character zero, RFC 4648 §3.5), so one
    /// token has exactly one spelling. Anything else is nil.
    static func strictBase64URL(_ text: Substring) -> Data? {
        let bytes = Array(text.utf8)
        guard bytes.count % 4 != 1 else { return nil }
        var last: UInt8 = 0
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): last = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): last = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): last = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "-"): last = 62
            case UInt8(ascii: "_"): last = 63
            default: return nil
            }
        }
        // 2 characters carry 1 byte (4 spare bits), 3 carry 2 (2 spare bits).
        switch bytes.count % 4 {
        case 2: if last & 0x0f != 0 { return nil }
        case 3: if last & 0x03 != 0 { return nil }
        default: break
        }
        return Base64URL.decode(String(text))
    }

    /// Signs claims with ES256 (the embedded authorization server's tokens).
    public static func sign(claims: JSONObject, key: P256.Signing.PrivateKey, kid: String) throws -> String {
        let header: JSONObject = ["alg": "ES256", "typ": "at+jwt", "kid": .string(kid)]
        let input = Base64URL.encode(Data(JSONWriter.bytes(.object(header)))) + "." + Base64URL.encode(Data(JSONWriter.bytes(.object(claims))))
        let signature = try key.signature(for: Data(input.utf8))
        return input + "." + Base64URL.encode(signature.rawRepresentation)
    }
}

/// Small helpers shared by the resource and authorization servers.
public enum AuthCrypto {
    /// Random bytes, base64url: tokens, codes, ids.
    public static func randomToken(bytes count: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: count)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &generator) }
        return Base64URL.encode(Data(bytes))
    }

    /// Hex SHA-256: how tokens, codes, keys and secrets are stored and cached.
    public static func hash(_ text: String) -> String {
        // On the hot path of every authenticated request (the validated-token cache key):
        // hex by table, not String(format:) per byte.
        let digest = SHA256.hash(data: Data(text.utf8))
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in digest {
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Constant-time comparison of two strings.
    public static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in x.indices { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    /// PKCE S256: base64url(SHA-256(verifier)).
    public static func pkceChallenge(_ verifier: String) -> String {
        Base64URL.encode(Data(SHA256.hash(data: Data(verifier.utf8))))
    }

    /// The JWK of the embedded AS's public key.
    public static func jwk(of key: P256.Signing.PublicKey, kid: String) -> JSONObject {
        let raw = key.rawRepresentation
        return ["kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": .string(kid),
                "x": .string(Base64URL.encode(raw.prefix(32))), "y": .string(Base64URL.encode(raw.suffix(32)))]
    }
}
