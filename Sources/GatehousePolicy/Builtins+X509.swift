import Crypto
import Foundation
import X509
import _CryptoExtras

/// A minimal DER reader: enough to cut a certificate into the raw parts OPA reports.
struct DER {
    let tag: UInt8
    let bytes: ArraySlice<UInt8>
    let full: ArraySlice<UInt8>

    /// The elements in `data` one after another.
    static func elements(_ data: ArraySlice<UInt8>) -> [DER]? {
        var out: [DER] = []
        var i = data.startIndex
        while i < data.endIndex {
            guard i + 1 < data.endIndex else { return nil }
            let tag = data[i]
            var len = Int(data[i + 1])
            var start = i + 2
            if len & 0x80 != 0 {
                let n = len & 0x7F
                guard n > 0, n <= 4, start + n <= data.endIndex else { return nil }
                len = 0
                for j in 0..<n { len = len << 8 | Int(data[start + j]) }
                start += n
            }
            guard start + len <= data.endIndex else { return nil }
            out.append(DER(tag: tag, bytes: data[start..<(start + len)], full: data[i..<(start + len)]))
            i = start + len
        }
        return out
    }

    var children: [DER] { DER.elements(bytes) ?? [] }
}

enum X509Support {
    /// PEM blocks of a type ("CERTIFICATE") as DER.
    static func pemBlocks(_ text: String, _ types: Set<String>) -> [(String, [UInt8])] {
        var out: [(String, [UInt8])] = []
        var rest = Substring(text)
        while let b = rest.range(of: "-----BEGIN ") {
            let afterBegin = rest[b.upperBound...]
            guard let dash = afterBegin.range(of: "-----") else { break }
            let type = String(afterBegin[..<dash.lowerBound])
            guard let end = afterBegin.range(of: "-----END \(type)-----") else { break }
            let body = afterBegin[dash.upperBound..<end.lowerBound].filter { !$0.isWhitespace }
            if types.contains(type), let d = Data(base64Encoded: String(body)) { out.append((type, Array(d))) }
            rest = afterBegin[end.upperBound...]
        }
        return out
    }

    /// Certificates from PEM text, base64 of PEM, or base64 DER (as OPA accepts).
    static func certificateDERs(_ input: String) throws -> [[UInt8]] {
        var text = input
        if !text.contains("-----BEGIN"), let d = Data(base64Encoded: text.filter { !$0.isWhitespace }) {
            if let s = String(data: d, encoding: .utf8), s.contains("-----BEGIN") { text = s } else {
                var ders: [[UInt8]] = []
                var slice = ArraySlice(Array(d))
                while !slice.isEmpty {
                    guard let first = DER.elements(slice)?.first else { break }
                    ders.append(Array(first.full))
                    slice = slice[first.full.endIndex...]
                }
                if ders.isEmpty { throw BuiltinError("failed to parse certificates") }
                return ders
            }
        }
        let blocks = pemBlocks(text, ["CERTIFICATE"]).map { $0.1 }
        if blocks.isEmpty { throw BuiltinError("failed to extract a PEM certificate") }
        return blocks
    }

    static func certificates(_ input: String) throws -> [Certificate] {
        try certificateDERs(input).map {
            do { return try Certificate(derEncoded: $0) } catch { throw BuiltinError("failed to parse certificate: \(error)") }
        }
    }
}

extension Builtins {
    static let x509: [Builtin] = [
        Builtin("crypto.x509.parse_certificates", 1) { a, _ in
            let s = try argString(a, 0)
            if s.isEmpty { return .array([]) }
            let ders = try X509Support.certificateDERs(s)
            return .array(try ders.map { try X509JSON.certificate($0) })
        },
        Builtin("crypto.x509.parse_and_verify_certificates", 1) { a, _ in
            let s = try argString(a, 0)
            let invalid = Value.array([.false, .array([])])
            guard let ders = try? X509Support.certificateDERs(s), ders.count >= 2,
                  let rootFirst = try? ders.map({ try Certificate(derEncoded: $0) }) else { return invalid }
            // As OPA: the first certificate is the root, the last the leaf; each is signed by the one before.
            let certs = Array(rootFirst.reversed())
            for (i, c) in certs.enumerated() {
                let issuer = i + 1 < certs.count ? certs[i + 1] : c
                guard c.issuer == issuer.subject, issuer.publicKey.isValidSignature(c.signature, for: c) else { return invalid }
                if i + 1 < certs.count {
                    guard case .some(.isCertificateAuthority) = try? issuer.extensions.basicConstraints else { return invalid }
                }
            }
            return .array([.true, .array(try ders.map { try X509JSON.certificate($0) })])
        },
            Builtin("crypto.x509.parse_rsa_private_key", 1) { a, _ in
            let s = try argString(a, 0)
            guard let (type, der) = X509Support.pemBlocks(s, ["RSA PRIVATE KEY", "PRIVATE KEY"]).first else {
                throw BuiltinError("failed to parse PEM block containing the key")
            }
            var seq = DER.elements(der[...])?.first?.children ?? []
            if type == "PRIVATE KEY" {
                guard seq.count >= 3, let inner = DER.elements(seq[2].bytes)?.first else { throw BuiltinError("not an RSA private key") }
                seq = inner.children
            }
            guard seq.count >= 9, seq.allSatisfy({ $0.tag == 0x02 }) else { throw BuiltinError("not an RSA private key") }
            func b(_ i: Int) -> Value {
                .string(Builtins.base64url(Data(seq[i].bytes.drop { $0 == 0 }), pad: false))
            }
            return .object([.string("kty"): .string("RSA"), .string("n"): b(1), .string("e"): b(2), .string("d"): b(3),
                            .string("p"): b(4), .string("q"): b(5), .string("dp"): b(6), .string("dq"): b(7), .string("qi"): b(8)])
        },
    ]
}
