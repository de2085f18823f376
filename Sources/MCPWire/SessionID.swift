/// `Mcp-Session-Id` values: 256 random bits from the system CSPRNG (getrandom on Linux),
/// base64url without padding — 43 visible ASCII characters, unguessable.
public enum SessionID {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        var out: [UInt8] = []
        out.reserveCapacity(43)
        // 43 characters of 6 bits each = 258 bits; the extra 2 bits are random too.
        for _ in 0..<43 {
            out.append(alphabet[Int(rng.next(upperBound: UInt8(64)))])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Session ids must be visible ASCII (0x21...0x7E) and of sane length.
    public static func isWellFormed(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 8192 && id.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
    }
}
