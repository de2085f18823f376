import Crypto
import Foundation
import X509
import _CryptoExtras

extension Builtins {
    static let cryptoAndJWT: [Builtin] = [
        Builtin("crypto.sha256", 1) { a, _ in .string(hexString(Array(SHA256.hash(data: Array(try argString(a, 0).utf8))))) },
        Builtin("crypto.sha1", 1) { a, _ in .string(hexString(Array(Insecure.SHA1.hash(data: Array(try argString(a, 0).utf8))))) },
        Builtin("crypto.md5", 1) { a, _ in .string(hexString(Array(Insecure.MD5.hash(data: Array(try argString(a, 0).utf8))))) },
        Builtin("crypto.hmac.sha256", 2) { a, _ in
            .string(hexString(Array(HMAC<SHA256>.authenticationCode(for: Array(try argString(a, 0).utf8), using: SymmetricKey(data: Array(try argString(a, 1).utf8))))))
        },
        Builtin("crypto.hmac.sha512", 2) { a, _ in
            .string(hexString(Array(HMAC<SHA512>.authenticationCode(for: Array(try argString(a, 0).utf8), using: SymmetricKey(data: Array(try argString(a, 1).utf8))))))
        },
        Builtin("crypto.hmac.sha1", 2) { a, _ in
            .string(hexString(Array(HMAC<Insecure.SHA1>.authenticationCode(for: Array(try argString(a, 0).utf8), using: SymmetricKey(data: Array(try argString(a, 1).utf8))))))
        },
        Builtin("crypto.hmac.md5", 2) { a, _ in
            .string(hexString(Array(HMAC<Insecure.MD5>.authenticationCode(for: Array(try argString(a, 0).utf8), using: SymmetricKey(data: Array(try argString(a, 1).utf8))))))
        },
        Builtin("crypto.hmac.equal", 2) { a, _ in
            let x = Array(try argString(a, 0).utf8), y = Array(try argString(a, 1).utf8)
            guard x.count == y.count else { return .false }
            var diff: UInt8 = 0
            for i in 0..<x.count { diff |= x[i] ^ y[i] }
            return .bool(diff == 0)
        },
        Builtin("io.jwt.decode", 1) { a, _ in
            let t = try JWT.decode(try argString(a, 0))
            return .array([t.header, t.payload, .string(hexString(t.signature))])
        },
        Builtin("io.jwt.verify_hs256", 2) { a, _ in .bool(try JWT.verify(try argString(a, 0), alg: "HS256", key: try argString(a, 1))) },
        Builtin("io.jwt.verify_hs384", 2) { a, _ in .bool(try JWT.verify(try argString(a, 0), alg: "HS384", key: try argString(a, 1))) },
        Builtin("io.jwt.verify_hs512", 2) { a, _ in .bool(try JWT.verify(try argString(a, 0), alg: "HS512", key: try argString(a, 1))) },
        Builtin("io.jwt.verify_rs256", 2) { a, _ in .bool(try JWT.verify(try argString(a, 0), alg: "RS256", key: try argString(a, 1))) },
        Builtin("io.jwt.verify_rs384", 2) { a, _ in .bool(try JWT.verify(try argString(a, 0), alg: "RS384", key: try argString(a, 1))) },
        Builtin("io.jwt.verify_rs512", 2) { a, _ in .bool(try JWT.verify(try argString(a, 0), alg: "RS512", key: try argString(a, 1))) },
        Builtin("io.jwt.verify_ps256", 2) { a, _ in .bool(try JWT.verify(try argString(a, 0), alg: "PS256", key: try argString(a, 1))) },
        Builtin("io.jwt.verify_ps384", 2) { a, _ in .bool(try JWT.verify(try argString(a, 0), alg: "PS384", key: try argString(a, 1))) },
        Builtin("io.jwt.verify_ps512", 2) { a, _ in .bool(try JWT.verify(try argString(a, 0), alg: "PS512", key: try argString(a, 1))) },
        Builtin("io.jwt.verify_es256", 2) { a, _ in .bool(try JWT.verify(try argString(a, 0), alg: "ES256", key: try argString(a, 1))) },
        Builtin("io.jwt.verify_es384", 2) { a, _ in .bool(try JWT.verify(try argString(a, 0), alg: "ES384", key: try argString(a, 1))) },
        Builtin("io.jwt.verify_es512", 2) { a, _ in .bool(try JWT.verify(try argString(a, 0), alg: "ES512", key: try argString(a, 1))) },
        Builtin("io.jwt.decode_verify", 2) { a, ctx in
            try JWT.decodeVerify(try argString(a, 0), try argObject(a, 1), nowNs: Int(ctx.nowNs))
        },
    ]
}

enum JWT {
    struct Token {
        let header: Value
        let payload: Value
        let signature: [UInt8]
        let signingInput: [UInt8]
    }

    static func decode(_ token: String) throws -> Token {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw BuiltinError("encoded JWT had no period separators") }
        guard let h = Builtins.base64urlDecode(String(parts[0])), let p = Builtins.base64urlDecode(String(parts[1])),
            let s = Builtins.base64urlDecode(String(parts[2]))
        else { throw BuiltinError("JWT is not valid base64url") }
        let header: Value, payload: Value
        do {
            header = try JSON.parse(bytes: Array(h))
            payload = try JSON.parse(bytes: Array(p))
        } catch {
            throw BuiltinError("JWT header or payload is not valid JSON")
        }
        guard case .object = header else { throw BuiltinError("JWT header is not an object") }
        if case .string("JWT")? = header["cty"] { throw BuiltinError("nested JWTs are not supported") }
        guard case .object = payload else { throw BuiltinError("JWT payload is not an object") }
        return Token(header: header, payload: payload, signature: Array(s), signingInput: Array((parts[0] + "." + parts[1]).utf8))
    }

    /// Verifies the signature with `key`: an HMAC secret (HS*), or a PEM public key / JWK / JWK set (RS*, PS*, ES*).
    /// OPA's io.jwt.verify_*: only the signature is decoded; the header and payload are not read
    /// (a token whose header is not JSON simply does not verify).
    static func verify(_ token: String, alg: String, key: String) throws -> Bool {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw BuiltinError("encoded JWT had no period separators") }
        guard let s = Builtins.base64urlDecode(String(parts[2])) else { throw BuiltinError("JWT signature is not valid base64url") }
        let t = Token(header: .null, payload: .null, signature: Array(s), signingInput: Array((parts[0] + "." + parts[1]).utf8))
        return try verifySignature(t, alg: alg, key: key)
    }

    static func verifySignature(_ t: Token, alg: String, key: String) throws -> Bool {
        let data = t.signingInput
        switch alg {
        case "HS256": return HMAC<SHA256>.isValidAuthenticationCode(t.signature, authenticating: data, using: SymmetricKey(data: Array(key.utf8)))
        case "HS384": return HMAC<SHA384>.isValidAuthenticationCode(t.signature, authenticating: data, using: SymmetricKey(data: Array(key.utf8)))
        case "HS512": return HMAC<SHA512>.isValidAuthenticationCode(t.signature, authenticating: data, using: SymmetricKey(data: Array(key.utf8)))
        default: break
        }
        for k in try publicKeys(key) {
            if verifyAsymmetric(alg: alg, key: k, data: data, signature: t.signature) { return true }
        }
        return false
    }

    enum PublicKey {
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
        case p521(P521.Signing.PublicKey)
    }

    static func publicKeys(_ key: String) throws -> [PublicKey] {
        let trimmed = key.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("-----BEGIN") {
            if trimmed.contains("CERTIFICATE") { return try certificateKeys(trimmed) }
            if let k = try? _RSA.Signing.PublicKey(pemRepresentation: trimmed) { return [.rsa(k)] }
            if let k = try? P256.Signing.PublicKey(pemRepresentation: trimmed) { return [.p256(k)] }
            if let k = try? P384.Signing.PublicKey(pemRepresentation: trimmed) { return [.p384(k)] }
            if let k = try? P521.Signing.PublicKey(pemRepresentation: trimmed) { return [.p521(k)] }
            throw BuiltinError("failed to parse a PEM public key")
        }
        guard let jwk = try? JSON.parse(trimmed), case .object = jwk else { throw BuiltinError("failed to parse a PEM public key or JWK") }
        if case .array(let keys)? = jwk["keys"] { return keys.compactMap { jwkKey($0) } }
        return jwkKey(jwk).map { [$0] } ?? []
    }

    /// The public keys of the certificates in a PEM bundle.
    static func certificateKeys(_ pem: String) throws -> [PublicKey] {
        var out: [PublicKey] = []
        for cert in try X509Support.certificates(pem) {
            let k = cert.publicKey
            if let r = _RSA.Signing.PublicKey(k) { out.append(.rsa(r)) }
            else if let e = P256.Signing.PublicKey(k) { out.append(.p256(e)) }
            else if let e = P384.Signing.PublicKey(k) { out.append(.p384(e)) }
            else if let e = P521.Signing.PublicKey(k) { out.append(.p521(e)) }
        }
        return out
    }

    static func jwkKey(_ v: Value) -> PublicKey? {
        func b(_ name: String) -> Data? { v[name]?.stringValue.flatMap { Builtins.base64urlDecode($0) } }
        switch v["kty"]?.stringValue {
        case "RSA":
            guard let n = b("n"), let e = b("e"), let k = try? _RSA.Signing.PublicKey(n: n, e: e) else { return nil }
            return .rsa(k)
        case "EC":
            guard let x = b("x"), let y = b("y") else { return nil }
            switch v["crv"]?.stringValue {
            case "P-256": return (try? P256.Signing.PublicKey(rawRepresentation: x + y)).map { .p256($0) }
            case "P-384": return (try? P384.Signing.PublicKey(rawRepresentation: x + y)).map { .p384($0) }
            case "P-521": return (try? P521.Signing.PublicKey(rawRepresentation: x + y)).map { .p521($0) }
            default: return nil
            }
        default: return nil
        }
    }

    static func verifyAsymmetric(alg: String, key: PublicKey, data: [UInt8], signature: [UInt8]) -> Bool {
        switch (alg, key) {
        case ("RS256", .rsa(let k)): return k.isValidSignature(.init(rawRepresentation: signature), for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5)
        case ("RS384", .rsa(let k)): return k.isValidSignature(.init(rawRepresentation: signature), for: SHA384.hash(data: data), padding: .insecurePKCS1v1_5)
        case ("RS512", .rsa(let k)): return k.isValidSignature(.init(rawRepresentation: signature), for: SHA512.hash(data: data), padding: .insecurePKCS1v1_5)
        case ("PS256", .rsa(let k)): return k.isValidSignature(.init(rawRepresentation: signature), for: SHA256.hash(data: data), padding: .PSS)
        case ("PS384", .rsa(let k)): return k.isValidSignature(.init(rawRepresentation: signature), for: SHA384.hash(data: data), padding: .PSS)
        case ("PS512", .rsa(let k)): return k.isValidSignature(.init(rawRepresentation: signature), for: SHA512.hash(data: data), padding: .PSS)
        case ("ES256", .p256(let k)):
            guard let s = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return k.isValidSignature(s, for: SHA256.hash(data: data))
        case ("ES384", .p384(let k)):
            guard let s = try? P384.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return k.isValidSignature(s, for: SHA384.hash(data: data))
        case ("ES512", .p521(let k)):
            guard let s = try? P521.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return k.isValidSignature(s, for: SHA512.hash(data: data))
        default: return false
        }
    }

    /// io.jwt.decode_verify: [valid, header, payload]; constraints: cert | secret, alg, iss, aud, time (ns).
    static func decodeVerify(_ token: String, _ c: [Value: Value], nowNs: Int) throws -> Value {
        let invalid = Value.array([.false, .emptyObject, .emptyObject])
        for k in c.keys {
            guard case .string(let ks) = k, ["cert", "secret", "alg", "iss", "aud", "time"].contains(ks) else {
                throw BuiltinError("unknown token validation constraint: \(k)")
            }
        }
        guard let t = try? decode(token) else { return invalid }
        guard case .string(let alg)? = t.header["alg"] else { return invalid }
        if case .string(let want)? = c[.string("alg")], want != alg { return invalid }
        let ok: Bool
        if case .string(let secret)? = c[.string("secret")] {
            guard alg.hasPrefix("HS") else { return invalid }
            ok = try verifySignature(t, alg: alg, key: secret)
        } else if case .string(let cert)? = c[.string("cert")] {
            guard !alg.hasPrefix("HS") else { return invalid }
            ok = try verifySignature(t, alg: alg, key: cert)
        } else {
            throw BuiltinError("no key or secret to verify the token with")
        }
        guard ok else { return invalid }
        let now: Double
        if case .number(let n)? = c[.string("time")] { now = n.doubleValue / 1e9 } else { now = Double(nowNs) / 1e9 }
        if case .number(let exp)? = t.payload["exp"], now >= exp.doubleValue { return invalid }
        if case .number(let nbf)? = t.payload["nbf"], now < nbf.doubleValue { return invalid }
        if case .string(let iss)? = c[.string("iss")], t.payload["iss"] != .string(iss) { return invalid }
        if let aud = c[.string("aud")] {
            switch t.payload["aud"] {
            case .string(let s)?: if .string(s) != aud { return invalid }
            case .array(let arr)?: if !arr.contains(aud) { return invalid }
            default: return invalid
            }
        } else if t.payload["aud"] != nil {
            return invalid
        }
        return .array([.true, t.header, t.payload])
    }
}
