import Crypto
import Foundation
import _CryptoExtras

extension Builtins {
    static let jwtSign: [Builtin] = [
        Builtin("io.jwt.encode_sign", 3) { a, _ in
            let header = try argObject(a, 0), payload = try argObject(a, 1), key = try argObject(a, 2)
            return .string(try JWT.sign(header: JSON.serialize(.object(header)), payload: JSON.serialize(.object(payload)),
                                        alg: header[.string("alg")], key: .object(key)))
        },
        Builtin("io.jwt.encode_sign_raw", 3) { a, _ in
            let header = try argString(a, 0), payload = try argString(a, 1), key = try argString(a, 2)
            guard let h = try? JSON.parse(header), case .object = h else { throw BuiltinError("invalid JWT header: not a JSON object") }
            guard let k = try? JSON.parse(key), case .object = k else { throw BuiltinError("invalid JWK: not a JSON object") }
            guard (try? JSON.parse(payload)) != nil else { throw BuiltinError("invalid JWT payload: not JSON") }
            return .string(try JWT.sign(header: header, payload: payload, alg: h["alg"], key: k))
        },
    ]
}

extension JWT {
    /// base64url(header).base64url(payload).base64url(signature), the header and payload taken as given.
    static func sign(header: String, payload: String, alg: Value?, key: Value) throws -> String {
        guard case .string(let alg)? = alg else { throw BuiltinError("JWT header has no alg") }
        let input = Builtins.base64url(Data(header.utf8), pad: false) + "." + Builtins.base64url(Data(payload.utf8), pad: false)
        let data = Array(input.utf8)
        let sig = try signature(alg: alg, key: key, data: data)
        return input + "." + Builtins.base64url(Data(sig), pad: false)
    }

    static func signature(alg: String, key: Value, data: [UInt8]) throws -> [UInt8] {
        func b(_ name: String) throws -> Data {
            guard case .string(let s)? = key[name], let d = Builtins.base64urlDecode(s) else { throw BuiltinError("JWK has no valid \(name)") }
            return d
        }
        func rsa() throws -> _RSA.Signing.PrivateKey {
            guard key["kty"]?.stringValue == "RSA" else { throw BuiltinError("\(alg) needs an RSA key") }
            do { return try _RSA.Signing.PrivateKey(n: try b("n"), e: try b("e"), d: try b("d"), p: try b("p"), q: try b("q")) } catch let e as BuiltinError { throw e } catch { throw BuiltinError("invalid RSA key: \(error)") }
        }
        switch alg {
        case "HS256", "HS384", "HS512":
            guard key["kty"]?.stringValue == "oct" else { throw BuiltinError("\(alg) needs a symmetric (oct) key") }
            let k = SymmetricKey(data: try b("k"))
            switch alg {
            case "HS256": return Array(HMAC<SHA256>.authenticationCode(for: data, using: k))
            case "HS384": return Array(HMAC<SHA384>.authenticationCode(for: data, using: k))
            default: return Array(HMAC<SHA512>.authenticationCode(for: data, using: k))
            }
        case "RS256": return Array(try rsa().signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation)
        case "RS384": return Array(try rsa().signature(for: SHA384.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation)
        case "RS512": return Array(try rsa().signature(for: SHA512.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation)
        case "PS256": return Array(try rsa().signature(for: SHA256.hash(data: data), padding: .PSS).rawRepresentation)
        case "PS384": return Array(try rsa().signature(for: SHA384.hash(data: data), padding: .PSS).rawRepresentation)
        case "PS512": return Array(try rsa().signature(for: SHA512.hash(data: data), padding: .PSS).rawRepresentation)
        case "ES256", "ES384", "ES512":
            guard key["kty"]?.stringValue == "EC" else { throw BuiltinError("\(alg) needs an EC key") }
            let d = try b("d")
            do {
                switch (alg, key["crv"]?.stringValue) {
                case ("ES256", "P-256"): return Array(try P256.Signing.PrivateKey(rawRepresentation: d).signature(for: SHA256.hash(data: data)).rawRepresentation)
                case ("ES384", "P-384"): return Array(try P384.Signing.PrivateKey(rawRepresentation: d).signature(for: SHA384.hash(data: data)).rawRepresentation)
                case ("ES512", "P-521"): return Array(try P521.Signing.PrivateKey(rawRepresentation: d).signature(for: SHA512.hash(data: data)).rawRepresentation)
                default: throw BuiltinError("\(alg) does not match the key's curve")
                }
            } catch let e as BuiltinError { throw e } catch { throw BuiltinError("invalid EC key: \(error)") }
        default:
            throw BuiltinError("unsupported signature algorithm \(alg)")
        }
    }
}
