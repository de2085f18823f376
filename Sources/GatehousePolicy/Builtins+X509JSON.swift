import BigInt
import Foundation

/// A certificate as OPA reports it: the JSON of Go's x509.Certificate (plus URIStrings). Left out:
/// `URIs` (Go's url.URL structure), `PublicKey` of non-RSA keys, and the policy, name-constraint and
/// distribution-point fields for certificates that carry those extensions (reported as null/0).
enum X509JSON {
    static func b64(_ b: ArraySlice<UInt8>) -> Value { .string(Data(b).base64EncodedString()) }

    static func oid(_ b: ArraySlice<UInt8>) -> [Int] {
        guard let first = b.first else { return [] }
        var arcs = [Int(first) / 40, Int(first) % 40]
        var v = 0
        for byte in b.dropFirst() {
            v = v << 7 | Int(byte & 0x7F)
            if byte & 0x80 == 0 { arcs.append(v); v = 0 }
        }
        return arcs
    }

    static func integer(_ b: ArraySlice<UInt8>) -> Value {
        var x = BigInt(0)
        for byte in b { x = x << 8 | BigInt(byte) }
        if let f = b.first, f & 0x80 != 0 { x -= BigInt(1) << (8 * b.count) }
        return .number(Number(x))
    }

    static func certificate(_ der: [UInt8]) throws -> Value {
        let bad = BuiltinError("failed to parse certificate: malformed DER")
        guard let top = DER.elements(der[...])?.first, top.tag == 0x30 else { throw bad }
        let parts = top.children
        guard parts.count == 3 else { throw bad }
        var tbs = parts[0].children
        var version = 1
        if let f = tbs.first, f.tag == 0xA0, let v = f.children.first { version = Int(v.bytes.last ?? 0) + 1; tbs.removeFirst() }
        guard tbs.count >= 6 else { throw bad }
        let validity = tbs[3].children
        guard validity.count == 2 else { throw bad }
        var o: [String: Value] = nullFields()
        o["Raw"] = b64(top.full)
        o["RawTBSCertificate"] = b64(parts[0].full)
        o["RawIssuer"] = b64(tbs[2].full)
        o["RawSubject"] = b64(tbs[4].full)
        o["RawSubjectPublicKeyInfo"] = b64(tbs[5].full)
        o["Signature"] = b64(parts[2].bytes.dropFirst())
        o["Version"] = .int(version)
        o["SerialNumber"] = integer(tbs[0].bytes)
        o["Issuer"] = name(tbs[2])
        o["Subject"] = name(tbs[4])
        o["NotBefore"] = .string(time(validity[0]))
        o["NotAfter"] = .string(time(validity[1]))
        o["SignatureAlgorithm"] = .int(signatureAlgorithm(parts[1].children.first.map { oid($0.bytes) } ?? []))
        publicKey(tbs[5], &o)
        if let ext = tbs.first(where: { $0.tag == 0xA3 })?.children.first { extensions(ext.children, &o) }
        return .object(Dictionary(uniqueKeysWithValues: o.map { (.string($0.key), $0.value) }))
    }

    static func nullFields() -> [String: Value] {
        var o: [String: Value] = [:]
        for k in ["AuthorityKeyId", "CRLDistributionPoints", "DNSNames", "EmailAddresses", "ExcludedDNSDomains", "ExcludedEmailAddresses",
                  "ExcludedIPRanges", "ExcludedURIDomains", "ExtKeyUsage", "Extensions", "ExtraExtensions", "IPAddresses",
                  "IssuingCertificateURL", "OCSPServer", "PermittedDNSDomains", "PermittedEmailAddresses", "PermittedIPRanges",
                  "PermittedURIDomains", "Policies", "PolicyIdentifiers", "PolicyMappings", "SubjectKeyId", "URIStrings", "URIs",
                  "UnhandledCriticalExtensions", "UnknownExtKeyUsage", "PublicKey"] { o[k] = .null }
        for k in ["InhibitAnyPolicy", "InhibitPolicyMapping", "KeyUsage", "MaxPathLen", "RequireExplicitPolicy", "PublicKeyAlgorithm"] { o[k] = .int(0) }
        for k in ["InhibitAnyPolicyZero", "InhibitPolicyMappingZero", "IsCA", "BasicConstraintsValid", "MaxPathLenZero",
                  "PermittedDNSDomainsCritical", "RequireExplicitPolicyZero"] { o[k] = .false }
        return o
    }

    static func name(_ n: DER) -> Value {
        var names: [Value] = []
        var lists: [String: [Value]] = [:]
        var cn = "", serial = ""
        let keys: [[Int]: String] = [[2, 5, 4, 6]: "Country", [2, 5, 4, 10]: "Organization", [2, 5, 4, 11]: "OrganizationalUnit",
                                     [2, 5, 4, 7]: "Locality", [2, 5, 4, 8]: "Province", [2, 5, 4, 9]: "StreetAddress", [2, 5, 4, 17]: "PostalCode"]
        for rdn in n.children {
            for atv in rdn.children {
                let c = atv.children
                guard c.count == 2 else { continue }
                let id = oid(c[0].bytes)
                let value = String(decoding: c[1].bytes, as: UTF8.self)
                names.append(.object([.string("Type"): .array(id.map { .int($0) }), .string("Value"): .string(value)]))
                if id == [2, 5, 4, 3] { cn = value } else if id == [2, 5, 4, 5] { serial = value } else if let k = keys[id] { lists[k, default: []].append(.string(value)) }
            }
        }
        var o: [Value: Value] = [.string("CommonName"): .string(cn), .string("SerialNumber"): .string(serial),
                                 .string("Names"): names.isEmpty ? .null : .array(names), .string("ExtraNames"): .null]
        for k in keys.values { o[.string(k)] = lists[k].map { .array($0) } ?? .null }
        return .object(o)
    }

    /// UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) as RFC 3339.
    static func time(_ t: DER) -> String {
        var s = String(decoding: t.bytes, as: UTF8.self)
        if t.tag == 0x17 { s = (Int(s.prefix(2)).map { $0 >= 50 ? "19" : "20" } ?? "20") + s }
        let c = Array(s)
        guard c.count >= 14 else { return s }
        func p(_ i: Int, _ n: Int) -> String { String(c[i..<(i + n)]) }
        return "\(p(0, 4))-\(p(4, 2))-\(p(6, 2))T\(p(8, 2)):\(p(10, 2)):\(p(12, 2))Z"
    }

    static func signatureAlgorithm(_ id: [Int]) -> Int {
        let table: [[Int]: Int] = [
            [1, 2, 840, 113549, 1, 1, 4]: 2, [1, 2, 840, 113549, 1, 1, 5]: 3, [1, 2, 840, 113549, 1, 1, 11]: 4,
            [1, 2, 840, 113549, 1, 1, 12]: 5, [1, 2, 840, 113549, 1, 1, 13]: 6, [1, 2, 840, 10045, 4, 1]: 9,
            [1, 2, 840, 10045, 4, 3, 2]: 10, [1, 2, 840, 10045, 4, 3, 3]: 11, [1, 2, 840, 10045, 4, 3, 4]: 12,
            [1, 2, 840, 113549, 1, 1, 10]: 13, [1, 3, 101, 112]: 16,
        ]
        return table[id] ?? 0
    }

    static func publicKey(_ spki: DER, _ o: inout [String: Value]) {
        let c = spki.children
        guard c.count == 2, let algID = c[0].children.first else { return }
        switch oid(algID.bytes) {
        case [1, 2, 840, 113549, 1, 1, 1]:
            o["PublicKeyAlgorithm"] = .int(1)
            if let seq = DER.elements(c[1].bytes.dropFirst())?.first?.children, seq.count == 2 {
                o["PublicKey"] = .object([.string("N"): integer(seq[0].bytes), .string("E"): integer(seq[1].bytes)])
            }
        case [1, 2, 840, 10045, 2, 1]:
            o["PublicKeyAlgorithm"] = .int(3)
            let point = c[1].bytes.dropFirst()
            if point.first == 4 {
                let n = (point.count - 1) / 2
                let xs = point.dropFirst().prefix(n), ys = point.dropFirst(1 + n)
                o["PublicKey"] = .object([.string("Curve"): .emptyObject, .string("X"): integer(ArraySlice([0] + xs)), .string("Y"): integer(ArraySlice([0] + ys))])
            }
        case [1, 3, 101, 112]: o["PublicKeyAlgorithm"] = .int(4)
        case [1, 2, 840, 10040, 4, 1]: o["PublicKeyAlgorithm"] = .int(2)
        default: break
        }
    }
}

extension X509JSON {
    static func extensions(_ exts: [DER], _ o: inout [String: Value]) {
        var list: [Value] = []
        for e in exts {
            let c = e.children
            guard c.count >= 2 else { continue }
            let id = oid(c[0].bytes)
            var critical = false
            if c.count == 3, c[1].tag == 0x01 { critical = c[1].bytes.first.map { $0 != 0 } ?? false }
            let value = c[c.count - 1].bytes
            list.append(.object([.string("Id"): .array(id.map { .int($0) }), .string("Critical"): .bool(critical), .string("Value"): b64(value)]))
            let inner = DER.elements(value)?.first
            switch id {
            case [2, 5, 29, 17]: if let inner { subjectAltNames(inner.children, &o) }
            case [2, 5, 29, 19]:
                o["BasicConstraintsValid"] = .true
                let bc = inner?.children ?? []
                o["IsCA"] = .bool(bc.first.map { $0.tag == 0x01 && $0.bytes.first != 0 } ?? false)
                if let len = bc.first(where: { $0.tag == 0x02 }) {
                    let n = Int(integer(len.bytes).numberValue?.intValue ?? 0)
                    o["MaxPathLen"] = .int(n)
                    o["MaxPathLenZero"] = .bool(n == 0)
                } else {
                    o["MaxPathLen"] = .int(-1)
                }
            case [2, 5, 29, 15]:
                if let bits = inner?.bytes, bits.count >= 2 {
                    var ku = 0
                    for (i, byte) in bits.dropFirst().enumerated() {
                        for j in 0..<8 where byte & (0x80 >> j) != 0 { ku |= 1 << (i * 8 + j) }
                    }
                    o["KeyUsage"] = .int(ku)
                }
            case [2, 5, 29, 37]:
                let known: [[Int]: Int] = [[2, 5, 29, 37, 0]: 0, [1, 3, 6, 1, 5, 5, 7, 3, 1]: 1, [1, 3, 6, 1, 5, 5, 7, 3, 2]: 2,
                                           [1, 3, 6, 1, 5, 5, 7, 3, 3]: 3, [1, 3, 6, 1, 5, 5, 7, 3, 4]: 4, [1, 3, 6, 1, 5, 5, 7, 3, 8]: 8,
                                           [1, 3, 6, 1, 5, 5, 7, 3, 9]: 9]
                var usages: [Value] = [], unknown: [Value] = []
                for u in inner?.children ?? [] {
                    let i = oid(u.bytes)
                    if let k = known[i] { usages.append(.int(k)) } else { unknown.append(.array(i.map { .int($0) })) }
                }
                if !usages.isEmpty { o["ExtKeyUsage"] = .array(usages) }
                if !unknown.isEmpty { o["UnknownExtKeyUsage"] = .array(unknown) }
            case [2, 5, 29, 14]: if let inner { o["SubjectKeyId"] = b64(inner.bytes) }
            case [2, 5, 29, 35]: if let k = inner?.children.first(where: { $0.tag == 0x80 }) { o["AuthorityKeyId"] = b64(k.bytes) }
            default: break
            }
        }
        if !list.isEmpty { o["Extensions"] = .array(list) }
    }

    static func subjectAltNames(_ names: [DER], _ o: inout [String: Value]) {
        var dns: [Value] = [], email: [Value] = [], ips: [Value] = [], uris: [Value] = []
        for n in names {
            let s = String(decoding: n.bytes, as: UTF8.self)
            switch n.tag {
            case 0x82: dns.append(.string(s))
            case 0x81: email.append(.string(s))
            case 0x86: uris.append(.string(s))
            case 0x87:
                let b = Array(n.bytes)
                if b.count == 4 || b.count == 16 { ips.append(.string(CIDR.format(b))) }
            default: break
            }
        }
        if !dns.isEmpty { o["DNSNames"] = .array(dns) }
        if !email.isEmpty { o["EmailAddresses"] = .array(email) }
        if !ips.isEmpty { o["IPAddresses"] = .array(ips) }
        if !uris.isEmpty { o["URIStrings"] = .array(uris) }
    }
}
